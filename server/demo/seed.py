"""Creating the demo workspace once, through the domain layer, and finding it again.

`ensure_demo` runs every step of `content` through the same domain functions the API calls
(`sign_up`, `create_user`, `install`, `ingest_inbound_message`, `assign`, `reply`, `link`, ...),
with a clock set to each step's moment, so that timestamps, counts, notes, notifications and the
event log are exactly what that history would have produced live. Replies of the past are
finished through the delivery functions too (`claim`, `record_sent`, then the receipts the
customer's app would have sent), so nothing is left for the outbound worker to send.

It all happens in one transaction: the workspace is there completely or not at all, and running
it again (another start of the demo) finds the demo admin and changes nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from server.clock import system_clock
from server.config import Settings
from server.demo import content
from server.domain import accounts, conversations, delivery, integrations, links, records
from server.domain.accounts import actor_of
from server.domain.events import seal
from server.domain.ingest import ingest_inbound_message
from server.domain.services import Actor, Services
from server.errors import EmailTaken
from server.providers.base import InboundMessage, SendResult, StatusUpdate, Watermark
from server.state import account_queries
from server.state.db import Database
from server.state.migrate import upgrade
from server.state.models import Account, Integration, User


@dataclass(frozen=True)
class DemoUser:
    id: int
    key: str
    name: str
    email: str
    role: str
    available: bool


@dataclass(frozen=True)
class DemoChannel:
    """An integration of the demo workspace, with its settings and secrets."""

    id: int
    provider: str
    name: str
    public: dict[str, Any]
    secrets: dict[str, Any]

    @property
    def secret(self) -> str:
        """What signs its webhooks (webhook_secret, auth_token or app_secret)."""
        return str(self.secrets.get(content.SIGNING_SECRET[self.provider], ""))


@dataclass(frozen=True)
class DemoWorkspace:
    account_id: int
    account_name: str
    users: tuple[DemoUser, ...]
    channels: tuple[DemoChannel, ...]
    # True if this call created it; False if it was already there.
    created: bool
    password: str = content.PASSWORD

    @property
    def admin(self) -> DemoUser:
        return next(u for u in self.users if u.role == "admin")


class SeedClock:
    """The seeding's "now": moved to each step's moment in the past, then back to the present."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.at = now

    def __call__(self) -> datetime:
        return self.at


