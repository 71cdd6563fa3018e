"""WhatsApp via Twilio: signed webhooks, replies through Twilio's Messages API, status callbacks,
retries, and the 24-hour reply window; against a fake Twilio that speaks Twilio's wire format.

The servers here sit "behind a TLS-terminating proxy": PUBLIC_URL is https, requests arrive over
plain http at 127.0.0.1, and Twilio signs the PUBLIC_URL form of every URL.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from sqlalchemy import text
from twilio.request_validator import RequestValidator

from server.providers.base import OutboundMessage, SendError, WebhookRequest
from server.providers.twilio import TwilioWhatsAppProvider, twilio_signature
from server.state.db import Database
from tests.fake_twilio import FakeTwilio, FormParams, post_webhook
from tests.fake_twilio import twilio_signature as twilios_own_signature
from tests.support import (
    REQUIRE_ALL,
    Api,
    LiveServer,
    Team,
    create_pg_database,
    drop_pg_database,
    event_log,
    postgres_available,
    settings_for,
    wait_for,
    wipe,
)
from tests.support import TestClock as FakeClock  # not collected as a test class

PUBLIC_URL = "https://inbox.example.com"
OUR_NUMBER = "+14155238886"
CUSTOMER = "+14155550100"
EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'


# Servers, the fake, and a set-up per test ------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as twilio:
        yield twilio


@pytest.fixture(scope="module", params=("sqlite", "postgresql"))
def twilio_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake: FakeTwilio
) -> Iterator[LiveServer]:
    """A server per backend whose TWILIO_API_BASE is the fake, with a database of its own."""
    pg_url = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('twilio-sqlite') / 'twilio.db'}"
    elif postgres_available():
        url = pg_url = create_pg_database("switchboard_twilio")
    elif REQUIRE_ALL:
        pytest.fail("PostgreSQL is required (SWITCHBOARD_REQUIRE_ALL=1) but does not answer")
    else:
        pytest.skip("PostgreSQL is not available here (see the run's header)")
    data_dir: Path = tmp_path_factory.mktemp(f"twilio-data-{request.param}")
    settings = settings_for(url, data_dir, PUBLIC_URL=PUBLIC_URL, TWILIO_API_BASE=fake.url)
    live = LiveServer(settings, FakeClock())
    live.start()
    yield live
    live.stop()
    if pg_url:
        drop_pg_database(pg_url)


@dataclass
class WhatsApp:
    """One test's world: a team with a Twilio integration on a live server, and the fake."""

    api: Api
    server: LiveServer
    db: Database
    fake: FakeTwilio
    team: Team
    integration: dict[str, Any]

    @property
    def token(self) -> str:
        return self.team.admin.token

    @property
    def webhook_url(self) -> str:
        return f"{PUBLIC_URL}/webhooks/twilio/{self.integration['id']}"

    # Inbound ---------------------------------------------------------------------------------

    def params(self, **fields: str | None) -> list[tuple[str, str]]:
        """Twilio's inbound WhatsApp form; a field given as None is left out."""
        sid = fields.get("MessageSid") or "SM" + uuid.uuid4().hex
        sender = fields.get("From") or f"whatsapp:{CUSTOMER}"
        base: dict[str, str | None] = {
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "ProfileName": "Carla Customer",
            "MessageType": "text",
            "SmsSid": sid,
            "WaId": sender.removeprefix("whatsapp:+"),
            "SmsStatus": "received",
            "Body": "Hello!",
            "To": f"whatsapp:{OUR_NUMBER}",
            "NumSegments": "1",
            "ReferralNumMedia": "0",
            "MessageSid": sid,
            "AccountSid": self.fake.account_sid,
            "From": sender,
            "ApiVersion": "2010-04-01",
        }
        base.update(fields)
        return [(k, v) for k, v in base.items() if v is not None]

    def post(
        self,
        params: Sequence[tuple[str, str]],
        *,
        url: str | None = None,
        signed_url: str | None = None,
        auth_token: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """POST as Twilio does: signed over `signed_url` (default: the PUBLIC_URL form)."""
        url = url or self.webhook_url
        return post_webhook(
            signed_url or url,
            params,
            auth_token=auth_token or self.fake.auth_token,
            deliver_to=self.server.url,
            url=url,
            **kwargs,
        )

    def inbound(self, **fields: str | None) -> httpx.Response:
        return self.post(self.params(**fields))

    # Reading back ----------------------------------------------------------------------------

    def conversation(self, handle: str = CUSTOMER) -> dict[str, Any]:
        r = self.api.get("/api/v1/conversations", self.token)
        assert r.status_code == 200, r.text
        (found,) = [c for c in r.json()["items"] if c["contact"]["handle"] == handle]
        result: dict[str, Any] = found
        return result

    def messages(self, conversation_id: int) -> list[dict[str, Any]]:
        r = self.api.get(f"/api/v1/conversations/{conversation_id}/messages", self.token)
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items

    def message(self, conversation_id: int, message_id: int) -> dict[str, Any]:
        (found,) = [m for m in self.messages(conversation_id) if m["id"] == message_id]
        return found

    def stored(self) -> dict[str, int]:
        """Rows of this integration: contacts, conversations, messages."""
        counts = {}
        with self.db.read_engine.connect() as conn:
            for table in ("contacts", "conversations", "messages"):
                counts[table] = conn.execute(
                    text(f"SELECT COUNT(*) FROM {table} WHERE integration_id = :i"),
                    {"i": self.integration["id"]},
                ).scalar_one()
        return counts

    def events(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in event_log(self.db, self.team.account_id) if e["type"] == type_]

    # Replies ---------------------------------------------------------------------------------

    def reply(self, conversation_id: int, text: str = "Yes, it is in stock.") -> httpx.Response:
        return self.api.post(
            f"/api/v1/conversations/{conversation_id}/messages", self.token, json={"text": text}
        )

    def sent_reply(self, text: str = "Yes, it is in stock.") -> tuple[int, dict[str, Any]]:
        """A conversation with a reply Twilio accepted: (conversation id, the reply)."""
        assert self.inbound().status_code == 200
        conversation_id = self.conversation()["id"]
        r = self.reply(conversation_id, text)
        assert r.status_code == 201, r.text
        message_id = r.json()["id"]
        reply = wait_for(
            lambda: (m := self.message(conversation_id, message_id))["external_id"] and m
        )
        return conversation_id, reply

    def callback(self, sid: str, status: str, **kwargs: Any) -> httpx.Response:
        r = self.fake.status_callback(sid, status, deliver_to=self.server.url, **kwargs)
        assert r.status_code == 200, r.text
        assert r.content == EMPTY_TWIML
        return r

    def job(self) -> dict[str, Any] | None:
        with self.db.read_engine.connect() as conn:
            row = conn.execute(
                text("SELECT attempts, locked_until, last_error FROM outbound_jobs")
            ).first()
        return dict(row._mapping) if row else None


def install(api: Api, team: Team, fake: FakeTwilio, **config: str) -> httpx.Response:
    body = {
        "account_sid": fake.account_sid,
        "auth_token": fake.auth_token,
        "from_number": OUR_NUMBER,
        **config,
    }
    return api.post(
        "/api/v1/integrations",
        team.admin.token,
        json={"provider": "twilio_whatsapp", "name": "WhatsApp", "config": body},
    )


@pytest.fixture
def wa(twilio_server: LiveServer, fake: FakeTwilio) -> Iterator[WhatsApp]:
    db: Database = twilio_server.runtime.db
    wipe(db)
    twilio_server.clock.reset()
    fake.reset()
    api = Api(twilio_server)
    team = api.signup()
    r = install(api, team, fake)
    assert r.status_code == 201, r.text
    yield WhatsApp(api, twilio_server, db, fake, team, r.json())
    api.close()


def assert_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code, r.text


NOTHING = {"contacts": 0, "conversations": 0, "messages": 0}


# The signature: equal to Twilio's own ----------------------------------------------------------

PARAM_SETS: list[list[tuple[str, str]]] = [
    [],
    [("Body", "Hello!"), ("From", "whatsapp:+14155550100"), ("MessageSid", "SM" + "a" * 32)],
    [("Body", "Grüße, ¿qué tal? 你好 👋🏽"), ("ProfileName", "Zoë Ångström")],
    # Repeated names, with equal and distinct values, in any order.
    [("b", "2"), ("a", "z"), ("b", "1"), ("a", "a"), ("b", "2")],
    # Empty values, characters the form encoding escapes, names sorting by case.
    [("Body", ""), ("body", "x"), ("Z", "a+b&c=d %"), ("MediaUrl0", "https://x.test/?a=1&b=2")],
]
URLS = [
    "https://inbox.example.com/webhooks/twilio/7",
    "https://inbox.example.com:443/webhooks/twilio/7/status",
    "http://127.0.0.1:8080/webhooks/twilio/7?x=1&y=%C3%A9",
]


@pytest.mark.parametrize("params", PARAM_SETS)
@pytest.mark.parametrize("url", URLS)
def test_the_signature_equals_twilios_request_validator(
    url: str, params: list[tuple[str, str]]
) -> None:
    for token in ("12345", "a3f6c0de9c1a4b3aa0e5d1f0b2c4e6a8", "tökén"):
        assert twilio_signature(token, url, params) == RequestValidator(token).compute_signature(
            url, FormParams.of(params)
        )


@pytest.mark.parametrize(
    ("signed_url", "request_url"),
    [
        ("https://inbox.example.com/w/1", "https://inbox.example.com/w/1"),
        ("https://inbox.example.com:443/w/1", "https://inbox.example.com/w/1"),
        ("https://inbox.example.com/w/1", "https://inbox.example.com:443/w/1"),
        ("http://inbox.example.com:80/w/1", "http://inbox.example.com/w/1"),
        ("http://inbox.example.com:8080/w/1", "http://inbox.example.com:8080/w/1"),
        ("http://inbox.example.com/w/1", "http://inbox.example.com:8080/w/1"),
        ("http://inbox.example.com:80/w/1", "https://inbox.example.com/w/1"),
        ("https://inbox.example.com/w/2", "https://inbox.example.com/w/1"),
        ("https://other.example.com/w/1", "https://inbox.example.com/w/1"),
    ],
)
def test_verification_accepts_exactly_what_twilios_validator_accepts(
    signed_url: str, request_url: str
) -> None:
    token, params = "a3f6c0de9c1a4b3aa0e5d1f0b2c4e6a8", PARAM_SETS[2]
    signature = twilios_own_signature(token, signed_url, params)
    body = urlencode(params).encode()
    request = WebhookRequest(
        url=request_url,
        body=body,
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "x-twilio-signature": signature,
        },
    )
    ours = TwilioWhatsAppProvider().verify(request, public={}, secrets={"auth_token": token})
    assert ours == RequestValidator(token).validate(request_url, FormParams.of(params), signature)


