"""Abuse resistance: rate limits (signup, login, webhooks) shared through Redis, the growing delay
after failed logins, token management (list, create, revoke) and the password policy.

Rate limits are tested on servers of their own with small limits; clients are told apart by
`X-Forwarded-For`, which uvicorn takes from the tests' trusted 127.0.0.1 (`proxy_headers`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.config import Rate, Settings
from server.domain import accounts
from server.domain.password_policy import (
    COMMON,
    PERSONAL,
    REPEATED,
    TOO_LONG,
    TOO_SHORT,
    common_passwords,
    password_problem,
)
from server.security.ratelimit import client_subject, estimate, retry_after
from server.security.signatures import sign_sha256
from tests.nodes import RedisServer
from tests.support import Api, LiveServer, Member, Team, free_port, settings_for
from tests.support import TestClock as FakeClock  # not collected as a test class

PASSWORD = "correct horse"  # what tests.support gives every user it creates
ALLOWED_ORIGIN = "http://testserver.local"  # the origin of the tests' PUBLIC_URL
HOUR = 3600


# Helpers -------------------------------------------------------------------------------------


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"], body
    return error


def assert_rate_limited(r: httpx.Response) -> int:
    """A 429 `rate_limited` in the envelope with a whole-seconds `Retry-After`; returns it."""
    assert_error(r, 429, "rate_limited")
    retry = r.headers.get("Retry-After", "")
    assert retry.isdigit() and int(retry) >= 1, r.headers
    return int(retry)


def password_error(r: httpx.Response) -> str:
    error = assert_error(r, 422, "validation_error")
    message: str = error["fields"]["password"]
    return message


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"


def unique_ip() -> str:
    """A documentation address (TEST-NET-3) nobody else in the run uses."""
    return f"203.0.{uuid.uuid4().int % 200 + 1}.{uuid.uuid4().int % 250 + 1}"


def from_ip(ip: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip}


def signup_body(email: str | None = None, password: str = PASSWORD) -> dict[str, Any]:
    return {
        "company_name": "Acme",
        "name": "Ada Admin",
        "email": email or unique_email("ada"),
        "password": password,
    }


def signup(api: Api, ip: str, email: str | None = None, **body: Any) -> httpx.Response:
    return api.post("/api/v1/signup", json={**signup_body(email), **body}, headers=from_ip(ip))


def login(api: Api, email: str, password: str = PASSWORD, ip: str | None = None) -> httpx.Response:
    r = api.post(
        "/api/v1/login",
        json={"email": email, "password": password},
        headers=from_ip(ip or unique_ip()),
    )
    api.http.cookies.clear()
    return r


def to_window_start(clock: FakeClock, period: int) -> None:
    """Move the clock to one second into a fresh rate-limit window: a test that takes less than
    the window sees a limit's whole budget, with no window edge in between."""
    now = clock().timestamp()
    clock.advance(seconds=math.ceil(now / period) * period + 1 - now)


def metric(api: Api, line_start: str) -> float:
    for line in api.get("/metrics").text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return 0.0


# Pure parts: rates, Retry-After, client subjects, the login delay, the password policy -------


def test_rates_parse_from_the_environment() -> None:
    assert Rate.parse("10/hour", name="X") == Rate(10, 3600)
    assert Rate.parse("600/minute", name="X") == Rate(600, 60)
    assert Rate.parse("5/30s", name="X") == Rate(5, 30)
    assert Rate.parse("100 / 2 hours", name="X") == Rate(100, 7200)
    assert Rate.parse("1/day", name="X") == Rate(1, 86400)
    assert Rate.parse("off", name="X") is None
    assert Rate.parse("0", name="X") is None
    for bad in ("ten/hour", "10", "0/hour", "10/fortnight", "-1/minute", ""):
        with pytest.raises(ValueError, match="RATE_LIMIT_LOGIN"):
            Rate.parse(bad, name="RATE_LIMIT_LOGIN")


