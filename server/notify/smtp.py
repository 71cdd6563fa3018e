"""Sending email through the server named by SMTP_URL, and telling failures apart."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib

# Well below the outbox lease, so a send never outlives its claim.
SEND_TIMEOUT = 30.0


class SendFailed(Exception):
    """A send that did not go through.

    `unreachable`: no SMTP conversation happened (connection refused, timeout, dropped): the
    server is down, so the email waits for it however long it takes. `permanent`: the server
    refused for good (a 5xx answer): retrying would not help.
    """

    def __init__(self, message: str, *, unreachable: bool = False, permanent: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable
        self.permanent = permanent


def check_smtp_url(url: str | None) -> None:
    """ValueError if SMTP_URL is set and is not one we can use."""
    if url:
        SmtpServer.from_url(url)


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        """`smtp://[user:pass@]host[:port]` (STARTTLS when offered; port 25) or `smtps://...`
        (TLS from the start; port 465). ValueError for anything else."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("SMTP_URL must look like smtp://[user:pass@]host:port")
        implicit_tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit_tls else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            implicit_tls=implicit_tls,
        )

    async def send(self, message: EmailMessage) -> None:
        """Send `message` to its `To`; SendFailed if it did not go."""
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.implicit_tls,
                start_tls=None if not self.implicit_tls else False,
                timeout=SEND_TIMEOUT,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            raise SendFailed(
                f"recipient refused ({', '.join(map(str, codes))})",
                permanent=all(code >= 500 for code in codes),
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise SendFailed(
                f"SMTP {exc.code}: {exc.message}"[:500], permanent=exc.code >= 500
            ) from exc
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected) as exc:
            raise SendFailed(f"SMTP server unreachable: {exc}"[:500], unreachable=True) from exc
        except (aiosmtplib.SMTPTimeoutError, TimeoutError, OSError) as exc:
            raise SendFailed(
                f"SMTP server unreachable: {exc.__class__.__name__}", unreachable=True
            ) from exc
        except aiosmtplib.SMTPException as exc:
            raise SendFailed(f"SMTP error: {exc}"[:500]) from exc