def test_the_fake_checks_credentials_as_twilio_does(fake: FakeTwilio) -> None:
    url = f"{fake.url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
    form = {"From": f"whatsapp:{OUR_NUMBER}", "To": f"whatsapp:{CUSTOMER}", "Body": "hi"}
    fake.reset()
    r = httpx.post(url, data=form)
    assert r.status_code == 401 and r.json()["code"] == 20003
    r = httpx.post(url, data=form, auth=(fake.account_sid, "wrong"))
    assert r.status_code == 401 and r.json()["code"] == 20003
    other = url.replace(fake.account_sid, "AC" + "0" * 32)
    r = httpx.post(other, data=form, auth=(fake.account_sid, fake.auth_token))
    assert r.status_code == 404 and r.json()["code"] == 20404
    assert fake.sent == []


# Installing ------------------------------------------------------------------------------------


def test_install_validates_the_config_and_keeps_the_token_secret(wa: WhatsApp) -> None:
    integration = wa.integration
    assert integration["provider"] == "twilio_whatsapp"
    assert integration["webhook_url"] == wa.webhook_url
    assert integration["config"] == {
        "account_sid": wa.fake.account_sid,
        "from_number": OUR_NUMBER,
    }
    for config, field in [
        ({"from_number": "14155238886"}, "config.from_number"),
        ({"from_number": "whatsapp:+14155238886"}, "config.from_number"),
        ({"account_sid": "AC123/../../x"}, "config.account_sid"),
        ({"auth_token": ""}, "config.auth_token"),
        ({"extra": "x"}, "config.extra"),
    ]:
        r = install(wa.api, wa.team, wa.fake, **config)
        assert_error(r, 422, "validation_error")
        assert field in r.json()["error"]["fields"], r.text


