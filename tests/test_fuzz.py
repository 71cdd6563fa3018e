"""Fuzzing a live server: no input makes it answer 5xx, hang, or fall over.

- schemathesis, over HTTP to the real uvicorn, sends every operation of the server's own
  `GET /openapi.json` valid and invalid requests (and valid ones aimed at seeded rows), as a
  session of a seeded account's admin; then a valid request with its ids at the edges of the
  databases' integer types, and with a NUL in every string. Every answer must be below 500, and
  every 4xx in the error envelope.
- `GET /ws` gets hypothesis-made frames: text, binary, JSON of any shape, unicode and sizes up to
  (and just over) the 64 KiB frame limit. Every frame is answered (`pong` or an `error` frame), or
  the connection is closed with a documented code (1009 too big, 1008 flooding).
- The webhooks (`api`, Twilio, Twilio status, Messenger, Messenger's verification) get
  hypothesis-made bodies, signed right and wrong: the answers are only 200/400/403/404/413/422/429,
  a refused body stores nothing, and an accepted `api` message is stored once.
- Afterwards `GET /healthz` and `GET /readyz` are 200, a fresh websocket still gets `hello`, and a
  new account's message is stored and listed.

A server of this module's own per database backend (SQLite, PostgreSQL), on a database of its own,
with every outside service it may call (Twilio, Meta, callbacks) faked on 127.0.0.1.

Each fuzz test runs a fixed, derandomized number of examples (no shrinking) and does not stop at
the first failure: it collects the distinct failures, one example each, with the exception and
line the server logged for a 500, and reports them all at the end.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
import requests
import schemathesis
import websockets
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from sqlalchemy import text

from server.handlers.routes import ENDPOINTS
from server.security.signatures import sign_sha256
from server.state.db import Database
from tests.fake_meta import FakeMeta
from tests.fake_twilio import FakeTwilio
from tests.fake_twilio import twilio_signature as twilios_own_signature
from tests.fakes import FakeCallback
from tests.nodes import open_ws
from tests.support import (
    REQUIRE_ALL,
    Api,
    LiveServer,
    Team,
    create_pg_database,
    drop_pg_database,
    postgres_available,
    settings_for,
)
from tests.support import TestClock as FakeClock  # not collected as a test class

PUBLIC_URL = "http://switchboard.fuzz"
PAGE_ID = "104729584712345"
PAGE_TOKEN = "EAAGm0PX4ZCpsBA-fuzz-page-token"
APP_SECRET = "fuzz-app-secret"
VERIFY_TOKEN = "fuzz-verify-token"
API_SECRET = "fuzz-webhook-secret"
CUSTOMER = "+14155550100"
FRAME_LIMIT = 64 * 1024  # UVICORN_OPTIONS["ws_max_size"]
BODY_LIMIT = 1024 * 1024
REQUEST_TIMEOUT = 10.0  # a request not answered by then counts as a hang
WEBHOOK_STATUSES = {200, 400, 403, 404, 413, 422, 429}

# A fixed number of examples, the same ones every run, each bounded in time; no shrinking (each
# failure is reported as found, with its request), so the run time stays bounded too.
FUZZ = settings(
    max_examples=15,
    derandomize=True,
    database=None,
    deadline=timedelta(seconds=REQUEST_TIMEOUT + 5),
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)


# Findings: distinct failures, reported together ------------------------------------------------


@dataclass
class Findings:
    """Failures by kind; the first example of each kind is kept for the report."""

    what: str
    found: dict[str, str] = field(default_factory=dict)
    examples: int = 0
    errors: ServerErrors = field(default_factory=lambda: ServerErrors())

    def __enter__(self) -> Findings:
        self.errors.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.errors.__exit__()

    def cause(self, status: int) -> str:
        """For a 5xx: the exception the server logged for it."""
        return (self.errors.take() or "nothing logged") if status >= 500 else ""

    def add(self, kind: str, detail: str) -> None:
        self.found.setdefault(kind, detail)

    def check(self) -> None:
        assert self.examples > 0, f"{self.what}: no example ran"
        if self.found:
            report = "\n\n".join(f"### {kind}\n{detail}" for kind, detail in self.found.items())
            pytest.fail(
                f"{self.what}: {len(self.found)} distinct failure(s) in {self.examples} "
                f"examples:\n\n{report}",
                pytrace=False,
            )


class ServerErrors(logging.Handler):
    """The server's own account of its 500s (it logs each with its exception): for the report,
    the exception and the innermost line of `server/` it came from."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self._logger = logging.getLogger("server.handlers.errors")

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> ServerErrors:
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)

    def take(self) -> str | None:
        """What the latest logged error was, as `Type: message (server/file.py:line)`."""
        if not self.records:
            return None
        record, self.records = self.records[-1], []
        if not record.exc_info or record.exc_info[1] is None:
            return record.getMessage()
        error = record.exc_info[1]
        where = ""
        for frame in traceback.extract_tb(error.__traceback__):
            if "/server/" in frame.filename and "/site-packages/" not in frame.filename:
                where = f"{frame.filename.split('/server/', 1)[1]}:{frame.lineno}"
        first_line = str(error).splitlines()[0] if str(error) else ""
        return f"{type(error).__name__}: {first_line[:160]} (server/{where})"


# The server under test, its fakes, and a seeded account ----------------------------------------


@dataclass
class World:
    server: LiveServer
    backend: str
    api: Api
    team: Team
    twilio: FakeTwilio
    meta: FakeMeta
    callback: FakeCallback
    # Seeded resources, so generated requests also reach existing rows.
    ids: dict[str, int]

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    @property
    def watcher(self) -> str:
        return self.team["watcher"].token

    @property
    def db(self) -> Database:
        database: Database = self.server.runtime.db
        return database

    def healthy(self) -> None:
        with httpx.Client(base_url=self.url, timeout=REQUEST_TIMEOUT, trust_env=False) as c:
            assert c.get("/healthz").status_code == 200
            readyz = c.get("/readyz")
            assert readyz.status_code == 200, readyz.text
            assert readyz.json() == {"database": "ok", "redis": "ok"}


