"""SQLModel tables. Every row belongs to one account, directly or through its parent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps go in as UTC and come out timezone-aware, on SQLite (which keeps no zone) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _when(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


# SQLite would otherwise hand a deleted row's id to the next row: a deleted conversation's id
# must never come back as somebody else's (links, notes and clients still name it).
_NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


def _ref(target: str, *, nullable: bool = False, index: bool = True, cascade: bool = True) -> Any:
    ondelete = "CASCADE" if cascade else "SET NULL"
    return Field(
        default=None,
        sa_column=Column(
            Integer, ForeignKey(target, ondelete=ondelete), nullable=nullable, index=index
        ),
    )


class Account(SQLModel, table=True):
    __tablename__ = "accounts"
    __table_args__ = _NEVER_REUSE_IDS

    id: int | None = Field(default=None, primary_key=True)
    name: str
    # The last sequence number handed to an account-wide event; bumped in the event's transaction.
    event_seq: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )
    # Events up to this seq were dropped from the log: a client behind it must resync.
    events_pruned_through: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )
    created_at: datetime = _when()


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = _NEVER_REUSE_IDS

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _ref("accounts.id")
    name: str
    # Stored lower-cased; unique across the installation because login is by email.
    email: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    password_hash: str
    role: str
    available: bool = True
    notification_settings: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    last_seen_at: datetime | None = _when(nullable=True)
    created_at: datetime = _when()


class ApiToken(SQLModel, table=True):
    """A bearer token or a browser session; only a SHA-256 of the secret is kept."""

    __tablename__ = "api_tokens"
    __table_args__ = _NEVER_REUSE_IDS

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = _ref("users.id")
    token_hash: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    kind: str  # "api" or "session"
    created_at: datetime = _when()
    expires_at: datetime | None = _when(nullable=True)
    # For telling tokens apart in `GET /api/v1/me/tokens`: a label, the secret's last characters.
    name: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    hint: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    last_used_at: datetime | None = _when(nullable=True)


class LoginFailure(SQLModel, table=True):
    __tablename__ = "login_failures"
    __table_args__ = _NEVER_REUSE_IDS

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(index=True)
    at: datetime = _when(index=True)


class Integration(SQLModel, table=True):
    __tablename__ = "integrations"
    __table_args__ = _NEVER_REUSE_IDS

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _ref("accounts.id")
    provider: str
    name: str
    installed_by: int = _ref("users.id")
    # Non-secret settings in clear (shown back to admins); secrets only as a Fernet token.
    config_public: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    config_secret: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_at: datetime = _when()


class IntegrationAccess(SQLModel, table=True):
    """A user the integration is shared with. The installer has access without a row."""

    __tablename__ = "integration_access"

    integration_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
        )
    )
    user_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
        )
    )


class Contact(SQLModel, table=True):
    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("integration_id", "handle", name="uq_contacts_integration_handle"),
        _NEVER_REUSE_IDS,
    )

    id: int | None = Field(default=None, primary_key=True)
    integration_id: int = _ref("integrations.id", index=False)
    handle: str
    name: str
    created_at: datetime = _when()


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_inbox", "integration_id", "status", "last_message_at"),
        _NEVER_REUSE_IDS,
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _ref("accounts.id")
    integration_id: int = _ref("integrations.id", index=False)
    # One conversation per contact: a contact writing again continues it (or reopens it).
    contact_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False, unique=True
        )
    )
    status: str = "open"
    assignee_id: int | None = _ref("users.id", nullable=True, cascade=False)
    last_message_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    last_message_at: datetime = _when()
    # For the providers' 24-hour reply window.
    last_inbound_at: datetime | None = _when(nullable=True)
    # Inbound messages so far; unread = this minus what a reader had seen (see ReadMark).
    inbound_count: int = 0
    # Bumped by every change of assignment or status: the optimistic-concurrency token.
    version: int = 1
    created_at: datetime = _when()
    updated_at: datetime = _when()


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint(
            "integration_id", "external_id", name="uq_messages_integration_external_id"
        ),
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
        _NEVER_REUSE_IDS,
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
        )
    )
    # Kept here (not only via the conversation) so the provider's id is unique per integration.
    integration_id: int = _ref("integrations.id", index=False)
    direction: str  # "inbound" or "outbound"
    text: str = Field(sa_column=Column(Text, nullable=False))
    sender_user_id: int | None = _ref("users.id", nullable=True, index=False, cascade=False)
    status: str
    error: str | None = None
    external_id: str | None = None
    attachments: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    created_at: datetime = _when()


class ReadMark(SQLModel, table=True):
    """How many inbound messages of a conversation a user had seen when they last read it."""

    __tablename__ = "read_marks"

    conversation_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
        )
    )
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    )
    read_inbound_count: int = 0
    read_at: datetime = _when()


class Event(SQLModel, table=True):
    """The account's event log: written in the action's transaction (an outbox), replayed by seq."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("account_id", "seq", name="uq_events_account_seq"),
        _NEVER_REUSE_IDS,
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _ref("accounts.id", index=False)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    type: str
    # Who may see it: users with shared access to this integration, or everyone when null.
    integration_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    # So that deleting a conversation can purge its history from the log too.
    conversation_id: int | None = Field(
        default=None, sa_column=Column(Integer, nullable=True, index=True)
    )
    # The whole server frame, encoded once.
    frame: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = _when(index=True)