# Inbound ---------------------------------------------------------------------------------------


def test_an_inbound_message_is_stored_with_name_handle_and_media(wa: WhatsApp) -> None:
    r = wa.inbound(
        MessageSid="SM" + "1" * 32,
        Body="Is this one in stock?",
        NumMedia="2",
        MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
        MediaContentType0="image/jpeg",
        MediaUrl1="https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2",
        MediaContentType1="application/pdf",
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/xml")
    assert r.content == EMPTY_TWIML

    conversation = wa.conversation()
    assert conversation["provider"] == "twilio_whatsapp"
    assert conversation["contact"]["handle"] == CUSTOMER
    assert conversation["contact"]["name"] == "Carla Customer"
    assert conversation["section"] == "unassigned"
    (message,) = wa.messages(conversation["id"])
    assert message["direction"] == "inbound"
    assert message["status"] == "received"
    assert message["text"] == "Is this one in stock?"
    assert message["external_id"] == "SM" + "1" * 32
    assert message["sender"] == {
        "type": "contact",
        "id": conversation["contact"]["id"],
        "name": "Carla Customer",
    }
    assert message["attachments"] == [
        {
            "url": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
            "content_type": "image/jpeg",
        },
        {
            "url": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2",
            "content_type": "application/pdf",
        },
    ]
    assert [e["type"] for e in event_log(wa.db, wa.team.account_id)][-2:] == [
        "conversation.created",
        "message.created",
    ]


def test_a_message_without_text_is_kept_with_a_placeholder(wa: WhatsApp) -> None:
    media = {
        "NumMedia": "2",
        "MediaUrl0": "https://x.test/ME1",
        "MediaContentType0": "audio/ogg",
        "MediaUrl1": "https://x.test/ME2",
        "MediaContentType1": "application/pdf",
    }
    assert wa.inbound(Body="", MessageType="audio", **media).status_code == 200
    location = {"Latitude": "52.52", "Longitude": "13.40", "MessageType": "location"}
    assert wa.inbound(Body="", **location).status_code == 200
    assert wa.inbound(Body=None, MessageType=None).status_code == 200
    first, second, third = reversed(wa.messages(wa.conversation()["id"]))
    assert first["text"] == "[audio] [file]"
    assert first["attachments"] == [
        {"url": "https://x.test/ME1", "content_type": "audio/ogg"},
        {"url": "https://x.test/ME2", "content_type": "application/pdf"},
    ]
    assert (second["text"], second["attachments"]) == ("[location]", [])
    assert third["text"] == "[unsupported message]"


def test_a_retried_message_sid_is_stored_once(wa: WhatsApp) -> None:
    params = wa.params(Body="once")
    for _ in range(3):  # Twilio retries with the same MessageSid
        r = wa.post(params)
        assert r.status_code == 200, r.text
        assert r.content == EMPTY_TWIML
    assert wa.stored() == {"contacts": 1, "conversations": 1, "messages": 1}
    assert len(wa.events("message.created")) == 1


def test_the_profile_name_follows_the_contact(wa: WhatsApp) -> None:
    assert wa.inbound(ProfileName="Carla").status_code == 200
    assert wa.inbound(ProfileName="Carla Gómez").status_code == 200
    assert wa.inbound(ProfileName=None).status_code == 200
    conversation = wa.conversation()
    assert conversation["contact"]["name"] == "Carla Gómez"
    assert len(wa.messages(conversation["id"])) == 3
    assert wa.stored()["contacts"] == 1


def test_a_bad_signature_is_refused_and_nothing_is_stored(wa: WhatsApp) -> None:
    params = wa.params()
    assert_error(wa.post(params, signature="bm90IGEgc2lnbmF0dXJl"), 403, "forbidden")
    assert_error(wa.post(params, signature=""), 403, "forbidden")
    assert_error(wa.post(params, auth_token="0" * 32), 403, "forbidden")
    # Signed for another integration's URL.
    other = f"{PUBLIC_URL}/webhooks/twilio/{wa.integration['id'] + 1}"
    assert_error(wa.post(params, signed_url=other), 403, "forbidden")
    # A parameter changed after signing.
    signature = twilios_own_signature(wa.fake.auth_token, wa.webhook_url, params)
    tampered = [(k, "Send me money" if k == "Body" else v) for k, v in params]
    assert_error(wa.post(tampered, signature=signature), 403, "forbidden")
    # A parameter added after signing.
    assert_error(wa.post([*params, ("Extra", "1")], signature=signature), 403, "forbidden")
    assert wa.stored() == NOTHING
    # The same request, correctly signed, goes through.
    assert wa.post(params, signature=signature).status_code == 200


def test_signatures_over_the_public_url_pass_a_tls_terminating_proxy(wa: WhatsApp) -> None:
    proxy = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "54.172.60.1"}
    proxy["Host"] = "inbox.example.com"
    path = f"/webhooks/twilio/{wa.integration['id']}"
    # What the server literally received (http, its own host and port) is not what Twilio signed.
    r = wa.post(wa.params(), signed_url=wa.server.url + path, headers=proxy)
    assert_error(r, 403, "forbidden")
    assert wa.post(wa.params(), headers=proxy).status_code == 200
    # Twilio may sign with the default port spelled out; RequestValidator accepts both.
    r = wa.post(wa.params(), signed_url=f"https://inbox.example.com:443{path}", headers=proxy)
    assert r.status_code == 200, r.text
    assert_error(
        wa.post(wa.params(), signed_url=f"http://inbox.example.com{path}"), 403, "forbidden"
    )
    assert wa.stored()["messages"] == 2