def _seed(api: Api, twilio: FakeTwilio) -> tuple[Team, dict[str, int]]:
    """An account with one integration of each provider, a conversation on each, a reply, CRM
    records, a link and its note: ids for the fuzzer to hit."""
    team = api.signup(company="Fuzz Inc")
    agent = team.add("agent")
    team.add("watcher")  # the websocket fuzzers' user: no fuzzed request acts as them
    token = team.admin.token
    integration = team.install(secret=API_SECRET, shared_with=["agent"])
    conversation = team.conversation_from(integration, text="Hi, is the blue sofa in stock?")
    r = api.post(
        f"/api/v1/conversations/{conversation['id']}/messages", token, json={"text": "Yes!"}
    )
    assert r.status_code == 201, r.text
    r = api.post(
        "/api/v1/integrations",
        token,
        json={
            "provider": "twilio_whatsapp",
            "name": "WhatsApp",
            "config": {
                "account_sid": twilio.account_sid,
                "auth_token": twilio.auth_token,
                "from_number": "+14155238886",
            },
        },
    )
    assert r.status_code == 201, r.text
    twilio_id = r.json()["id"]
    r = api.post(
        "/api/v1/integrations",
        token,
        json={
            "provider": "messenger",
            "name": "Our page",
            "config": {
                "page_id": PAGE_ID,
                "page_access_token": PAGE_TOKEN,
                "app_secret": APP_SECRET,
                "verify_token": VERIFY_TOKEN,
            },
        },
    )
    assert r.status_code == 201, r.text
    messenger_id = r.json()["id"]
    person = api.post(
        "/api/v1/persons", token, json={"name": "Carla Customer", "emails": ["carla@example.com"]}
    ).json()
    lead = api.post(
        "/api/v1/leads", token, json={"title": "Blue sofa", "person_id": person["id"]}
    ).json()
    deal = api.post("/api/v1/deals", token, json={"title": "Sofa deal"}).json()
    r = api.post(
        f"/api/v1/conversations/{conversation['id']}/links",
        token,
        json={"target": "person", "target_id": person["id"]},
    )
    assert r.status_code == 201, r.text
    link, note = r.json()["link"], r.json()["note"]
    ids = {
        "user": agent.id,
        "integration": integration["id"],
        "twilio": twilio_id,
        "messenger": messenger_id,
        "conversation": conversation["id"],
        "person": person["id"],
        "lead": lead["id"],
        "deal": deal["id"],
        "link": link["id"],
        "note": note["id"],
    }
    return team, ids


@pytest.fixture(scope="module", params=("sqlite", "postgresql"))
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    data_dir: Path = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    pg_url = None
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'fuzz.db'}"
    elif postgres_available():
        url = pg_url = create_pg_database("switchboard_fuzz")
    elif REQUIRE_ALL:
        pytest.fail("PostgreSQL is required (SWITCHBOARD_REQUIRE_ALL=1) but does not answer")
    else:
        pytest.skip("PostgreSQL is not available here (see the run's header)")
    with (
        FakeTwilio() as twilio,
        FakeMeta(page_access_token=PAGE_TOKEN, app_secret=APP_SECRET) as meta,
        FakeCallback() as callback,
    ):
        settings_ = settings_for(
            url,
            data_dir / "data",
            PUBLIC_URL=PUBLIC_URL,
            TWILIO_API_BASE=twilio.url,
            MESSENGER_API_BASE=meta.url,
        )
        live = LiveServer(settings_, FakeClock())
        live.start()
        api = Api(live)
        try:
            team, ids = _seed(api, twilio)
            yield World(live, request.param, api, team, twilio, meta, callback, ids)
        finally:
            api.close()
            live.stop()
            if pg_url:
                drop_pg_database(pg_url)


# 1. schemathesis against /openapi.json ---------------------------------------------------------


def _openapi_path(path: str) -> str:
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


# Every operation of the route table; the DELETEs last, so the seeded rows live until then.
OPERATIONS = sorted(
    ((e.method, _openapi_path(e.path)) for e in ENDPOINTS), key=lambda op: op[0] == "DELETE"
)


@pytest.fixture(scope="module")
def schema(world: World) -> Any:
    """The live server's own OpenAPI document, loaded by schemathesis over HTTP."""
    return schemathesis.openapi.from_url(
        f"{world.url}/openapi.json",
        timeout=REQUEST_TIMEOUT,
        proxies={"http": None, "https": None},  # straight to 127.0.0.1, whatever the environment
    )


def error_envelope(ctx: Any, response: Any, case: Any) -> bool | None:
    """A schemathesis check: every 4xx is `{"error": {"code", "message", "fields"?}}`."""
    if not 400 <= response.status_code < 500:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), f"4xx as {content_type!r}"
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"4xx body is not JSON: {response.content[:200]!r}") from None
    assert isinstance(body, dict) and set(body) == {"error"}, f"not the envelope: {body!r}"
    error = body["error"]
    assert isinstance(error, dict), f"not the envelope: {body!r}"
    assert isinstance(error.get("code"), str) and error["code"], f"no code: {body!r}"
    assert isinstance(error.get("message"), str) and error["message"], f"no message: {body!r}"
    assert set(error) <= {"code", "message", "fields"}, f"unknown keys: {body!r}"
    if "fields" in error:
        fields = error["fields"]
        assert isinstance(fields, dict), f"fields not an object: {body!r}"
        assert all(isinstance(v, str) for v in fields.values()), f"fields: {body!r}"
    return None


# Path parameters pinned to seeded rows (besides the generated ones), per path.
PINNED: dict[str, dict[str, str]] = {
    "/api/v1/integrations/{id}": {"id": "integration"},
    "/api/v1/conversations/{id}": {"id": "conversation"},
    "/api/v1/conversations/{id}/messages": {"id": "conversation"},
    "/api/v1/conversations/{id}/read": {"id": "conversation"},
    "/api/v1/conversations/{id}/assign": {"id": "conversation"},
    "/api/v1/conversations/{id}/unassign": {"id": "conversation"},
    "/api/v1/conversations/{id}/close": {"id": "conversation"},
    "/api/v1/conversations/{id}/reopen": {"id": "conversation"},
    "/api/v1/conversations/{id}/links": {"id": "conversation"},
    "/api/v1/persons/{id}": {"id": "person"},
    "/api/v1/leads/{id}": {"id": "lead"},
    "/api/v1/deals/{id}": {"id": "deal"},
    "/api/v1/notes/{id}": {"id": "note"},
    "/webhooks/api/{id}": {"id": "integration"},
    "/webhooks/twilio/{id}": {"id": "twilio"},
    "/webhooks/twilio/{id}/status": {"id": "twilio"},
    "/webhooks/messenger/{id}": {"id": "messenger"},
}