class EarlyStatus(SQLModel, table=True):
    """A provider's status for a reply we have not yet recorded as sent (its id is unknown to us):
    callbacks can overtake the answer to the send itself. Applied when the send is recorded."""

    __tablename__ = "early_statuses"
    __table_args__ = (
        Index("ix_early_statuses_message", "integration_id", "external_id"),
        _NEVER_REUSE_IDS,
    )

    id: int | None = Field(default=None, primary_key=True)
    integration_id: int = _ref("integrations.id", index=False)
    external_id: str
    status: str
    error: str | None = None
    received_at: datetime = _when(index=True)


class OutboundJob(SQLModel, table=True):
    """A reply waiting for its provider; claimed with a lease, retried with backoff."""

    __tablename__ = "outbound_jobs"
    __table_args__ = _NEVER_REUSE_IDS

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False, unique=True
        )
    )
    attempts: int = 0
    next_attempt_at: datetime = _when(index=True)
    locked_until: datetime | None = _when(nullable=True)
    last_error: str | None = None


class Notification(SQLModel, table=True):
    """An entry of one user's in-app notification list (announced by `notification.created`).

    No foreign keys, on purpose: a message to a team of a thousand writes a thousand rows, and
    PostgreSQL checks each foreign key with a trigger per row (three times the insert's cost).
    Users are never deleted; conversations take their notifications with them explicitly
    (`notification_queries.delete_notifications`), and lists join the conversation anyway.
    """

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_id_id", "user_id", "id"), _NEVER_REUSE_IDS)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(sa_column=Column(Integer, nullable=False))
    kind: str
    conversation_id: int = Field(sa_column=Column(Integer, nullable=False, index=True))
    title: str = Field(sa_column=Column(Text, nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = _when()
    read_at: datetime | None = _when(nullable=True)


class EmailDigest(SQLModel, table=True):
    """One user's notification email about one conversation: what waits to go out, and when the
    last one went. Claimed with a lease, retried with backoff (the email outbox)."""

    __tablename__ = "email_digests"
    __table_args__ = (
        UniqueConstraint("user_id", "conversation_id", name="uq_email_digests_user_conversation"),
        _NEVER_REUSE_IDS,
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = _ref("users.id", index=False)
    conversation_id: int = _ref("conversations.id")
    # What happened since the last email: [{"seq", "kind", "at", "message_id" | "actor_name"}].
    items: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    # The seq of the newest item so far: a sent email removes exactly the items it listed.
    item_seq: int = 0
    # When the pending items may go out (the end of the burst window, or a retry); null if none.
    due_at: datetime | None = _when(nullable=True, index=True)
    locked_until: datetime | None = _when(nullable=True)
    attempts: int = 0
    last_error: str | None = None
    last_sent_at: datetime | None = _when(nullable=True)


class Person(SQLModel, table=True):
    """A CRM person of the account."""

    __tablename__ = "persons"
    __table_args__ = _NEVER_REUSE_IDS

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _ref("accounts.id")
    name: str
    emails: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # As given, with the normalised form alongside: [{"value": "+1 415-555-0100",
    # "e164": "+14155550100"}].
    phones: list[dict[str, str]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    # What a search matches: the lower-cased name and emails, and the digits of the E.164
    # numbers, one per line.
    search_text: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_at: datetime = _when()
    updated_at: datetime = _when()


class Lead(SQLModel, table=True):
    __tablename__ = "leads"
    __table_args__ = _NEVER_REUSE_IDS

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _ref("accounts.id")
    title: str
    person_id: int | None = _ref("persons.id", nullable=True, cascade=False)
    created_at: datetime = _when()
    updated_at: datetime = _when()


class Deal(SQLModel, table=True):
    __tablename__ = "deals"
    __table_args__ = _NEVER_REUSE_IDS

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _ref("accounts.id")
    title: str
    value: float | None = None
    currency: str | None = None  # ISO 4217, upper case
    person_id: int | None = _ref("persons.id", nullable=True, cascade=False)
    created_at: datetime = _when()
    updated_at: datetime = _when()


class CrmLink(SQLModel, table=True):
    """A conversation linked to a person, lead or deal: its messages go into notes on the record."""

    __tablename__ = "crm_links"
    __table_args__ = (
        UniqueConstraint(
            "conversation_id", "target", "target_id", name="uq_crm_links_conversation_target"
        ),
        _NEVER_REUSE_IDS,
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _ref("accounts.id", index=False)
    conversation_id: int = _ref("conversations.id", index=False)
    target: str  # "person", "lead" or "deal"
    target_id: int  # a row of persons, leads or deals (so no foreign key)
    created_by: int | None = _ref("users.id", nullable=True, index=False, cascade=False)
    # How many notes the link has started; the current one is the one with this number.
    notes_started: int = 0
    created_at: datetime = _when()


class Note(SQLModel, table=True):
    """A note on a CRM record: a linked conversation's messages of one 24-hour window, as text."""

    __tablename__ = "notes"
    __table_args__ = (
        # One note per link and window, whatever the races (see server/domain/notes.py).
        UniqueConstraint("link_id", "number", name="uq_notes_link_number"),
        Index("ix_notes_target", "account_id", "target", "target_id", "id"),
        _NEVER_REUSE_IDS,
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _ref("accounts.id", index=False)
    target: str
    target_id: int
    # Notes outlive their conversation and link: a plain id, and a link that may become null.
    conversation_id: int = Field(sa_column=Column(Integer, nullable=False))
    link_id: int | None = _ref("crm_links.id", nullable=True, index=False, cascade=False)
    number: int  # the link's n-th note
    window_start: datetime = _when()
    # The oldest message the note covers; null: the whole conversation (the note of a new link).
    first_message_id: int | None = None
    content: str = Field(sa_column=Column(Text, nullable=False))
    edited: bool = False  # changed by a user: never rewritten by new messages again
    created_at: datetime = _when()
    updated_at: datetime = _when()