def test_another_accounts_message_is_refused(wa: WhatsApp) -> None:
    r = wa.inbound(AccountSid="AC" + "f" * 32)
    assert_error(r, 403, "forbidden")
    assert wa.stored() == NOTHING


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"From": None}, "From"),
        ({"MessageSid": None}, "MessageSid"),
        ({"AccountSid": None}, "AccountSid"),
        ({"From": "+14155550100"}, "From"),  # not a WhatsApp address
        ({"From": "whatsapp:Carla"}, "From"),
        ({"NumMedia": "two"}, "NumMedia"),
        ({"NumMedia": "²"}, "NumMedia"),
        ({"MessageSid": "SM" + "0" * 300}, "MessageSid"),
        ({"NumMedia": "2", "MediaUrl0": "https://x.test/1"}, "MediaUrl1"),
    ],
)
def test_a_malformed_form_is_400(wa: WhatsApp, fields: dict[str, str | None], problem: str) -> None:
    r = wa.post(wa.params(**fields))
    assert_error(r, 400, "bad_request")
    assert problem in (r.json()["error"].get("fields") or {}), r.text
    assert wa.stored() == NOTHING


def test_a_body_that_is_not_a_form_is_400(wa: WhatsApp) -> None:
    body = orjson.dumps({"MessageSid": "SM1", "From": f"whatsapp:{CUSTOMER}", "Body": "hi"})
    # Signed the way Twilio signs a request without form parameters: the URL alone.
    signature = twilios_own_signature(wa.fake.auth_token, wa.webhook_url, [])
    headers = {"Content-Type": "application/json", "X-Twilio-Signature": signature}
    r = httpx.post(
        wa.server.url + f"/webhooks/twilio/{wa.integration['id']}", content=body, headers=headers
    )
    assert_error(r, 400, "bad_request")
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    bad = httpx.post(
        wa.server.url + f"/webhooks/twilio/{wa.integration['id']}",
        content=b"\xff\xfe=\xff",
        headers=headers,
    )
    assert_error(bad, 400, "bad_request")  # not UTF-8: no parameters, and malformed
    assert wa.stored() == NOTHING


