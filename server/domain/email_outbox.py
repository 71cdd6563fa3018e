"""The email outbox: per user and conversation, what waits to be emailed, gathered into bursts.

An email notification joins the user's pending items about the conversation (one `EmailDigest`
row per user and conversation). The first pending item opens a burst window; the email goes out
when the window ends and lists everything that joined meanwhile, so a burst costs one email and
a conversation costs a user at most one email per window. Just before sending, items the user
has seen meanwhile (they read the conversation), turned off in their settings, or may no longer
see, are dropped: if nothing is left, no email goes.

Workers claim due digests with a lease, so one node sends each; failures are retried with
backoff and nothing queued is lost while the SMTP server is down.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from server.clock import as_utc
from server.domain import access
from server.domain.accounts import notification_settings
from server.domain.services import Services
from server.state import conversation_queries, notification_queries
from server.state.models import Contact, Conversation, EmailDigest, Integration, User

BURST_WINDOW = timedelta(minutes=5)
LEASE = timedelta(seconds=60)
# Failures other than an unreachable server (which is waited out however long it takes).
MAX_ATTEMPTS = 20
# An email lists at most this many messages (the newest), and says how many it left out.
MAX_LISTED = 20


@dataclass(frozen=True)
class ListedMessage:
    text: str
    created_at: datetime


@dataclass(frozen=True)
class ClaimedEmail:
    """Everything the worker needs to write and send one notification email."""

    digest_id: int
    attempt: int
    through_seq: int  # the newest item this email covers
    to_email: str
    to_name: str
    conversation_id: int
    contact_name: str
    integration_name: str
    assigned_by: list[str]  # who assigned the recipient the conversation
    messages: list[ListedMessage]  # oldest first
    unlisted_messages: int
    now: datetime


def enqueue(
    session: Session,
    services: Services,
    *,
    user_id: int,
    conversation_id: int,
    item: dict[str, Any],
) -> None:
    """Add an item to the user's pending email about the conversation."""
    now = services.now()
    digest = notification_queries.email_digest(
        session, user_id=user_id, conversation_id=conversation_id, lock=True
    )
    if digest is None:
        digest = EmailDigest(user_id=user_id, conversation_id=conversation_id, items=[])
        try:
            with session.begin_nested():
                session.add(digest)
                session.flush()
        except IntegrityError:  # created meanwhile by another transaction
            digest = notification_queries.email_digest(
                session, user_id=user_id, conversation_id=conversation_id, lock=True
            )
            assert digest is not None
    digest.item_seq += 1
    digest.items = [*digest.items, {**item, "seq": digest.item_seq, "at": now.isoformat()}]
    if digest.due_at is None:
        # A new burst: it gathers for a window, and never ends within a window of the last email.
        last = as_utc(digest.last_sent_at) if digest.last_sent_at else now
        digest.due_at = max(now, last) + BURST_WINDOW
    session.add(digest)


def due_ids(session: Session, services: Services, *, limit: int) -> list[int]:
    return notification_queries.due_email_digest_ids(session, now=services.now(), limit=limit)


def claim(session: Session, services: Services, *, digest_id: int) -> ClaimedEmail | None:
    """Take a due digest for one lease: the email to send, or None (not due, held, or nothing
    left worth sending, in which case the digest is emptied)."""
    now = services.now()
    if not notification_queries.lease_email_digest(
        session, digest_id=digest_id, now=now, until=now + LEASE
    ):
        return None
    digest = notification_queries.email_digest_by_id(session, digest_id=digest_id)
    assert digest is not None and digest.id is not None
    user = session.get(User, digest.user_id)
    conversation = session.get(Conversation, digest.conversation_id)
    assert user is not None and conversation is not None and conversation.id is not None
    integration = session.get(Integration, conversation.integration_id)
    contact = session.get(Contact, conversation.contact_id)
    assert integration is not None and contact is not None
    items = _still_wanted(session, digest, user, conversation, integration)
    if not items:
        _settle(digest, through_seq=digest.item_seq, now=now)
        session.add(digest)
        return None
    if len(items) != len(digest.items):
        digest.items = items
        session.add(digest)
    found = conversation_queries.messages_by_id(
        session, ids=[int(i["message_id"]) for i in items if i.get("message_id")]
    )
    messages = [found[i] for i in sorted(found)]
    listed = messages[-MAX_LISTED:]
    return ClaimedEmail(
        digest_id=digest.id,
        attempt=digest.attempts,
        through_seq=max(int(i["seq"]) for i in items),
        to_email=user.email,
        to_name=user.name,
        conversation_id=conversation.id,
        contact_name=contact.name,
        integration_name=integration.name,
        assigned_by=list(
            dict.fromkeys(str(i["actor_name"]) for i in items if i["kind"] == "assigned_to_me")
        ),
        messages=[ListedMessage(m.text, as_utc(m.created_at)) for m in listed],
        unlisted_messages=len(messages) - len(listed),
        now=now,
    )


