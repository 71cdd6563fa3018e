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
        self.events_delivered = Counter(
            "switchboard_events_delivered",
            "Frames queued for websocket clients",
            registry=self.registry,
        )
        self.delivery_seconds = Histogram(
            "switchboard_delivery_seconds",
            "From commit (publish) to queued for the sockets on this node, per event",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self.websocket_connections = Gauge(
            "switchboard_websocket_connections",
            "Open websocket connections",
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "switchboard_rate_limited",
            "Requests refused with 429 by a rate limit",
            ["limit"],
            registry=self.registry,
        )
        self.rate_limit_unavailable = Counter(
            "switchboard_rate_limit_unavailable",
            "Rate-limit checks allowed without counting because Redis did not answer",
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "switchboard_http_request_seconds",
            "HTTP request duration",
            ["route"],
            registry=self.registry,
        )