def test_an_unknown_or_foreign_integration_is_404(wa: WhatsApp) -> None:
    missing = f"{PUBLIC_URL}/webhooks/twilio/{wa.integration['id'] + 1000}"
    assert_error(wa.post(wa.params(), url=missing), 404, "not_found")
    api_integration = wa.team.install()
    foreign = f"{PUBLIC_URL}/webhooks/twilio/{api_integration['id']}"
    assert_error(wa.post(wa.params(), url=foreign), 404, "not_found")


# Outbound --------------------------------------------------------------------------------------


def test_a_reply_reaches_twilio_with_its_fields_and_gets_the_sid(wa: WhatsApp) -> None:
    _, reply = wa.sent_reply("Yes, in blue and red — 20 €")
    (request,) = wa.fake.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{wa.fake.account_sid}/Messages.json"
    assert request.credentials == (wa.fake.account_sid, wa.fake.auth_token)
    assert request.form == {
        "From": f"whatsapp:{OUR_NUMBER}",
        "To": f"whatsapp:{CUSTOMER}",
        "Body": "Yes, in blue and red — 20 €",
        "StatusCallback": f"{wa.webhook_url}/status",
    }
    (sent,) = wa.fake.sent
    assert reply["external_id"] == sent.sid
    # Twilio answers "queued": accepted, not yet sent.
    assert reply["status"] == "queued"
    assert reply["error"] is None
    assert reply["direction"] == "outbound"
    updated = [e["data"]["message"] for e in wa.events("message.updated")]
    assert [(m["id"], m["external_id"], m["status"]) for m in updated] == [
        (reply["id"], sent.sid, "queued")
    ]
    assert wa.job() is None


