"""Prometheus metrics of this node, on a registry of its own (so tests can run several apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "switchboard_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.webhooks = Counter(
            "switchboard_webhook_messages",
            "Inbound webhook messages by outcome",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.events_published = Counter(
            "switchboard_events_published",
            "Events published after commit",
            ["type"],
            registry=self.registry,
        )
        self.outbound_backlog = Gauge(
            "switchboard_outbound_backlog",
            "Replies waiting for their provider",
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "switchboard_http_request_seconds",
            "HTTP request duration",
            ["route"],
            registry=self.registry,
        )