def ensure_demo(settings: Settings, *, now: datetime | None = None) -> DemoWorkspace:
    """The demo workspace of this installation, created (schema migrated first) if it is missing."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database_url)
    try:
        upgrade(db.write_engine)
        clock = SeedClock(now or system_clock())
        services = Services.from_settings(settings, clock)

        def work(session: Session) -> DemoWorkspace:
            found = _find(session, services)
            if found is not None:
                return found
            _seed(session, services, clock)
            seal(session)  # the events get their seqs and go into the log, as after any action
            created = _find(session, services, created=True)
            assert created is not None
            return created

        try:
            return db.write(work)
        except EmailTaken:
            # Another process seeded it at the same moment (PostgreSQL): theirs is the demo.
            workspace = db.read(lambda s: _find(s, services))
            if workspace is None:
                raise
            return workspace
    finally:
        db.dispose()


def find_demo(settings: Settings) -> DemoWorkspace | None:
    """The demo workspace if this installation has one (nothing is created or migrated)."""
    db = Database(settings.database_url)
    try:
        services = Services.from_settings(settings)
        return db.read(lambda s: _find(s, services))
    finally:
        db.dispose()


def is_demo_email(email: str) -> bool:
    return email.lower().endswith("@" + content.EMAIL_DOMAIN)


def _find(session: Session, services: Services, *, created: bool = False) -> DemoWorkspace | None:
    admin = account_queries.user_by_email(session, email=content.ADMIN.email)
    if admin is None:
        return None
    account = session.get(Account, admin.account_id)
    assert account is not None and account.id is not None
    users = tuple(
        DemoUser(u.id or 0, u.email.split("@")[0], u.name, u.email, u.role, u.available)
        for u in account_queries.users_of_account(session, account_id=account.id)
        if is_demo_email(u.email)
    )
    channels = []
    for integration in account_queries.integrations_of_account(session, account_id=account.id):
        channel = _channel(services, integration)
        if channel is not None:
            channels.append(channel)
    return DemoWorkspace(account.id, account.name, users, tuple(channels), created)


def _channel(services: Services, integration: Integration) -> DemoChannel | None:
    key = content.SIGNING_SECRET.get(integration.provider)
    try:
        secrets = services.box.open(integration.config_secret)
    except RuntimeError:  # SECRET_KEY changed since: the demo cannot sign for this channel
        return None
    if key is None or not isinstance(secrets.get(key), str):
        return None
    return DemoChannel(
        integration.id or 0,
        integration.provider,
        integration.name,
        dict(integration.config_public),
        secrets,
    )


# Seeding ----------------------------------------------------------------------------------------


@dataclass
class _Seeding:
    session: Session
    services: Services
    clock: SeedClock
    users: dict[str, User] = field(default_factory=dict)
    channels: dict[str, Integration] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)
    conversations: dict[str, int] = field(default_factory=dict)
    # Replies the customer has not read yet, per conversation: the provider's ids for them.
    unread_replies: dict[str, list[str]] = field(default_factory=dict)
    inbound_count: dict[str, int] = field(default_factory=dict)

    def actor(self, key: str) -> Actor:
        return actor_of(self.users[key])

    def at(self, before_now: timedelta) -> None:
        self.clock.at = self.clock.now - before_now


def _seed(session: Session, services: Services, clock: SeedClock) -> None:
    s = _Seeding(session, services, clock)
    s.at(content.ago(d=6))
    _team(s)
    _channels(s)
    _crm(s)
    # Every step of every conversation, in the order they happened.
    timeline: list[tuple[timedelta, int, content.ConversationSpec | None, Any]] = []
    for spec in content.CONVERSATIONS:
        for step in spec.steps:
            timeline.append((step.ago, len(timeline), spec, step))
    timeline.append((content.SAM_AWAY, len(timeline), None, "away"))
    timeline.sort(key=lambda item: (-item[0], item[1]))
    for before_now, _, conversation, step in timeline:
        s.at(before_now)
        if conversation is None:
            for teammate in content.TEAM:
                if not teammate.available:
                    accounts.set_availability(
                        session, services, s.actor(teammate.key), available=False
                    )
        else:
            _step(s, conversation, step)
    clock.at = clock.now


def _team(s: _Seeding) -> None:
    admin = content.ADMIN
    _, issued = accounts.sign_up(
        s.session,
        s.services,
        company_name=content.ACCOUNT_NAME,
        name=admin.name,
        email=admin.email,
        password=content.PASSWORD,
    )
    s.users[admin.key] = issued.user
    for teammate in content.TEAM:
        if teammate is admin:
            continue
        s.at(content.ago(d=6) - timedelta(minutes=5 * len(s.users)))
        s.users[teammate.key] = accounts.create_user(
            s.session,
            s.services,
            s.actor(admin.key),
            name=teammate.name,
            email=teammate.email,
            password=content.PASSWORD,
            role=teammate.role,
        ).user


def _channels(s: _Seeding) -> None:
    s.at(content.ago(d=5, h=23))
    team = [u.id or 0 for key, u in s.users.items() if key != content.ADMIN.key]
    for spec in content.CHANNELS:
        s.channels[spec.provider] = integrations.install(
            s.session,
            s.services,
            s.actor(content.ADMIN.key),
            provider=spec.provider,
            name=spec.name,
            config=dict(spec.config),
            shared_with=team,
        )


def _crm(s: _Seeding) -> None:
    s.at(content.ago(d=5, h=22))
    admin = s.actor(content.ADMIN.key)
    for person in content.PERSONS:
        new = records.NewPerson(
            name=person.name,
            emails=person.emails,
            phones=tuple((f"phones.{i}", p) for i, p in enumerate(person.phones)),
        )
        s.records[f"person:{person.key}"] = _id(records.create(s.session, s.services, admin, new))
    for lead in content.LEADS:
        new_lead = records.NewLead(title=lead.title, person_id=_person(s, lead.person))
        s.records[f"lead:{lead.key}"] = _id(records.create(s.session, s.services, admin, new_lead))
    for deal in content.DEALS:
        new_deal = records.NewDeal(
            title=deal.title,
            value=deal.value,
            currency=deal.currency,
            person_id=_person(s, deal.person),
        )
        s.records[f"deal:{deal.key}"] = _id(records.create(s.session, s.services, admin, new_deal))


def _person(s: _Seeding, key: str | None) -> int | None:
    return s.records[f"person:{key}"] if key else None


def _id(record: Any) -> int:
    record_id = record.id
    assert isinstance(record_id, int)
    return record_id


def _step(s: _Seeding, spec: content.ConversationSpec, step: content.Step) -> None:
    session, services = s.session, s.services
    if isinstance(step, content.In):
        _customer_writes(s, spec, step.text)
        return
    conversation_id = s.conversations[spec.key]
    if isinstance(step, content.Out):
        _reply(s, spec, step)
    elif isinstance(step, content.Assign):
        conversations.assign(
            session,
            services,
            s.actor(step.by),
            conversation_id=conversation_id,
            assignee_id=s.users[step.to].id or 0,
        )
    elif isinstance(step, content.Close):
        conversations.set_status(
            session, services, s.actor(step.by), conversation_id=conversation_id, status="closed"
        )
    else:
        target = step.record.split(":")[0]
        links.link(
            session,
            services,
            s.actor(step.by),
            conversation_id=conversation_id,
            target=target,
            target_id=s.records[step.record],
        )


def _customer_writes(s: _Seeding, spec: content.ConversationSpec, text: str) -> None:
    integration = s.channels[spec.channel]
    assert integration.id is not None
    # Before writing, the customer's app reported our replies read.
    _replies_read(s, spec)
    n = s.inbound_count[spec.key] = s.inbound_count.get(spec.key, 0) + 1
    ingested = ingest_inbound_message(
        s.session,
        s.services,
        integration=integration,
        inbound=InboundMessage(
            external_id=f"demo-{spec.key}-{n}",
            contact_handle=spec.handle,
            contact_name=spec.name,
            text=text,
        ),
    )
    s.conversations[spec.key] = ingested.conversation_id


def _reply(s: _Seeding, spec: content.ConversationSpec, step: content.Out) -> None:
    """A teammate reads the conversation and replies; the reply goes out as it would have."""
    session, services, actor = s.session, s.services, s.actor(step.by)
    conversation_id = s.conversations[spec.key]
    conversations.mark_read(session, services, actor, conversation_id=conversation_id)
    message, _, job_id = conversations.reply(
        session, services, actor, conversation_id=conversation_id, text=step.text
    )
    assert delivery.claim(session, services, job_id=job_id) is not None
    if spec.channel == "api":  # no callback_url: recorded is delivered
        delivery.record_sent(session, services, job_id=job_id, result=SendResult(None))
        return
    provider_id = _provider_message_id(spec, message.id or 0)
    result = SendResult(provider_id, "sent")
    delivery.record_sent(session, services, job_id=job_id, result=result)
    integration_id = s.channels[spec.channel].id or 0
    delivery.apply_status(
        session,
        services,
        integration_id=integration_id,
        update=StatusUpdate(provider_id, "delivered"),
    )
    s.unread_replies.setdefault(spec.key, []).append(provider_id)


def _replies_read(s: _Seeding, spec: content.ConversationSpec) -> None:
    pending = s.unread_replies.pop(spec.key, [])
    if not pending:
        return
    integration_id = s.channels[spec.channel].id or 0
    if spec.channel == "messenger":  # Messenger reports reads as a watermark
        delivery.apply_watermark(
            s.session,
            s.services,
            integration_id=integration_id,
            watermark=Watermark(spec.handle, "read", s.clock()),
        )
        return
    for provider_id in pending:
        delivery.apply_status(
            s.session,
            s.services,
            integration_id=integration_id,
            update=StatusUpdate(provider_id, "read"),
        )


def _provider_message_id(spec: content.ConversationSpec, message_id: int) -> str:
    digest = hashlib.sha256(f"demo-{spec.key}-{message_id}".encode()).hexdigest()
    return f"SM{digest[:32]}" if spec.channel == "twilio_whatsapp" else f"m_demo{digest[:24]}"