def test_status_callbacks_move_the_reply_forward_and_never_back(wa: WhatsApp) -> None:
    conversation_id, reply = wa.sent_reply()
    sid = reply["external_id"]

    def status() -> str:
        return str(wa.message(conversation_id, reply["id"])["status"])

    for twilio_status, ours in [
        ("sending", "queued"),
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("sent", "delivered"),  # late and out of order: ignored
        ("queued", "delivered"),
        ("read", "read"),
        ("delivered", "read"),
    ]:
        wa.callback(sid, twilio_status)
        assert status() == ours, twilio_status
    updates = [e["data"]["message"] for e in wa.events("message.updated")]
    assert [m["status"] for m in updates if m["id"] == reply["id"]] == [
        "queued",
        "sent",
        "delivered",
        "read",
    ]
    assert wa.stored()["messages"] == 2


def test_a_status_callback_that_overtakes_the_send_is_not_lost(wa: WhatsApp) -> None:
    """Twilio may report "delivered" before its answer to our send arrives (so before we know
    the sid): the status waits for the send to be recorded, then applies."""
    overtaken: list[int] = []

    def deliver_first(message: Any) -> None:
        r = wa.fake.status_callback(message.sid, "delivered", deliver_to=wa.server.url)
        overtaken.append(r.status_code)

    wa.fake.before_answer = deliver_first
    try:
        assert wa.inbound().status_code == 200
        conversation_id = wa.conversation()["id"]
        r = wa.reply(conversation_id, "Quick!")
        assert r.status_code == 201, r.text
        message_id = r.json()["id"]
        reply = wait_for(
            lambda: (m := wa.message(conversation_id, message_id))["external_id"] and m
        )
    finally:
        wa.fake.before_answer = None
    assert overtaken == [200]
    assert reply["status"] == "delivered"
    assert reply["external_id"] == wa.fake.sent[0].sid
    with wa.db.read_engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM early_statuses")).scalar_one() == 0