def _pinned(method: str, path: str, world: World) -> dict[str, int] | None:
    """Path parameters naming seeded rows (not for DELETE: they should last the whole run)."""
    pinned = PINNED.get(path)
    if not pinned or method == "DELETE":
        return None
    return {name: world.ids[kind] for name, kind in pinned.items()}


def _strategies(operation: Any, method: str, path: str, world: World) -> Any:
    """Valid and invalid requests, and valid ones at the seeded rows."""
    strategies = [operation.as_strategy(GenerationMode.POSITIVE)]
    if operation.path_parameters or operation.query or operation.body:
        strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))
    pinned = _pinned(method, path, world)
    if pinned:
        strategies.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=pinned))
    return st.one_of(strategies)


def _keep_local(case: Any, world: World) -> None:
    """Calls the server will make must stay on 127.0.0.1: callback URLs go to our fake."""
    config = case.body.get("config") if isinstance(case.body, dict) else None
    if isinstance(config, dict) and config.get("callback_url") is not None:
        config["callback_url"] = world.callback.url


def _reproduce(response: requests.Response, exc: FailureGroup) -> str:
    """The request and the answer, shortened, with what the checks said."""
    request = response.request
    body = request.body if isinstance(request.body, bytes) else str(request.body or "").encode()
    said = "; ".join(str(f.message or f.title) for f in exc.exceptions)
    return (
        f"{request.method} {request.url}\n"
        f"body ({len(body)} bytes): {body[:400]!r}\n"
        f"-> {response.status_code} {response.text[:300]}\n"
        f"checks: {said}"
    )


# Operations that revoke the token calling them (or others of the same user): they run as a
# user of their own, with a fresh session for every request, so the rest keep theirs.
SELF_REVOKING = {("POST", "/api/v1/logout"), ("DELETE", "/api/v1/me/tokens/{id}")}
# Ids at the edges of the databases' integer types: PostgreSQL's INTEGER, SQLite's (and
# PostgreSQL's BIGINT) 64 bits, and beyond. Each must be a 404 (or a 4xx), never a 5xx.
BOUNDARY_IDS = (2**31 - 1, 2**31, 2**63 - 1, 2**63, 10**30)


def _login(world: World, email: str) -> str:
    r = world.api.post("/api/v1/login", json={"email": email, "password": "correct horse"})
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


def id_parameters(schema: Any, method: str, path: str) -> tuple[list[str], list[str]]:
    """The operation's integer path parameters, and its integer query parameters naming ids."""
    parameters = schema.raw_schema["paths"][path][method.lower()].get("parameters", [])
    integers = [p for p in parameters if p.get("schema", {}).get("type") == "integer"]
    in_path = [p["name"] for p in integers if p["in"] == "path"]
    in_query = [p["name"] for p in integers if p["in"] == "query" and p["name"].endswith("id")]
    return in_path, in_query