def test_limit_settings_defaults_and_overrides(tmp_path: Path) -> None:
    defaults = Settings.from_env({"SWITCHBOARD_DATA_DIR": str(tmp_path), "SECRET_KEY": "k"})
    assert defaults.signup_rate == Rate(10, 3600)
    assert defaults.login_rate == Rate(30, 60)
    assert defaults.webhook_rate == Rate(600, 60)
    assert (defaults.login_delay_base, defaults.login_delay_max) == (1.0, 5.0)
    custom = Settings.from_env(
        {
            "SWITCHBOARD_DATA_DIR": str(tmp_path),
            "SECRET_KEY": "k",
            "RATE_LIMIT_SIGNUP": "3/day",
            "RATE_LIMIT_LOGIN": "off",
            "RATE_LIMIT_WEBHOOK": "50/10s",
            "LOGIN_DELAY_BASE": "0.5",
            "LOGIN_DELAY_MAX": "2",
        }
    )
    assert custom.signup_rate == Rate(3, 86400)
    assert custom.login_rate is None
    assert custom.webhook_rate == Rate(50, 10)
    assert (custom.login_delay_base, custom.login_delay_max) == (0.5, 2.0)
    with pytest.raises(ValueError, match="LOGIN_DELAY_MAX"):
        Settings.from_env(
            {"SWITCHBOARD_DATA_DIR": str(tmp_path), "SECRET_KEY": "k", "LOGIN_DELAY_MAX": "x"}
        )


def _allowed_after(rate: Rate, wait: float, *, elapsed: float, current: int, previous: int) -> bool:
    """Would one more request fit `wait` seconds later (nothing counted meanwhile)?"""
    later = elapsed + wait
    if later < rate.period:
        load = estimate(rate, elapsed=later, current=current, previous=previous)
    elif later < 2 * rate.period:
        load = estimate(rate, elapsed=later - rate.period, current=0, previous=current)
    else:
        load = 0.0
    return load + 1 <= rate.count + 1e-9


