"""Notification email: plain text and HTML, every user-provided string escaped in the HTML."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from html import escape

from server.domain.email_outbox import ClaimedEmail

SETTINGS_PATH = "/#/settings/notifications"


def conversation_url(public_url: str, conversation_id: int) -> str:
    return f"{public_url}/#/conversations/{conversation_id}"


def settings_url(public_url: str) -> str:
    return f"{public_url}{SETTINGS_PATH}"


def _one_line(text: str, limit: int = 200) -> str:
    """For headers: no line breaks (they would be refused, or worse), not too long."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def subject(email: ClaimedEmail) -> str:
    count = len(email.messages) + email.unlisted_messages
    contact = email.contact_name
    if email.assigned_by:
        text = f"{', '.join(email.assigned_by)} assigned you the conversation with {contact}"
        if count:
            text += f"; {_plural(count, 'new message')}"
    elif count == 1:
        text = f"New message from {contact}"
    else:
        text = f"{count} new messages from {contact}"
    return _one_line(f"[Switchboard] {text}")


def plain_text(email: ClaimedEmail, *, public_url: str) -> str:
    lines = [f"Hi {email.to_name},", ""]
    where = f"{email.contact_name} ({email.integration_name})"
    if email.assigned_by:
        lines += [f"{', '.join(email.assigned_by)} assigned you the conversation with {where}.", ""]
    if email.messages:
        lines += [f"New messages from {where}:", ""]
        if email.unlisted_messages:
            lines += [f"  ... {_plural(email.unlisted_messages, 'earlier message')} ...", ""]
        for message in email.messages:
            lines.append(f"  {_when(message.created_at)}")
            lines += [f"  {line}" for line in message.text.splitlines() or [""]]
            lines.append("")
    lines += [
        f"Open the conversation: {conversation_url(public_url, email.conversation_id)}",
        "",
        "--",
        "You get this email because of your notification settings. Change them:",
        settings_url(public_url),
        "",
    ]
    return "\n".join(lines)


def html(email: ClaimedEmail, *, public_url: str) -> str:
    e = escape  # every string below that a user or a customer wrote goes through it
    where = f"<strong>{e(email.contact_name)}</strong> ({e(email.integration_name)})"
    parts = [f"<p>Hi {e(email.to_name)},</p>"]
    if email.assigned_by:
        by = ", ".join(e(name) for name in email.assigned_by)
        parts.append(f"<p><strong>{by}</strong> assigned you the conversation with {where}.</p>")
    if email.messages:
        parts.append(f"<p>New messages from {where}:</p>")
        if email.unlisted_messages:
            earlier = _plural(email.unlisted_messages, "earlier message")
            parts.append(f'<p style="color:#666">&hellip; {earlier} &hellip;</p>')
        for message in email.messages:
            parts.append(
                '<div style="margin:0 0 12px;padding:8px 12px;border-left:3px solid #ccc">'
                f'<div style="color:#666;font-size:12px">{e(_when(message.created_at))}</div>'
                f'<div style="white-space:pre-wrap">{e(message.text)}</div></div>'
            )
    link = e(conversation_url(public_url, email.conversation_id))
    parts.append(f'<p><a href="{link}">Open the conversation</a></p>')
    parts.append(
        '<p style="color:#666;font-size:12px">You get this email because of your notification '
        f'settings. <a href="{e(settings_url(public_url))}">Change them</a>.</p>'
    )
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n'
        f'<body style="font-family:sans-serif;line-height:1.4">\n{body}\n</body></html>\n'
    )


def compose(email: ClaimedEmail, *, public_url: str, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.to_email
    message["Subject"] = subject(email)
    message["Date"] = format_datetime(email.now)
    domain = sender.rpartition("@")[2].strip("> ") or "switchboard.local"
    message["Message-ID"] = make_msgid("switchboard", domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(plain_text(email, public_url=public_url))
    message.add_alternative(html(email, public_url=public_url), subtype="html")
    return message
