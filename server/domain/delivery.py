"""Outbound delivery state: claiming queued replies and recording what the provider said."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, update
from sqlmodel import Session, col, select

from server.domain.conversations import present_message
from server.domain.events import emit
from server.domain.services import Services
from server.providers.base import (
    STATUS_RANK,
    OutboundMessage,
    SendResult,
    StatusUpdate,
    Watermark,
)
from server.providers.registry import provider_type
from server.state import conversation_queries
from server.state.models import (
    Contact,
    Conversation,
    EarlyStatus,
    Integration,
    Message,
    OutboundJob,
)

LEASE = timedelta(seconds=60)
# Statuses for ids we never sent (another app on the same number) are dropped after this.
EARLY_STATUS_TTL = timedelta(hours=1)
MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class Claimed:
    job_id: int
    attempt: int
    provider: str
    message: OutboundMessage
    public: dict[str, Any]
    secrets: dict[str, Any]


def due_job_ids(session: Session, services: Services, *, limit: int) -> list[int]:
    now = services.now()
    query = (
        select(OutboundJob.id)
        .where(col(OutboundJob.next_attempt_at) <= now)
        .where(or_(col(OutboundJob.locked_until).is_(None), col(OutboundJob.locked_until) < now))
        .order_by(col(OutboundJob.next_attempt_at))
        .limit(limit)
    )
    return [int(i) for i in session.execute(query).scalars().all()]


def backlog(session: Session) -> int:
    """Replies still waiting for their provider."""
    return int(session.exec(select(func.count()).select_from(OutboundJob)).one())


def status_callback_url(services: Services, integration: Integration) -> str:
    path = provider_type(integration.provider).webhook_path
    return f"{services.settings.public_url}/webhooks/{path}/{integration.id}/status"


def claim(session: Session, services: Services, *, job_id: int) -> Claimed | None:
    """Take the job for one lease; None if another worker holds it or it is gone."""
    now = services.now()
    taken = session.execute(
        update(OutboundJob)
        .where(col(OutboundJob.id) == job_id)
        .where(or_(col(OutboundJob.locked_until).is_(None), col(OutboundJob.locked_until) < now))
        .values(locked_until=now + LEASE, attempts=OutboundJob.attempts + 1)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return None
    job = session.get(OutboundJob, job_id)
    assert job is not None
    message = session.get(Message, job.message_id)
    assert message is not None and message.id is not None
    conversation = session.get(Conversation, message.conversation_id)
    assert conversation is not None and conversation.id is not None
    contact = session.get(Contact, conversation.contact_id)
    integration = session.get(Integration, conversation.integration_id)
    assert contact is not None and contact.id is not None and integration is not None
    assert integration.id is not None
    return Claimed(
        job_id=job_id,
        attempt=job.attempts,
        provider=integration.provider,
        message=OutboundMessage(
            message_id=message.id,
            conversation_id=conversation.id,
            integration_id=integration.id,
            contact_id=contact.id,
            contact_handle=contact.handle,
            text=message.text,
            created_at=message.created_at,
            status_callback_url=status_callback_url(services, integration),
        ),
        public=dict(integration.config_public),
        secrets=services.box.open(integration.config_secret),
    )


def _update_message(session: Session, services: Services, message: Message, **changes: Any) -> None:
    for key, value in changes.items():
        setattr(message, key, value)
    session.add(message)
    session.flush()
    conversation = session.get(Conversation, message.conversation_id)
    assert conversation is not None
    emit(
        session,
        account_id=conversation.account_id,
        type_="message.updated",
        data={"message": present_message(session, message, conversation)},
        now=services.now(),
        integration_id=conversation.integration_id,
        conversation_id=conversation.id,
    )


def record_sent(session: Session, services: Services, *, job_id: int, result: SendResult) -> None:
    job = session.get(OutboundJob, job_id)
    if job is None:  # the conversation was deleted meanwhile
        return
    message = session.get(Message, job.message_id)
    session.delete(job)
    if message is None:
        return
    # Statuses never move back: a receipt may already have moved this reply further.
    status = result.status if _advance(message, result.status) else message.status
    error = message.error
    for early in _early_statuses(session, message, result.external_id):
        if _advance_to(status, early.status):
            status = early.status
            error = early.error
    _update_message(
        session,
        services,
        message,
        status=status,
        external_id=result.external_id,
        error=error if status == "failed" else None,
    )


def _early_statuses(
    session: Session, message: Message, external_id: str | None
) -> list[EarlyStatus]:
    """Statuses that arrived before the send was recorded, taken out of the waiting room."""
    if not external_id:
        return []
    early = conversation_queries.early_statuses(
        session, integration_id=message.integration_id, external_id=external_id
    )
    for row in early:
        session.delete(row)
    return early


def record_failure(
    session: Session,
    services: Services,
    *,
    job_id: int,
    error: str,
    transient: bool,
    retry_in: timedelta,
    count_attempt: bool = False,
) -> bool:
    """Schedule a retry for a transient failure, else fail the message. True if it will retry.

    `count_attempt` for a failure before the job could be claimed (claiming counts attempts).
    """
    job = session.get(OutboundJob, job_id)
    if job is None:
        return False
    if count_attempt:
        job.attempts += 1
    if transient and job.attempts < MAX_ATTEMPTS:
        job.next_attempt_at = services.now() + retry_in
        job.locked_until = None
        job.last_error = error
        session.add(job)
        return True
    message = session.get(Message, job.message_id)
    session.delete(job)
    if message is not None:
        _update_message(session, services, message, status="failed", error=error)
    return False


def _advance_to(current: str, status: str) -> bool:
    """Whether `status` moves a reply forward from `current` (never back; failed is final)."""
    if current == "failed" or current == status:
        return False
    if status == "failed":
        return True
    return STATUS_RANK.get(status, -1) > STATUS_RANK.get(current, -1)


def _advance(message: Message, status: str) -> bool:
    return _advance_to(message.status, status)


def apply_status(
    session: Session, services: Services, *, integration_id: int, update: StatusUpdate
) -> bool:
    """A provider's delivery news about one reply; True if the message changed."""
    message = conversation_queries.message_by_external_id(
        session, integration_id=integration_id, external_id=update.external_id
    )
    if message is None:
        # Perhaps news of a reply whose send we have not recorded yet: keep it for `record_sent`.
        conversation_queries.keep_early_status(
            session,
            integration_id=integration_id,
            external_id=update.external_id,
            status=update.status,
            error=update.error,
            now=services.now(),
            keep_for=EARLY_STATUS_TTL,
        )
        return False
    if message.direction != "outbound" or not _advance(message, update.status):
        return False
    error = update.error if update.status == "failed" else message.error
    _update_message(session, services, message, status=update.status, error=error)
    return True


def apply_watermark(
    session: Session, services: Services, *, integration_id: int, watermark: Watermark
) -> int:
    """Every reply to the contact sent up to the watermark reached its status; returns how many."""
    contact = conversation_queries.contact_by_handle(
        session, integration_id=integration_id, handle=watermark.contact_handle
    )
    if contact is None or contact.id is None:
        return 0
    conversation = conversation_queries.conversation_by_contact(session, contact_id=contact.id)
    if conversation is None or conversation.id is None:
        return 0
    changed = 0
    for message in conversation_queries.outbound_up_to(
        session, conversation_id=conversation.id, up_to=watermark.up_to
    ):
        # A reply still queued (waiting for a retry) was not sent, whatever its time says; and
        # `record_sent` would set it back to "sent" afterwards.
        if message.status != "queued" and _advance(message, watermark.status):
            _update_message(session, services, message, status=watermark.status)
            changed += 1
    return changed