MAX_NUL_PROBES = 8  # strings of one request given a NUL, one at a time


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of a JSON document with the value at `path` replaced."""
    copied = copy.deepcopy(document)
    parent = copied
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return copied


def _nul_variants(case: Any) -> Iterator[tuple[dict[str, Any] | None, Any]]:
    """(query, body) of the request with a NUL appended to one of its strings, each in turn."""
    query, body = case.query or None, case.body
    variants: list[tuple[dict[str, Any] | None, Any]] = []
    for name, value in (query or {}).items():
        if isinstance(value, str):
            variants.append(({**(query or {}), name: value + "\x00"}, body))
    if isinstance(body, dict | list):
        for path in _paths(body):
            value = body
            for key in path:
                value = value[key]
            if isinstance(value, str):
                variants.append((query, _replaced(body, path, value + "\x00")))
    yield from variants[:MAX_NUL_PROBES]


def probes(
    operation: Any,
    in_path: list[str],
    in_query: list[str],
    pinned: dict[str, int] | None,
    accepted: list[Any],
) -> Iterator[Any]:
    """Requests fuzzing finds only by luck. Hypothesis's first (simplest) valid request, at the
    seeded rows if there are some, with every id parameter at each boundary id in turn; and the
    `accepted` requests (else the simplest), with a NUL in each of their strings in turn."""
    first: list[Any] = []

    @settings(FUZZ, max_examples=1)
    @given(case=operation.as_strategy(GenerationMode.POSITIVE, path_parameters=pinned))
    def capture(case: Any) -> None:
        first.append(case)

    capture()
    simplest = first[0]
    for value in BOUNDARY_IDS if in_path or in_query else ():
        yield operation.Case(
            path_parameters={name: value for name in in_path},
            query={**(simplest.query or {}), **{name: value for name in in_query}},
            headers=simplest.headers,
            body=simplest.body,
            media_type=simplest.media_type,
        )
    for base in accepted or [simplest]:
        for query, body in _nul_variants(base):
            yield operation.Case(
                path_parameters=base.path_parameters,
                query=query,
                headers=base.headers,
                body=body,
                media_type=base.media_type,
            )


def _unique_email() -> str:
    return f"seed-{uuid.uuid4().hex[:10]}@example.com"


# Valid requests for operations whose schema cannot tell the fuzzer what is valid (an email
# address, a password of the policy, a provider's config), so the probes reach the database.
SEEDS: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
    ("POST", "/api/v1/signup"): lambda: {
        "body": {
            "company_name": "Seeded Inc",
            "name": "Sid Seed",
            "email": _unique_email(),
            "password": "a rather unusual passphrase 42",
        }
    },
    ("POST", "/api/v1/users"): lambda: {
        "body": {
            "name": "Sam Seed",
            "email": _unique_email(),
            "password": "a rather unusual passphrase 42",
            "role": "agent",
        }
    },
    ("POST", "/api/v1/integrations"): lambda: {
        "body": {
            "provider": "api",
            "name": "Seeded channel",
            "config": {"webhook_secret": "seeded-secret"},
        }
    },
    ("PATCH", "/api/v1/integrations/{id}"): lambda: {
        "body": {"name": "Renamed channel", "config": {"webhook_secret": "renamed-secret"}}
    },
    ("GET", "/api/v1/persons"): lambda: {"query": {"term": "carla"}},
    ("POST", "/api/v1/me/tokens"): lambda: {"body": {"name": "Seeded token"}},
}


def _seeded(operation: Any, method: str, path: str, pinned: dict[str, int] | None) -> Any | None:
    """The operation's seeded valid request, if it has one."""
    if (method, path) not in SEEDS:
        return None
    seed = SEEDS[(method, path)]()
    if "body" in seed:
        seed["media_type"] = "application/json"
    return operation.Case(path_parameters=pinned or {}, **seed)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_schemathesis_finds_no_server_error(
    world: World, schema: Any, method: str, path: str
) -> None:
    operation = schema[path][method]
    findings = Findings(f"{method} {path} on {world.backend}")
    session = requests.Session()
    session.trust_env = False  # 127.0.0.1 only, whatever proxies the environment names
    if (method, path) in SELF_REVOKING:
        email = world.api.signup(company="Revoker").admin.email

        def token() -> str:
            return _login(world, email)
    else:
        own = _login(world, world.team.admin.email)  # a session of the seeded account's admin

        def token() -> str:
            return own

    accepted: list[Any] = []  # the first request answered 2xx

    def send(case: Any) -> int | None:
        """Send one request and check its answer; its status (None without an answer)."""
        findings.examples += 1
        _keep_local(case, world)
        headers = {"Authorization": f"Bearer {token()}"}
        try:
            response = case.call(session=session, headers=headers, timeout=REQUEST_TIMEOUT)
        except requests.Timeout:
            findings.add("no answer in time", case.as_curl_command(headers=headers))
            return None
        if 200 <= response.status_code < 300 and not accepted:
            accepted.append(case)
        try:
            case.validate_response(
                response, checks=[not_a_server_error, error_envelope], headers=headers
            )
        except FailureGroup as exc:
            titles = "; ".join(sorted({f.title for f in exc.exceptions}))
            cause = findings.cause(response.status_code)
            findings.add(f"{response.status_code}: {cause or titles}", _reproduce(response, exc))
        status: int = response.status_code
        return status

    @FUZZ
    @given(case=_strategies(operation, method, path, world))
    def fuzz(case: Any) -> None:
        send(case)

    in_path, in_query = id_parameters(schema, method, path)
    try:
        with findings:
            fuzz()
            pinned = _pinned(method, path, world)
            bases = accepted[:1]  # the first request the fuzzing got a 2xx for
            seeded = _seeded(operation, method, path, pinned)
            if seeded is not None:
                status = send(seeded)
                if status is None or not 200 <= status < 300:
                    findings.add("the seeded valid request was refused", repr(seeded.body))
                bases.append(seeded)
            for case in probes(operation, in_path, in_query, pinned, bases):
                send(case)
    finally:
        session.close()
    world.healthy()
    findings.check()


def test_the_fuzzed_operations_are_every_documented_one(schema: Any) -> None:
    documented = {
        (method.upper(), path)
        for path, item in schema.raw_schema["paths"].items()
        for method in item
    }
    assert documented == set(OPERATIONS)


# 2. Websocket frames ----------------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
TYPES = st.sampled_from(["ping", "PING", "pong", "hello", "", "subscribe"]) | st.text(max_size=10)
# Text frames are UTF-8: no lone surrogates.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=200)