@pytest.mark.parametrize("rate", [Rate(1, 60), Rate(3, 3600), Rate(10, 3600), Rate(600, 60)])
def test_retry_after_is_the_first_whole_second_a_request_fits(rate: Rate) -> None:
    for elapsed in (0.0, 0.5, rate.period / 3, rate.period * 0.9, rate.period - 0.01):
        for previous in sorted({0, 1, rate.count // 2, rate.count}):
            for current in sorted({0, 1, rate.count - 1, rate.count}):
                if _allowed_after(rate, 0, elapsed=elapsed, current=current, previous=previous):
                    continue  # not refused: no Retry-After to give
                wait = retry_after(rate, elapsed=elapsed, current=current, previous=previous)
                case = (rate, elapsed, previous, current, wait)
                assert wait >= 1, case
                assert _allowed_after(
                    rate, wait, elapsed=elapsed, current=current, previous=previous
                ), case
                assert (
                    not _allowed_after(
                        rate, wait - 1, elapsed=elapsed, current=current, previous=previous
                    )
                    or wait == 1
                ), case


def test_clients_are_counted_by_ip_and_ipv6_by_its_64() -> None:
    assert client_subject("198.51.100.7") == "198.51.100.7"
    assert client_subject("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert client_subject("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert client_subject("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert client_subject("::ffff:198.51.100.7") == "198.51.100.7"
    assert client_subject(None) == client_subject("") == "unknown"


def test_failed_login_delay_policy() -> None:
    """The Nth failure in a row for an email waits min(base * 2^(N-3), max): the first two
    (typos) are free, then 1, 2, 4, 5, 5... seconds by default."""
    delays = [accounts.login_delay(n, base=1.0, cap=5.0) for n in range(1, 11)]
    assert delays == [0, 0, 1, 2, 4, 5, 5, 5, 5, 5]
    assert sum(delays) == 32  # a guesser's ten tries before the lockout take half a minute
    assert [accounts.login_delay(n, base=0.25, cap=1.0) for n in (3, 4, 5, 6)] == [
        0.25,
        0.5,
        1.0,
        1.0,
    ]
    assert accounts.login_delay(10_000, base=1.0, cap=5.0) == 5.0  # no overflow
    assert accounts.login_delay(5, base=0.0, cap=5.0) == 0.0  # LOGIN_DELAY_BASE=0: off


def test_password_policy() -> None:
    who = {"email": "grace.hopper@navy.test", "name": "Grace Hopper"}
    assert password_problem("correct horse", **who) is None
    assert password_problem("Tr0ub4dor&3 ocean", **who) is None
    assert password_problem("9837465019love", **who) is None  # a word with many random digits
    assert password_problem("short", **who) == TOO_SHORT
    assert password_problem("x" * 1025, **who) == TOO_LONG
    assert password_problem("é" * 4 + "ß" * 4, **who) is None  # characters, not bytes
    for personal in ("grace.hopper@navy.test", "GRACE.HOPPER@NAVY.TEST", "grace.hopper"):
        assert password_problem(personal, **who) == PERSONAL, personal
    for personal in ("Grace Hopper", "gracehopper", "GRACE  HOPPER"):
        assert password_problem(personal, **who) == PERSONAL, personal
    for common in ("password", "12345678", "qwertyuiop", "iloveyou", "P@ssw0rd", "Password1!"):
        assert password_problem(common, **who) == COMMON, common
    for sprayed in ("Summer2024!", "Winter2025", "welcome123", "Monkey123!", "letmein!!"):
        assert password_problem(sprayed, **who) == COMMON, sprayed
    assert password_problem("aaaaaaaaaaaa", **who) == REPEATED
    assert password_problem("switchboard", **who) == COMMON  # the product's own name


def test_the_common_password_list_ships_with_the_server() -> None:
    common = common_passwords()
    assert len(common) >= 1000
    assert all(p == p.strip().casefold() and p for p in common)
    assert {"password", "123456789", "qwerty123", "1q2w3e4r", "trustno1"} <= common
    assert PASSWORD not in common and "correcthorse" not in common


# Rate limits ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with small limits: 3 signups/hour per IP, 4 logins/hour per IP, 3 webhook
    requests/hour per integration, and failed-login delays of 0.25 s doubling up to 1 s."""
    tmp = tmp_path_factory.mktemp("limited")
    settings = settings_for(
        f"sqlite:///{tmp / 'limited.db'}",
        tmp / "data",
        RATE_LIMIT_SIGNUP="3/hour",
        RATE_LIMIT_LOGIN="4/hour",
        RATE_LIMIT_WEBHOOK="3/hour",
        LOGIN_DELAY_BASE="0.25",
        LOGIN_DELAY_MAX="1",
    )
    live = LiveServer(settings, FakeClock())
    to_window_start(live.clock, HOUR)
    live.start()
    yield live
    live.stop()


@pytest.fixture
def lim(limited: LiveServer) -> Iterator[Api]:
    client = Api(limited)
    offset = limited.clock.offset
    yield client
    limited.clock.offset = offset  # tests that move the clock leave it where it was
    client.close()


def team_on(api: Api) -> Team:
    """An account on a limited server, signed up from an address of its own."""
    r = signup(api, unique_ip())
    assert r.status_code == 201, r.text
    body = r.json()
    team = Team(api, body["account"]["id"])
    user = body["user"]
    team.members["admin"] = Member(user["id"], body["token"], user["email"], user["name"])
    return team


def test_signups_are_limited_per_client_ip(lim: Api, limited: LiveServer) -> None:
    ip, other = unique_ip(), unique_ip()
    for _ in range(3):
        assert signup(lim, ip).status_code == 201
    refused_email = unique_email("refused")
    r = signup(lim, ip, refused_email)
    retry = assert_rate_limited(r)
    assert retry <= 2 * HOUR
    assert "token" not in r.text
    # Nothing was created: the same email signs up fine from elsewhere.
    assert signup(lim, other, refused_email).status_code == 201
    # Still refused a little later; allowed again once Retry-After has passed.
    limited.clock.advance(seconds=retry - 60)
    assert_rate_limited(signup(lim, ip))
    limited.clock.advance(seconds=60)
    assert signup(lim, ip).status_code == 201
    assert metric(lim, 'switchboard_rate_limited_total{limit="signup"}') >= 2


def test_refused_signup_bodies_do_not_count(lim: Api) -> None:
    """A person fixing a refused password does not use up the address's signups."""
    ip = unique_ip()
    for _ in range(5):
        assert password_error(signup(lim, ip, password="password1")) == COMMON
    for _ in range(3):
        assert signup(lim, ip).status_code == 201
    assert_rate_limited(signup(lim, ip))
    # The body is validated first (cheap, no database): still a 422 over the limit.
    assert password_error(signup(lim, ip, password="short"))


def test_ipv6_clients_are_limited_by_their_64(lim: Api) -> None:
    prefix = f"2001:db8:{uuid.uuid4().int % 0xFFFF:x}:1"
    for host in range(1, 4):
        assert signup(lim, f"{prefix}::{host}").status_code == 201
    assert_rate_limited(signup(lim, f"{prefix}::99"))  # another address of the same /64
    neighbour = prefix.rsplit(":", 1)[0] + ":2::1"
    assert signup(lim, neighbour).status_code == 201


def test_logins_are_limited_per_client_ip(lim: Api) -> None:
    team = team_on(lim)
    ip = unique_ip()
    # Any answer counts: right or wrong password, known or unknown email.
    assert login(lim, team.admin.email, ip=ip).status_code == 200
    assert login(lim, unique_email("nobody"), ip=ip).status_code == 401
    assert login(lim, unique_email("nobody"), ip=ip).status_code == 401
    assert login(lim, team.admin.email, "wrong password", ip=ip).status_code == 401
    r = login(lim, team.admin.email, ip=ip)
    assert_rate_limited(r)
    assert r.headers.get_list("set-cookie") == []
    # Checked before the body is read: a malformed one is refused with 429 too.
    junk = lim.post("/api/v1/login", content=b"{not json", headers=from_ip(ip))
    assert_rate_limited(junk)
    # The email is not locked: it logs in from another address.
    assert login(lim, team.admin.email, ip=unique_ip()).status_code == 200


def test_failed_logins_are_answered_ever_more_slowly(lim: Api) -> None:
    """With LOGIN_DELAY_BASE=0.25 and LOGIN_DELAY_MAX=1: failures 3, 4, 5 in a row for an email
    wait 0.25, 0.5 and 1 s (lower bounds only: a slow machine cannot break this test)."""
    team = team_on(lim)
    waited = []
    for _ in range(5):
        started = time.monotonic()
        r = login(lim, team.admin.email, "wrong password")  # each from a new address
        waited.append(time.monotonic() - started)
        assert_error(r, 401, "unauthenticated")
    assert waited[2] >= 0.25 and waited[3] >= 0.5 and waited[4] >= 1.0, waited

    # The wait is asleep on the event loop, not blocking it: others are served meanwhile.
    slow = threading.Thread(target=login, args=(lim, team.admin.email, "wrong password"))
    served_meanwhile = 0
    slow.start()
    with httpx.Client(base_url=lim.server.url, timeout=30) as other:
        while slow.is_alive():
            if other.get("/healthz").status_code == 200 and slow.is_alive():
                served_meanwhile += 1
    slow.join()
    assert served_meanwhile > 0

    # A success ends the streak; unknown emails are slowed down exactly like known ones.
    assert login(lim, team.admin.email).status_code == 200
    nobody = unique_email("nobody")
    for _ in range(2):
        assert login(lim, nobody, "wrong password").status_code == 401
    started = time.monotonic()
    assert login(lim, nobody, "wrong password").status_code == 401
    assert time.monotonic() - started >= 0.25


def test_webhooks_are_limited_per_integration_before_any_other_check(lim: Api) -> None:
    team = team_on(lim)
    integration, other = team.install(), team.install(name="Other channel")
    for n in range(3):
        assert team.inbound(integration, text=f"hello {n}").status_code == 200
    retry = assert_rate_limited(team.inbound(integration, text="one too many"))
    # Before the signature check and before the body is read: no 403, no 400, no 413.
    assert_rate_limited(team.inbound(integration, signature="sha256=" + "0" * 64))
    path = f"/webhooks/api/{integration['id']}"
    bad_json = b"{not json"
    headers = {"X-Signature-256": sign_sha256(integration["secret"], bad_json)}
    assert_rate_limited(lim.post(path, content=bad_json, headers=headers))
    assert_rate_limited(lim.post(path, content=b"x" * (2 * 1024 * 1024)))
    # Nothing of it was stored; other integrations are not affected.
    conversations = lim.get("/api/v1/conversations", team.admin.token).json()["items"]
    messages = lim.get(
        f"/api/v1/conversations/{conversations[0]['id']}/messages", team.admin.token
    ).json()["items"]
    assert sorted(m["text"] for m in messages) == ["hello 0", "hello 1", "hello 2"]
    assert team.inbound(other).status_code == 200
    # Allowed again once Retry-After has passed.
    lim.server.clock.advance(seconds=retry)
    assert team.inbound(integration, text="later").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/webhooks/api/{id}"),
        ("POST", "/webhooks/twilio/{id}"),
        ("POST", "/webhooks/twilio/{id}/status"),
        ("POST", "/webhooks/messenger/{id}"),
        ("GET", "/webhooks/messenger/{id}"),
    ],
)
def test_every_webhook_path_counts_before_looking_the_integration_up(
    lim: Api, method: str, path: str
) -> None:
    unknown = 10_000_000 + uuid.uuid4().int % 1_000_000
    url = path.format(id=unknown)
    for _ in range(3):
        assert_error(lim.request(method, url, content=b"{}"), 404, "not_found")
    assert_rate_limited(lim.request(method, url, content=b"{}"))


def test_limits_are_shared_by_all_nodes_and_fail_open_without_redis(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two nodes on one Redis share one budget; with Redis gone, nothing is refused (REST keeps
    working) and a warning says the limits are not enforced."""
    redis = RedisServer(free_port())
    env = {
        "REDIS_URL": redis.url,
        "REDIS_PREFIX": f"shared-{uuid.uuid4().hex[:8]}",
        "RATE_LIMIT_SIGNUP": "2/hour",
        "RATE_LIMIT_WEBHOOK": "2/hour",
    }
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    nodes: list[LiveServer] = []
    clients: list[Api] = []
    try:
        for name in ("a", "b"):
            node = LiveServer(settings_for(database, tmp_path / name, **env), FakeClock())
            to_window_start(node.clock, HOUR)
            node.start()
            nodes.append(node)
            clients.append(Api(node))
        a, b = clients
        ip = unique_ip()
        assert signup(a, ip).status_code == 201
        assert signup(b, ip).status_code == 201
        assert_rate_limited(signup(a, ip))
        assert_rate_limited(signup(b, ip))

        team = team_on(a)
        integration = team.install()
        assert team.inbound(integration).status_code == 200
        assert b.inbound(integration["id"], integration["secret"]).status_code == 200
        assert_rate_limited(team.inbound(integration))

        redis.stop()
        caplog.set_level(logging.WARNING, logger="server.security.ratelimit")
        assert signup(a, ip).status_code == 201
        assert signup(b, ip).status_code == 201
        assert team.inbound(integration, text="Redis is down").status_code == 200
        assert login(a, team.admin.email, ip=ip).status_code == 200
        assert a.get("/api/v1/me", team.admin.token).status_code == 200
        warnings = [r for r in caplog.records if r.name == "server.security.ratelimit"]
        assert warnings and all(r.levelno == logging.WARNING for r in warnings)
        assert "not enforced" in warnings[0].getMessage()
        assert metric(a, "switchboard_rate_limit_unavailable_total") >= 1
    finally:
        if redis.process is None:
            redis.start()  # let the nodes stop cleanly
        for client in clients:
            client.close()
        for node in nodes:
            node.stop()
        redis.stop()


# Tokens: list, create, revoke -----------------------------------------------------------------


def tokens(api: Api, token: str, **params: Any) -> list[dict[str, Any]]:
    r = api.get("/api/v1/me/tokens", token, params=params)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def new_token(api: Api, token: str, **body: Any) -> dict[str, Any]:
    r = api.post("/api/v1/me/tokens", token, json=body)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


def test_tokens_list_my_api_tokens_and_sessions_never_their_secrets(api: Api) -> None:
    team = api.signup()
    session = login(api, team.admin.email).json()["token"]
    r = api.get("/api/v1/me/tokens", team.admin.token)
    assert r.status_code == 200, r.text
    assert r.json()["next_cursor"] is None
    listed = r.json()["items"]
    assert [t["kind"] for t in listed] == ["api", "session"]
    assert set(listed[0]) == {
        "id",
        "kind",
        "name",
        "hint",
        "current",
        "created_at",
        "expires_at",
        "last_used_at",
    }
    api_token, session_token = listed
    assert api_token["hint"] == team.admin.token[-4:]
    assert session_token["hint"] == session[-4:]
    assert (api_token["current"], session_token["current"]) == (True, False)
    assert api_token["expires_at"] is None and session_token["expires_at"].endswith("Z")
    assert team.admin.token not in r.text and session not in r.text
    # The same list seen through the session: now that one is current.
    assert [t["current"] for t in tokens(api, session)] == [False, True]
    # Other users' tokens are not listed.
    bob = team.add("bob")
    assert [t["hint"] for t in tokens(api, bob.token)] == [bob.token[-4:]]


def test_tokens_page_with_limit_and_cursor(api: Api) -> None:
    team = api.signup()
    for n in range(3):
        new_token(api, team.admin.token, name=f"t{n}")
    first = api.get("/api/v1/me/tokens?limit=2", team.admin.token).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = api.get(
        "/api/v1/me/tokens", team.admin.token, params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [t["name"] for t in first["items"] + rest["items"]] == [None, "t0", "t1", "t2"]
    assert rest["next_cursor"] is None
    assert_error(api.get("/api/v1/me/tokens?limit=0", team.admin.token), 422, "validation_error")


def test_a_new_api_token_is_shown_once_and_works(api: Api) -> None:
    team = api.signup()
    created = new_token(api, team.admin.token, name="CI deploys")
    assert created["token"].startswith("sb_") and created["token"] != team.admin.token
    assert (created["kind"], created["name"], created["expires_at"]) == ("api", "CI deploys", None)
    assert created["hint"] == created["token"][-4:]
    me = api.get("/api/v1/me", created["token"])
    assert me.json()["id"] == team.admin.id
    listed = {t["id"]: t for t in tokens(api, team.admin.token)}
    assert listed[created["id"]]["name"] == "CI deploys"
    assert created["token"] not in str(listed)
    # The body is optional; a name must be a non-blank string of up to 100 characters.
    r = api.post("/api/v1/me/tokens", team.admin.token)
    assert r.status_code == 201 and r.json()["name"] is None, r.text
    for bad in ({"name": ""}, {"name": "   "}, {"name": "x" * 101}, {"name": 5}):
        r = api.post("/api/v1/me/tokens", team.admin.token, json=bad)
        assert "name" in assert_error(r, 422, "validation_error")["fields"], bad
    assert_error(api.post("/api/v1/me/tokens", json={}), 401, "unauthenticated")


def test_api_tokens_are_capped_per_user(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "MAX_API_TOKENS", 3)  # the server runs in this process
    team = api.signup()
    login(api, team.admin.email)  # sessions do not count
    new_token(api, team.admin.token)
    new_token(api, team.admin.token)
    assert_error(api.post("/api/v1/me/tokens", team.admin.token), 409, "too_many_tokens")
    listed = tokens(api, team.admin.token)
    revoked = next(t for t in listed if t["kind"] == "api" and not t["current"])
    assert api.delete(f"/api/v1/me/tokens/{revoked['id']}", team.admin.token).status_code == 204
    new_token(api, team.admin.token)


def test_revoking_a_token_ends_it_at_once(api: Api) -> None:
    team = api.signup()
    spare = new_token(api, team.admin.token, name="spare")
    r = api.delete(f"/api/v1/me/tokens/{spare['id']}", team.admin.token)
    assert r.status_code == 204 and r.content == b"", r.text
    assert_error(api.get("/api/v1/me", spare["token"]), 401, "unauthenticated")
    assert spare["id"] not in [t["id"] for t in tokens(api, team.admin.token)]
    r = api.delete(f"/api/v1/me/tokens/{spare['id']}", team.admin.token)
    assert_error(r, 404, "not_found")  # already gone


def test_revoking_the_token_in_use_works(api: Api) -> None:
    team = api.signup()
    keep = new_token(api, team.admin.token)
    current = next(t for t in tokens(api, team.admin.token) if t["current"])
    r = api.delete(f"/api/v1/me/tokens/{current['id']}", team.admin.token)
    assert r.status_code == 204, r.text
    assert_error(api.get("/api/v1/me", team.admin.token), 401, "unauthenticated")
    assert api.get("/api/v1/me", keep["token"]).status_code == 200


def test_revoking_the_cookie_session_in_use_clears_the_cookie(api: Api) -> None:
    team = api.signup()
    r = login(api, team.admin.email)
    cookie = r.headers["set-cookie"].split(";")[0]
    session_id = next(t["id"] for t in tokens(api, r.json()["token"]) if t["current"])
    headers = {"Cookie": cookie}
    # A cookie-authenticated write needs an allowed Origin, like every other.
    r = api.delete(f"/api/v1/me/tokens/{session_id}", headers=headers)
    assert_error(r, 403, "forbidden")
    r = api.delete(f"/api/v1/me/tokens/{session_id}", headers={**headers, "Origin": ALLOWED_ORIGIN})
    assert r.status_code == 204, r.text
    assert "switchboard_session=" in r.headers["set-cookie"]
    assert "Max-Age=0" in r.headers["set-cookie"] or "expires=" in r.headers["set-cookie"].lower()
    api.http.cookies.clear()
    assert_error(api.get("/api/v1/me", headers=headers), 401, "unauthenticated")
    assert api.get("/api/v1/me", team.admin.token).status_code == 200


def test_other_users_tokens_are_404(api: Api) -> None:
    team, other = api.signup(), api.signup(company="Other")
    bob = team.add("bob")
    bobs = tokens(api, bob.token)[0]["id"]
    outsiders = tokens(api, other.admin.token)[0]["id"]
    for victim in (bobs, outsiders):
        r = api.delete(f"/api/v1/me/tokens/{victim}", team.admin.token)
        assert_error(r, 404, "not_found")
    missing = api.delete("/api/v1/me/tokens/987654321", team.admin.token)
    assert missing.json() == api.delete(f"/api/v1/me/tokens/{bobs}", team.admin.token).json()
    assert api.get("/api/v1/me", bob.token).status_code == 200
    assert api.get("/api/v1/me", other.admin.token).status_code == 200


def test_last_used_at_is_kept_to_a_few_minutes(api: Api, server: LiveServer) -> None:
    team = api.signup()
    spare = new_token(api, team.admin.token)
    assert spare["last_used_at"] is None

    def last_used() -> datetime | None:
        listed = {t["id"]: t for t in tokens(api, team.admin.token)}
        value = listed[spare["id"]]["last_used_at"]
        return datetime.fromisoformat(value) if value else None

    assert last_used() is None
    assert api.get("/api/v1/me", spare["token"]).status_code == 200
    first = last_used()
    assert first is not None
    server.clock.advance(minutes=1)
    api.get("/api/v1/me", spare["token"])
    assert last_used() == first  # not written on every request
    server.clock.advance(minutes=5)
    api.get("/api/v1/me", spare["token"])
    later = last_used()
    assert later is not None and later > first


def test_expired_sessions_are_not_listed(api: Api, server: LiveServer) -> None:
    team = api.signup()
    login(api, team.admin.email)
    assert [t["kind"] for t in tokens(api, team.admin.token)] == ["api", "session"]
    server.clock.advance(days=15)
    assert [t["kind"] for t in tokens(api, team.admin.token)] == ["api"]


# Password policy ------------------------------------------------------------------------------


def test_signup_refuses_weak_passwords_with_clear_messages(api: Api) -> None:
    email = unique_email("grace")
    cases = {
        "password123": COMMON,
        "Summer2025!": COMMON,
        email: PERSONAL,
        email.split("@")[0]: PERSONAL,
        "Ada Admin": PERSONAL,
        "11111111": REPEATED,
        "x" * 1025: "String should have at most 1024 characters",
        "short": "String should have at least 8 characters",
    }
    for password, message in cases.items():
        body = {**signup_body(email, password), "name": "Ada Admin"}
        r = api.post("/api/v1/signup", json=body)
        assert password_error(r) == message, password
    assert api.post("/api/v1/signup", json=signup_body(email)).status_code == 201
    # The policy is part of validating the body: 422 comes before 409 `email_taken`.
    assert password_error(api.post("/api/v1/signup", json=signup_body(email, "qwerty123")))


def test_user_creation_applies_the_policy(api: Api) -> None:
    team = api.signup()
    bob = team.add("bob")
    email = unique_email("carol")
    cases = {"iloveyou1": COMMON, email: PERSONAL, "Carol Jones": PERSONAL}
    for password, message in cases.items():
        body = {"name": "Carol Jones", "email": email, "password": password}
        assert password_error(api.post("/api/v1/users", team.admin.token, json=body)) == message
        # An agent gets the 422 too: the body is checked before the role.
        assert password_error(api.post("/api/v1/users", bob.token, json=body)) == message
    body = {"name": "Carol Jones", "email": email, "password": PASSWORD}
    assert api.post("/api/v1/users", team.admin.token, json=body).status_code == 201