def test_an_undelivered_reply_fails_with_twilios_error_code(wa: WhatsApp) -> None:
    conversation_id, reply = wa.sent_reply()
    wa.callback(reply["external_id"], "sent")
    wa.callback(
        reply["external_id"],
        "undelivered",
        error_code="63016",
        error_message="Failed to send freeform message because you are outside the allowed window.",
    )
    message = wa.message(conversation_id, reply["id"])
    assert message["status"] == "failed"
    assert message["error"].startswith("Twilio error 63016: Failed to send freeform message")
    wa.callback(reply["external_id"], "delivered")  # failed is final
    assert wa.message(conversation_id, reply["id"])["status"] == "failed"
    failed = [e["data"]["message"] for e in wa.events("message.updated")][-1]
    assert (failed["id"], failed["status"]) == (reply["id"], "failed")


def test_a_status_callback_needs_a_valid_signature(wa: WhatsApp) -> None:
    conversation_id, reply = wa.sent_reply()
    params = [("MessageSid", reply["external_id"]), ("MessageStatus", "delivered")]
    params.append(("AccountSid", wa.fake.account_sid))
    status_url = f"{wa.webhook_url}/status"
    # Signed over the inbound URL, not the status URL it was posted to.
    r = wa.post(params, url=status_url, signed_url=wa.webhook_url)
    assert_error(r, 403, "forbidden")
    assert_error(wa.post(params, url=status_url, auth_token="0" * 32), 403, "forbidden")
    assert wa.message(conversation_id, reply["id"])["status"] == "queued"
    assert_error(wa.post(params[:1], url=status_url), 400, "bad_request")  # no MessageStatus
    assert wa.post(params, url=status_url).status_code == 200
    assert wa.message(conversation_id, reply["id"])["status"] == "delivered"


def test_transient_failures_are_retried_and_the_reply_is_sent_once(wa: WhatsApp) -> None:
    wa.fake.fail_next(500, times=2)
    assert wa.inbound().status_code == 200
    conversation_id = wa.conversation()["id"]
    r = wa.reply(conversation_id, "Third time lucky")
    assert r.status_code == 201, r.text
    message_id = r.json()["id"]
    for attempt in (1, 2):
        # The failure is recorded and a retry scheduled for later; then time moves on to it.
        job = wait_for(
            lambda n=attempt: (
                (j := wa.job()) and j["attempts"] == n and j["locked_until"] is None and j
            )
        )
        assert job["last_error"] == "Twilio error 20500: An internal server error has occurred"
        message = wa.message(conversation_id, message_id)
        assert (message["status"], message["external_id"]) == ("queued", None)
        assert len(wa.fake.requests) == attempt
        wa.server.clock.advance(seconds=10)
    reply = wait_for(
        lambda: (m := wa.message(conversation_id, message_id))["external_id"] and m, timeout=15
    )
    assert [request.status for request in wa.fake.requests] == [500, 500, 201]
    (sent,) = wa.fake.sent
    assert sent.body == "Third time lucky"
    assert reply["external_id"] == sent.sid
    assert reply["status"] == "queued"
    assert reply["error"] is None
    assert wa.stored()["messages"] == 2
    assert wa.job() is None
    # Retries emit nothing; only the outcome does.
    assert [e["data"]["message"]["id"] for e in wa.events("message.updated")] == [message_id]


def test_a_refused_reply_fails_at_once_with_twilios_error(wa: WhatsApp) -> None:
    wa.fake.fail_next(400, code=21211)
    assert wa.inbound().status_code == 200
    conversation_id = wa.conversation()["id"]
    r = wa.reply(conversation_id)
    assert r.status_code == 201, r.text
    message_id = r.json()["id"]
    message = wait_for(
        lambda: (m := wa.message(conversation_id, message_id))["status"] == "failed" and m
    )
    assert message["error"] == (
        "Twilio error 21211: The 'To' number +15005550001 is not a valid phone number."
    )
    assert message["external_id"] is None
    assert len(wa.fake.requests) == 1  # not retried
    assert wa.fake.sent == []
    assert wa.job() is None
    (updated,) = wa.events("message.updated")
    assert updated["data"]["message"]["status"] == "failed"