@st.composite
def sized_text(draw: Callable[..., Any]) -> str:
    """Text of a given UTF-8 size around the frame limit, of 1- to 4-byte characters."""
    size = draw(
        st.sampled_from([FRAME_LIMIT - 1, FRAME_LIMIT, FRAME_LIMIT + 1, FRAME_LIMIT + 1000])
        | st.integers(min_value=1000, max_value=FRAME_LIMIT + 4)
    )
    unit = draw(st.sampled_from(["a", "é", "€", "😀", '{"type":"ping","x":"ü"}']))
    json_like = draw(st.booleans())
    if json_like:  # a ping with a huge field: still answered `pong` while it fits
        head, tail = '{"type":"ping","pad":"', '"}'
    else:
        head, tail = "", ""
    body_size = max(0, size - len(head) - len(tail))
    width = len(unit.encode())
    filler = unit * (body_size // width) + "a" * (body_size % width)
    if json_like:
        filler = filler.replace('"', "'")
    return head + filler + tail


FRAMES = st.one_of(
    TEXT,
    st.binary(max_size=300),
    JSON_VALUES.map(json.dumps),
    st.fixed_dictionaries({"type": TYPES}, optional={"data": JSON_VALUES}).map(json.dumps),
    st.just('{"type": "ping"}'),
    sized_text(),
    # Binary frames around the limit, of a repeated random pattern (cheap to generate).
    st.tuples(
        st.integers(min_value=FRAME_LIMIT - 2, max_value=FRAME_LIMIT + 2),
        st.binary(min_size=1, max_size=16),
    ).map(lambda t: (t[1] * (t[0] // len(t[1]) + 1))[: t[0]]),
)


def _strict_json(raw: str) -> Any:
    def refuse(token: str) -> Any:
        raise ValueError(token)

    return json.loads(raw, parse_constant=refuse)


def expected_answers(frame: str | bytes) -> set[str]:
    """What the contract says the server answers: `pong`, or `error:<code>`. Where orjson (the
    server's parser) and a strict RFC 8259 parser disagree (e.g. integers beyond 64 bits), either
    answer is fine."""
    if isinstance(frame, bytes):
        return {"error:unsupported_frame"}
    answers = set()
    for parse in (_strict_json, orjson.loads):
        try:
            value = parse(frame)
        except (ValueError, RecursionError):
            answers.add("error:bad_request")
            continue
        ping = isinstance(value, dict) and value.get("type") == "ping"
        answers.add("pong" if ping else "error:unknown_type")
    return answers


def _size(frame: str | bytes) -> int:
    return len(frame if isinstance(frame, bytes) else frame.encode())


def _describe(frame: str | bytes) -> str:
    shown = repr(frame[:120]) + ("..." if len(frame) > 120 else "")
    return f"{type(frame).__name__} of {_size(frame)} bytes: {shown}"


async def _exchange(world: World, frames: list[str | bytes], findings: Findings) -> None:
    """One connection: hello, then each frame and its answer (or the close it earns)."""
    connection = await open_ws(
        world.ws_url,
        world.watcher,
        max_size=2**20,
        close_timeout=2,
    )
    try:
        hello = orjson.loads(await asyncio.wait_for(connection.recv(), REQUEST_TIMEOUT))
        if hello.get("type") != "hello":
            findings.add("no hello", repr(hello))
            return
        for frame in frames:
            await connection.send(frame)
            if _size(frame) > FRAME_LIMIT:
                await _expect_close(connection, {1009}, frame, findings)
                return
            await _expect_answer(connection, frame, findings)
    finally:
        await connection.close()


async def _expect_answer(connection: Any, frame: str | bytes, findings: Findings) -> None:
    expected = expected_answers(frame)
    try:
        while True:
            raw = await asyncio.wait_for(connection.recv(), REQUEST_TIMEOUT)
            if isinstance(raw, bytes):
                findings.add("binary frame from the server", _describe(frame))
                return
            answer = orjson.loads(raw)
            if set(answer) != {"type", "seq", "data"}:
                findings.add("frame outside the format", f"{raw[:300]!r} for {_describe(frame)}")
                return
            if answer["type"] in ("pong", "error"):
                break  # anything else (presence, events) is not the answer: keep reading
    except TimeoutError:
        findings.add("frame not answered", _describe(frame))
        return
    except websockets.ConnectionClosed as exc:
        findings.add(
            f"closed ({exc.rcvd.code if exc.rcvd else None}) instead of answering", _describe(frame)
        )
        return
    got = "pong" if answer["type"] == "pong" else f"error:{answer['data'].get('code')}"
    if got not in expected:
        findings.add(f"answered {got}, expected {sorted(expected)}", _describe(frame))


async def _expect_close(
    connection: Any, codes: set[int], frame: str | bytes, findings: Findings
) -> None:
    try:
        while True:
            await asyncio.wait_for(connection.recv(), REQUEST_TIMEOUT)
    except TimeoutError:
        findings.add("oversized frame: not closed", _describe(frame))
    except websockets.ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd is not None else None
        if code not in codes:
            findings.add(f"oversized frame: closed with {code}", _describe(frame))


def _hello(world: World) -> str:
    async def first_frame() -> str:
        connection = await open_ws(world.ws_url, world.watcher)
        try:
            frame = orjson.loads(await asyncio.wait_for(connection.recv(), REQUEST_TIMEOUT))
            return str(frame["type"])
        finally:
            await connection.close()

    return asyncio.run(first_frame())


def test_websocket_frames_are_answered_or_closed_with_a_documented_code(world: World) -> None:
    findings = Findings(f"/ws on {world.backend}")

    @settings(FUZZ, max_examples=60)
    @given(frames=st.lists(FRAMES, min_size=1, max_size=6))
    @example(frames=["x" * FRAME_LIMIT])
    @example(frames=[b"\x00" * (FRAME_LIMIT + 1)])
    @example(frames=['{"type": "ping"}', b"\xff\xfe", "[]", "null", '{"type": 1}', "\ud7ff"])
    @example(frames=['{"type": "ping", "n": 100000000000000000000000}', "NaN", '{"a": NaN}'])
    @example(frames=["[" * 2000 + "]" * 2000, '{"type": "ping"}'])
    def fuzz(frames: list[str | bytes]) -> None:
        findings.examples += 1
        try:
            asyncio.run(_exchange(world, frames, findings))
        except (OSError, TimeoutError, websockets.WebSocketException) as exc:
            findings.add(f"connection failed: {exc.__class__.__name__}", str(exc))

    with findings:
        fuzz()
    assert _hello(world) == "hello"
    world.healthy()
    findings.check()


def test_a_websocket_flood_is_closed_with_1008_and_others_carry_on(world: World) -> None:
    async def flood() -> int | None:
        connection = await open_ws(world.ws_url, world.watcher)
        try:
            await asyncio.wait_for(connection.recv(), REQUEST_TIMEOUT)  # hello
            for _ in range(2000):
                await connection.send('{"type": "ping"}')
            deadline = asyncio.get_running_loop().time() + 15
            while asyncio.get_running_loop().time() < deadline:
                await asyncio.wait_for(connection.recv(), REQUEST_TIMEOUT)
            return None
        except websockets.ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else None
        finally:
            await connection.close()

    assert asyncio.run(flood()) == 1008
    assert _hello(world) == "hello"
    world.healthy()


# 3. Webhooks -------------------------------------------------------------------------------------


def _stored(world: World, integration_id: int) -> tuple[int, ...]:
    """Rows a webhook may write for an integration: contacts, conversations, messages, events."""
    with world.db.read_engine.connect() as conn:
        return tuple(
            conn.execute(text(sql), {"i": integration_id}).scalar_one()
            for sql in (
                "SELECT COUNT(*) FROM contacts WHERE integration_id = :i",
                "SELECT COUNT(*) FROM conversations WHERE integration_id = :i",
                "SELECT COUNT(*) FROM messages WHERE integration_id = :i",
                "SELECT COUNT(*) FROM events WHERE integration_id = :i",
            )
        )


@dataclass
class Hooks:
    """A fresh account with one integration per provider, for the webhook fuzzers."""

    world: World
    team: Team
    api_id: int
    twilio_id: int
    messenger_id: int

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        with httpx.Client(base_url=self.world.url, timeout=REQUEST_TIMEOUT, trust_env=False) as c:
            return c.post(path, content=body, headers=headers)


@pytest.fixture
def hooks(world: World) -> Hooks:
    team = world.api.signup(company="Webhook fuzz")
    token = team.admin.token
    api_id = team.install(secret=API_SECRET)["id"]
    twilio = world.api.post(
        "/api/v1/integrations",
        token,
        json={
            "provider": "twilio_whatsapp",
            "name": "WhatsApp",
            "config": {
                "account_sid": world.twilio.account_sid,
                "auth_token": world.twilio.auth_token,
                "from_number": "+14155238886",
            },
        },
    ).json()["id"]
    messenger = world.api.post(
        "/api/v1/integrations",
        token,
        json={
            "provider": "messenger",
            "name": "Our page",
            "config": {
                "page_id": PAGE_ID,
                "page_access_token": PAGE_TOKEN,
                "app_secret": APP_SECRET,
                "verify_token": VERIFY_TOKEN,
            },
        },
    ).json()["id"]
    return Hooks(world, team, api_id, twilio, messenger)


def _check_webhook(
    findings: Findings,
    hooks: Hooks,
    integration_id: int,
    what: str,
    send: Callable[[], httpx.Response],
    *,
    must_be: int | None = None,
    on_success: Callable[[httpx.Response, tuple[int, ...], tuple[int, ...]], str | None]
    | None = None,
) -> None:
    """Send one webhook; check its status, that a refused one stored nothing, and (with
    `on_success`) what an accepted one stored."""
    findings.examples += 1
    before = _stored(hooks.world, integration_id)
    try:
        r = send()
    except httpx.TimeoutException:
        findings.add("no answer in time", what)
        return
    after = _stored(hooks.world, integration_id)
    if r.status_code == 200 and on_success is not None:
        wrong = on_success(r, before, after)
        if wrong:
            findings.add(f"accepted, but {wrong}", f"{what}\n-> {r.text[:300]}")
    if r.status_code not in WEBHOOK_STATUSES:
        cause = findings.cause(r.status_code)
        findings.add(f"answered {r.status_code}: {cause}", f"{what}\n-> {r.text[:500]}")
        return
    if must_be is not None and r.status_code != must_be:
        findings.add(f"answered {r.status_code}, expected {must_be}", f"{what}\n-> {r.text[:300]}")
    if r.status_code != 200 and after != before:
        findings.add(
            f"refused with {r.status_code} but stored",
            f"{what}\nrows (contacts, conversations, messages, events) {before} -> {after}",
        )
    if r.status_code >= 400:
        try:
            envelope = r.json()["error"]
            assert isinstance(envelope["code"], str) and isinstance(envelope["message"], str)
        except (ValueError, KeyError, TypeError, AssertionError):
            findings.add(
                f"{r.status_code} outside the error envelope", f"{what}\n-> {r.text[:300]}"
            )


# api channel

ANY_TEXT = st.text(max_size=60)  # any code point but surrogates: NUL, RTL marks, emoji...


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every position inside a JSON document: dict keys and list indexes, nested."""
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, child in items:
        yield (*prefix, key)
        yield from _paths(child, (*prefix, key))


@st.composite
def mutated(draw: Callable[..., Any], documents: Any) -> Any:
    """A valid document with a few of its parts deleted or replaced by any JSON value."""
    document = copy.deepcopy(draw(documents))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(document))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON_VALUES)
    return document


VALID_API_PAYLOADS = st.fixed_dictionaries(
    {
        "message_id": st.text(min_size=1, max_size=200),
        "contact": st.fixed_dictionaries(
            {"id": st.sampled_from(["cust-1", "cust-2"]) | st.text(min_size=1, max_size=200)},
            optional={"name": ANY_TEXT | st.text(min_size=190, max_size=200)},
        ),
        "text": ANY_TEXT.filter(bool) | st.text(min_size=4090, max_size=4100),
    },
    optional={
        "sent_at": st.sampled_from(
            [
                "2026-11-26T09:00:00Z",
                "2026-11-26T09:00:00",
                "9999-12-31T23:59:59Z",
                "0001-01-01T00:00:00+00:00",
                "2026-11-26T09:00:00-23:59",
                "2026-13-45T99:00:00Z",
                "yesterday",
            ]
        )
        | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    },
)


def json_bodies(valid: Any) -> Any:
    """Bodies, mostly JSON: valid documents (4 in 10), mutated ones (3), any JSON (1), any bytes
    or text (2). NaN and infinities are written as Python does (not JSON)."""
    kinds = {
        "valid": valid,
        "mutated": mutated(valid),
        "json": JSON_VALUES,
        "bytes": st.binary(max_size=300),
        "text": TEXT.map(str.encode),
    }
    weighted = ["valid"] * 4 + ["mutated"] * 3 + ["json", "bytes", "text"]
    return st.sampled_from(weighted).flatmap(
        lambda kind: kinds[kind].map(
            lambda v: v if isinstance(v, bytes) else json.dumps(v).encode()
        )
    )


API_BODIES = json_bodies(VALID_API_PAYLOADS)
SIGNATURES = st.sampled_from(["right", "right", "right", "wrong", "missing", "garbage", "upper"])


def _api_signature(kind: str, body: bytes) -> dict[str, str]:
    right = sign_sha256(API_SECRET, body)
    value = {
        "right": right,
        "wrong": sign_sha256("not-the-secret", body),
        "garbage": "sha256=zz" + "0" * 62,
        "upper": "SHA256=" + right.removeprefix("sha256=").upper(),
    }.get(kind)
    return {"X-Signature-256": value} if value is not None else {}


def _api_stored(
    hooks: Hooks, r: httpx.Response, before: tuple[int, ...], after: tuple[int, ...]
) -> str | None:
    """A new message is one more message, stored under the ids answered; a repeat is nothing."""
    answer = r.json()
    messages = after[2] - before[2]
    if messages != (0 if answer["duplicate"] else 1):
        return f"{messages} messages stored for duplicate={answer['duplicate']}"
    with hooks.world.db.read_engine.connect() as conn:
        found = conn.execute(
            text("SELECT conversation_id FROM messages WHERE id = :m AND integration_id = :i"),
            {"m": answer["message_id"], "i": hooks.api_id},
        ).scalar_one_or_none()
    if found != answer["conversation_id"]:
        return f"message {answer['message_id']} is not stored in its conversation ({found})"
    return None


def test_api_webhook_bodies(hooks: Hooks) -> None:
    findings = Findings(f"POST /webhooks/api/{{id}} on {hooks.world.backend}")
    valid = orjson.dumps({"message_id": "m-1", "contact": {"id": "c-1"}, "text": "Hi"})
    with_nul = orjson.dumps(
        {"message_id": "m-\x00", "contact": {"id": "c-\x00", "name": "N\x00"}, "text": "Hi\x00"}
    )

    @settings(FUZZ, max_examples=80)
    @given(
        body=API_BODIES,
        signature=SIGNATURES,
        content_type=st.sampled_from(
            ["application/json", "text/plain", "", "application/x-www-form-urlencoded"]
        ),
    )
    @example(body=valid, signature="right", content_type="application/json")
    @example(body=valid, signature="wrong", content_type="application/json")
    @example(body=with_nul, signature="right", content_type="application/json")
    @example(body=b"{" * 40 + b"}" * 40, signature="right", content_type="application/json")
    @example(body=b"x" * (BODY_LIMIT + 1), signature="right", content_type="application/json")
    def fuzz(body: bytes, signature: str, content_type: str) -> None:
        headers = {"Content-Type": content_type, **_api_signature(signature, body)}
        must_be = 403 if signature not in ("right",) and len(body) <= BODY_LIMIT else None
        _check_webhook(
            findings,
            hooks,
            hooks.api_id,
            f"POST /webhooks/api/{hooks.api_id} signature {signature}, body {body[:300]!r}",
            lambda: hooks.post(f"/webhooks/api/{hooks.api_id}", body, headers),
            must_be=must_be,
            on_success=lambda r, before, after: _api_stored(hooks, r, before, after),
        )

    with findings:
        fuzz()
    # Another provider's integration, and one that does not exist: 404 even when signed.
    for other in (hooks.twilio_id, hooks.messenger_id, 10**6):
        r = hooks.post(f"/webhooks/api/{other}", valid, _api_signature("right", valid))
        if r.status_code != 404:
            findings.add(f"integration {other}: {r.status_code}", r.text[:300])
    hooks.world.healthy()
    findings.check()


# Twilio

FORM_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)


@st.composite
def twilio_forms(draw: Callable[..., Any], account_sid: str) -> list[tuple[str, str]]:
    sid = "SM" + uuid.UUID(int=draw(st.integers(0, 2**128 - 1))).hex
    base: dict[str, str] = {
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": f"whatsapp:{CUSTOMER}",
        "To": "whatsapp:+14155238886",
        "Body": "Hello!",
        "ProfileName": "Carla Customer",
        "NumMedia": "0",
        "MessageStatus": draw(
            st.sampled_from(["sent", "delivered", "read", "failed", "undelivered", "queued", "?"])
        ),
    }
    for name in draw(st.lists(st.sampled_from(sorted(base)), unique=True, max_size=2)):
        del base[name]
    mutations = st.dictionaries(
        st.sampled_from(
            [
                "MessageSid",
                "AccountSid",
                "From",
                "Body",
                "ProfileName",
                "NumMedia",
                "MediaUrl0",
                "MediaContentType0",
                "MessageType",
                "MessageStatus",
                "ErrorCode",
                "ErrorMessage",
            ]
        )
        | FORM_TEXT,
        FORM_TEXT
        | st.sampled_from(
            [
                "whatsapp:+1",
                "whatsapp:",
                "+14155550100",
                "-1",
                "3",
                "99999999999",
                "delivered",
                "failed",
                "x" * 250,
                "",
            ]
        ),
        max_size=4,
    )
    base.update(draw(mutations))
    params = list(base.items())
    repeated = draw(
        st.lists(st.tuples(st.sampled_from(["Body", "From", "X"]), FORM_TEXT), max_size=2)
    )
    return params + repeated


def test_twilio_webhook_bodies(hooks: Hooks) -> None:
    findings = Findings(f"POST /webhooks/twilio/{{id}} on {hooks.world.backend}")
    token = hooks.world.twilio.auth_token
    with_nul = [
        ("MessageSid", "SM" + "0" * 32),
        ("AccountSid", hooks.world.twilio.account_sid),
        ("From", f"whatsapp:{CUSTOMER}"),
        ("Body", "Hello\x00"),
        ("ProfileName", "Carla\x00"),
    ]
    form = "application/x-www-form-urlencoded"

    @settings(FUZZ, max_examples=60)
    @example(params=with_nul, raw=None, status=False, signature="right", content_type=form)
    @given(
        params=twilio_forms(hooks.world.twilio.account_sid),
        raw=st.one_of(st.none(), st.none(), st.none(), st.binary(max_size=200)),
        status=st.booleans(),
        signature=st.sampled_from(["right", "right", "wrong", "missing"]),
        content_type=st.sampled_from(
            [
                "application/x-www-form-urlencoded",
                "application/x-www-form-urlencoded; charset=utf-8",
                "application/json",
                "",
            ]
        ),
    )
    def fuzz(
        params: list[tuple[str, str]],
        raw: bytes | None,
        status: bool,
        signature: str,
        content_type: str,
    ) -> None:
        path = f"/webhooks/twilio/{hooks.twilio_id}" + ("/status" if status else "")
        body = raw if raw is not None else urlencode(params).encode()
        signed_params = params if raw is None else []
        value = {
            "right": twilios_own_signature(token, PUBLIC_URL + path, signed_params),
            "wrong": twilios_own_signature("not-the-token", PUBLIC_URL + path, signed_params),
        }.get(signature)
        headers = {"Content-Type": content_type}
        if value is not None:
            headers["X-Twilio-Signature"] = value
        _check_webhook(
            findings,
            hooks,
            hooks.twilio_id,
            f"POST {path} signature {signature}, {content_type!r}, body {body[:300]!r}",
            lambda: hooks.post(path, body, headers),
            must_be=403 if signature != "right" else None,
        )

    with findings:
        fuzz()
    hooks.world.healthy()
    findings.check()


# Messenger

MILLIS = st.integers(1_700_000_000_000, 1_900_000_000_000)
MESSENGER_EVENTS = st.fixed_dictionaries(
    {
        "sender": st.fixed_dictionaries(
            {"id": st.sampled_from(["6834529012345671", "7045118823344552"]) | ANY_TEXT}
        ),
        "recipient": st.just({"id": PAGE_ID}),
        "timestamp": MILLIS | st.integers(-(2**63), 2**64),
    }
).flatmap(
    lambda event: st.one_of(
        st.fixed_dictionaries(
            {
                "message": st.fixed_dictionaries(
                    {"mid": st.text(min_size=1, max_size=60)},
                    optional={
                        "text": ANY_TEXT,
                        "is_echo": st.booleans(),
                        "attachments": st.lists(
                            st.fixed_dictionaries(
                                {
                                    "type": st.sampled_from(["image", "file", "fallback"])
                                    | ANY_TEXT,
                                    "payload": st.fixed_dictionaries(
                                        {}, optional={"url": ANY_TEXT}
                                    ),
                                }
                            ),
                            max_size=3,
                        ),
                    },
                )
            }
        ),
        st.fixed_dictionaries(
            {
                "delivery": st.fixed_dictionaries(
                    {"watermark": MILLIS}, optional={"mids": st.lists(ANY_TEXT, max_size=3)}
                )
            }
        ),
        st.fixed_dictionaries({"read": st.fixed_dictionaries({"watermark": MILLIS})}),
        st.fixed_dictionaries({"postback": st.fixed_dictionaries({"payload": ANY_TEXT})}),
    ).map(lambda extra: {**event, **extra})
)
VALID_MESSENGER_DOCUMENTS = st.fixed_dictionaries(
    {
        "object": st.just("page"),
        "entry": st.lists(
            st.fixed_dictionaries(
                {
                    "id": st.sampled_from([PAGE_ID, PAGE_ID, "999"]),
                    "time": MILLIS,
                    "messaging": st.lists(MESSENGER_EVENTS, max_size=3),
                }
            ),
            max_size=3,
        ),
    }
)
MESSENGER_BODIES = json_bodies(VALID_MESSENGER_DOCUMENTS)


def test_messenger_webhook_bodies(hooks: Hooks) -> None:
    findings = Findings(f"POST /webhooks/messenger/{{id}} on {hooks.world.backend}")

    with_nul = orjson.dumps(
        {
            "object": "page",
            "entry": [
                {
                    "id": PAGE_ID,
                    "time": 1764147600500,
                    "messaging": [
                        {
                            "sender": {"id": "6834529012345671"},
                            "recipient": {"id": PAGE_ID},
                            "timestamp": 1764147600123,
                            "message": {"mid": "m_\x00", "text": "Hello\x00"},
                        }
                    ],
                }
            ],
        }
    )

    @settings(FUZZ, max_examples=60)
    @example(body=with_nul, signature="right")
    @given(
        body=MESSENGER_BODIES,
        signature=st.sampled_from(["right", "right", "right", "wrong", "missing"]),
    )
    def fuzz(body: bytes, signature: str) -> None:
        value = {
            "right": sign_sha256(APP_SECRET, body),
            "wrong": sign_sha256("not-the-secret", body),
        }.get(signature)
        headers = {"Content-Type": "application/json"}
        if value is not None:
            headers["X-Hub-Signature-256"] = value
        path = f"/webhooks/messenger/{hooks.messenger_id}"
        _check_webhook(
            findings,
            hooks,
            hooks.messenger_id,
            f"POST {path} signature {signature}, body {body[:300]!r}",
            lambda: hooks.post(path, body, headers),
            must_be=403 if signature != "right" else None,
        )

    with findings:
        fuzz()
    hooks.world.healthy()
    findings.check()


def test_messenger_verification_handshakes(hooks: Hooks) -> None:
    findings = Findings(f"GET /webhooks/messenger/{{id}} on {hooks.world.backend}")
    path = f"/webhooks/messenger/{hooks.messenger_id}"

    @settings(FUZZ, max_examples=40)
    @given(
        mode=st.none() | st.sampled_from(["subscribe", "unsubscribe", ""]) | ANY_TEXT,
        token=st.none() | st.sampled_from([VERIFY_TOKEN, VERIFY_TOKEN + " ", ""]) | ANY_TEXT,
        challenge=st.none() | st.text(st.characters(exclude_categories=("Cs",)), max_size=300),
    )
    def fuzz(mode: str | None, token: str | None, challenge: str | None) -> None:
        query = {
            name: value
            for name, value in (
                ("hub.mode", mode),
                ("hub.verify_token", token),
                ("hub.challenge", challenge),
            )
            if value is not None
        }
        findings.examples += 1
        with httpx.Client(base_url=hooks.world.url, timeout=REQUEST_TIMEOUT, trust_env=False) as c:
            try:
                r = c.get(path, params=query)
            except httpx.TimeoutException:
                findings.add("no answer in time", repr(query))
                return
        right = mode == "subscribe" and token == VERIFY_TOKEN
        expected = (200 if challenge is not None else 400) if right else 403
        if r.status_code != expected:
            cause = findings.cause(r.status_code)
            findings.add(
                f"answered {r.status_code} {cause}, expected {expected}",
                f"{query!r}\n-> {r.text[:300]}",
            )
        elif expected == 200 and r.text != challenge:
            findings.add("the challenge came back changed", f"{query!r}\n-> {r.text[:300]!r}")

    with findings:
        fuzz()
    hooks.world.healthy()
    findings.check()


# 4. Afterwards ------------------------------------------------------------------------------------


def test_the_server_is_healthy_after_the_fuzzing(world: World) -> None:
    world.healthy()
    assert _hello(world) == "hello"
    # And still does its job: a new account's signed message is stored and listed.
    team = world.api.signup(company="After the fuzz")
    integration = team.install(secret="after-fuzz")
    conversation = team.conversation_from(integration, text="Still there?")
    assert conversation["last_message"]["text"] == "Still there?"
    r = world.api.get("/api/v1/conversations", team.admin.token)
    assert r.status_code == 200, r.text
    assert [c["id"] for c in r.json()["items"]] == [conversation["id"]]