def _still_wanted(
    session: Session,
    digest: EmailDigest,
    user: User,
    conversation: Conversation,
    integration: Integration,
) -> list[dict[str, Any]]:
    """The pending items still worth an email now."""
    assert user.id is not None and conversation.id is not None
    if not access.user_has_shared_access(session, integration, user.id):
        return []
    wanted = notification_settings(user)["email"]
    mark = conversation_queries.read_mark(session, conversation_id=conversation.id, user_id=user.id)
    seen = as_utc(mark.read_at) if mark is not None else None
    kept = []
    for item in digest.items:
        if not wanted.get(str(item["kind"]), False):
            continue
        if seen is not None and datetime.fromisoformat(str(item["at"])) <= seen:
            continue  # they read the conversation after it happened
        if item["kind"] == "assigned_to_me" and conversation.assignee_id != user.id:
            continue  # no longer theirs
        kept.append(item)
    return kept


def _settle(digest: EmailDigest, *, through_seq: int, now: datetime) -> None:
    """The items up to `through_seq` are done with; later ones form the next burst."""
    digest.items = [i for i in digest.items if int(i["seq"]) > through_seq]
    digest.due_at = now + BURST_WINDOW if digest.items else None
    digest.locked_until = None
    digest.attempts = 0


def record_sent(session: Session, services: Services, *, digest_id: int, through_seq: int) -> None:
    """The email went: what it listed is done, and the next one waits a window."""
    digest = notification_queries.email_digest_by_id(session, digest_id=digest_id, lock=True)
    if digest is None:  # the conversation or the user was deleted meanwhile
        return
    now = services.now()
    # Items that arrived while it was being sent form the next burst, a window after this one.
    _settle(digest, through_seq=through_seq, now=now)
    digest.last_sent_at = now
    digest.last_error = None
    session.add(digest)


def record_failure(
    session: Session,
    services: Services,
    *,
    digest_id: int,
    error: str,
    retry_in: timedelta,
    through_seq: int | None = None,
    permanent: bool = False,
    counted: bool = True,
    count_attempt: bool = False,
) -> bool:
    """Retry later, or give up on the items up to `through_seq` (all if None). True if retrying.

    A `permanent` failure gives up at once; an uncounted one (the server cannot be reached) is
    retried for as long as it takes; others give up after MAX_ATTEMPTS. `count_attempt` for a
    failure before the digest was claimed (claiming counts attempts).
    """
    digest = notification_queries.email_digest_by_id(session, digest_id=digest_id, lock=True)
    if digest is None:
        return False
    now = services.now()
    if count_attempt:
        digest.attempts += 1
    digest.last_error = error[:1000]
    session.add(digest)
    if permanent or (counted and digest.attempts >= MAX_ATTEMPTS):
        _settle(
            digest, through_seq=digest.item_seq if through_seq is None else through_seq, now=now
        )
        return False
    digest.due_at = now + retry_in
    digest.locked_until = None
    return True


def prune(session: Session, services: Services) -> None:
    """Forget digests with nothing pending whose last email is older than a window."""
    notification_queries.delete_idle_email_digests(
        session, sent_before=services.now() - BURST_WINDOW
    )