def test_wrong_credentials_fail_the_reply_with_twilios_error(wa: WhatsApp) -> None:
    assert wa.inbound().status_code == 200
    conversation_id = wa.conversation()["id"]
    r = wa.api.patch(
        f"/api/v1/integrations/{wa.integration['id']}",
        wa.token,
        json={"config": {"auth_token": "0" * 32}},
    )
    assert r.status_code == 200, r.text
    message_id = wa.reply(conversation_id).json()["id"]
    message = wait_for(
        lambda: (m := wa.message(conversation_id, message_id))["status"] == "failed" and m
    )
    assert message["error"] == "Twilio error 20003: Authenticate"
    assert [request.status for request in wa.fake.requests] == [401]


# The 24-hour window ----------------------------------------------------------------------------


def test_replies_only_within_24_hours_of_the_contacts_last_message(wa: WhatsApp) -> None:
    assert wa.inbound(Body="first").status_code == 200
    conversation_id = wa.conversation()["id"]
    wa.server.clock.advance(hours=23, minutes=59)
    r = wa.reply(conversation_id, "just in time")
    assert r.status_code == 201, r.text
    wait_for(lambda: len(wa.fake.sent) == 1)

    wa.server.clock.advance(hours=1, minutes=2)  # 25 h after the contact's message
    assert_error(wa.reply(conversation_id, "too late"), 409, "reply_window_closed")
    # Our own replies do not reopen the window; only the contact's messages do.
    assert_error(wa.reply(conversation_id, "still too late"), 409, "reply_window_closed")
    assert [m["text"] for m in wa.messages(conversation_id)] == ["just in time", "first"]

    assert wa.inbound(Body="hello again").status_code == 200
    r = wa.reply(conversation_id, "welcome back")
    assert r.status_code == 201, r.text
    wait_for(lambda: len(wa.fake.sent) == 2)
    assert [m.body for m in wa.fake.sent] == ["just in time", "welcome back"]


# The provider's send, against Twilio's answers -------------------------------------------------


def _send_with(handler: Any) -> SendError | str:
    """Send one reply through a client whose transport answers with `handler`."""

    async def run() -> SendError | str:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            provider = TwilioWhatsAppProvider(None, client)
            message = OutboundMessage(1, 1, 1, 1, CUSTOMER, "hi", datetime.now(UTC))
            public = {"account_sid": "AC" + "1" * 32, "from_number": OUR_NUMBER}
            try:
                result = await provider.send(message, public=public, secrets={"auth_token": "t"})
            except SendError as exc:
                return exc
            return f"{result.status} {result.external_id}"

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("status", "body", "transient", "error"),
    [
        (500, {"code": 20500, "message": "Internal"}, True, "Twilio error 20500: Internal"),
        (503, b"<html>unavailable</html>", True, "Twilio answered 503"),
        (429, {"code": 20429, "message": "Too Many Requests"}, True, "Twilio error 20429"),
        (400, {"code": 21211, "message": "Invalid 'To'", "status": 400}, False, "21211"),
        (401, {"code": 20003, "message": "Authenticate"}, False, "Twilio error 20003"),
        (302, b"", False, "Twilio answered 302"),
        (201, {"status": "queued"}, False, "no message sid"),
        (201, {"sid": "SM1", "status": "failed", "error_code": 30008}, False, "30008"),
    ],
)
def test_twilios_answers_map_to_transient_and_final_failures(
    status: int, body: Any, transient: bool, error: str
) -> None:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    outcome = _send_with(lambda request: httpx.Response(status, content=content))
    assert isinstance(outcome, SendError)
    assert outcome.transient is transient
    assert error in str(outcome)


def test_a_timeout_is_transient_and_accepted_statuses_map_to_ours() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    outcome = _send_with(timeout)
    assert isinstance(outcome, SendError) and outcome.transient
    for twilio_status, ours in [("accepted", "queued"), ("queued", "queued"), ("sent", "sent")]:
        body = orjson.dumps({"sid": "SM9", "status": twilio_status})
        assert _send_with(lambda r, b=body: httpx.Response(201, content=b)) == f"{ours} SM9"
