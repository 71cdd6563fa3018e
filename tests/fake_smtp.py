"""A real SMTP server (aiosmtpd) on 127.0.0.1 in a thread, keeping every email it accepts.

It can be stopped (the port then refuses connections, as a server that is down) and started
again on the same port.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.support import free_port


@dataclass(frozen=True)
class Received:
    """One accepted email: the envelope's recipients and the parsed message."""

    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def to(self) -> str:
        return str(self.message["To"])

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def part(self, subtype: str) -> str:
        """The `text/<subtype>` part's content (`plain` or `html`)."""
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None and body.get_content_subtype() == subtype, f"no text/{subtype}"
        content: str = body.get_content()
        return content


class FakeSmtp:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._controller: Controller | None = None
        # Addresses refused for good (550), as for a mailbox that does not exist.
        self.refused: set[str] = set()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._controller is not None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refused:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self._received.append(Received(list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def start(self) -> FakeSmtp:
        assert self._controller is None, "already running"
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def emails(self, to: str | None = None) -> list[Received]:
        """What arrived so far (for one recipient address), oldest first."""
        with self._lock:
            received = list(self._received)
        return [r for r in received if to is None or to in r.rcpt_tos]

    def clear(self) -> None:
        with self._lock:
            self._received.clear()
        self.refused.clear()
