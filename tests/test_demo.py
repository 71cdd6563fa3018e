"""The first-run demo: its workspace is made once, its simulated customers drive a real server
through the signed webhooks, and a server started without it has none of it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from server.demo import content
from server.demo.seed import ensure_demo, find_demo
from server.demo.simulate import Channel, Persona, Simulator, SimulatorConfig
from server.state.db import Database
from tests import support
from tests.nodes import REPO_ROOT, Frame, ServerProcess, WsClient, _die_with_parent, _tail
from tests.support import TABLES, Api, LiveServer, free_port, settings_for, wait_for

ADMIN = content.ADMIN.email
LEO = f"leo@{content.EMAIL_DOMAIN}"
PASSWORD = content.PASSWORD
# Settings of the developer's environment that would change what a demo process does.
SCRUBBED = (
    "DEMO",
    "DATABASE_URL",
    "PUBLIC_URL",
    "TWILIO_API_BASE",
    "MESSENGER_API_BASE",
    "ALLOWED_ORIGINS",
    "SMTP_URL",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "HOST",
    "PORT",
)


def table_counts(database_url: str) -> dict[str, int]:
    db = Database(database_url)
    try:
        with db.read_engine.connect() as conn:
            return {
                t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in TABLES
            }
    finally:
        db.dispose()


def event_seqs(database_url: str, account_id: int) -> tuple[list[int], int]:
    db = Database(database_url)
    try:
        with db.read_engine.connect() as conn:
            seqs = conn.execute(
                text("SELECT seq FROM events WHERE account_id = :a ORDER BY seq"), {"a": account_id}
            )
            last = conn.execute(
                text("SELECT event_seq FROM accounts WHERE id = :a"), {"a": account_id}
            )
            return [int(s) for s in seqs.scalars()], int(last.scalar_one())
    finally:
        db.dispose()


def login(api: Api, email: str) -> str:
    r = api.post("/api/v1/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


# Seeding ---------------------------------------------------------------------------------------


def test_seeding_twice_changes_nothing_and_the_demo_logins_work(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    settings = settings_for(url, tmp_path)
    first = ensure_demo(settings)
    assert first.created
    counts = table_counts(url)
    second = ensure_demo(settings)  # another `make demo` on the same data dir
    assert not second.created
    assert table_counts(url) == counts
    assert (second.account_id, second.users, second.channels) == (
        first.account_id,
        first.users,
        first.channels,
    )

    # All of the content, each thing once; every reply of the past was delivered.
    assert counts["accounts"] == 1 and "Demo" in second.account_name
    assert counts["users"] == len(content.TEAM)
    assert sorted(c.provider for c in second.channels) == ["api", "messenger", "twilio_whatsapp"]
    assert counts["conversations"] == counts["contacts"] == len(content.CONVERSATIONS)
    expected_messages = sum(
        isinstance(s, content.In | content.Out) for c in content.CONVERSATIONS for s in c.steps
    )
    assert counts["messages"] == expected_messages
    assert counts["persons"] == len(content.PERSONS) and counts["deals"] == len(content.DEALS)
    assert counts["leads"] == len(content.LEADS)
    assert counts["crm_links"] == 4 and counts["notes"] >= 4
    assert counts["outbound_jobs"] == 0
    # The event log is what the same actions taken live would have left: 1..n, no gaps.
    seqs, last = event_seqs(url, second.account_id)
    assert seqs == list(range(1, last + 1)) and last > 100

    live = LiveServer(settings, support.TestClock())
    live.start()
    api = Api(live)
    try:
        tokens = {user.email: login(api, user.email) for user in second.users}
        admin = tokens[ADMIN]
        summary = api.get("/api/v1/inbox/summary", admin).json()["sections"]
        assert {k: v["count"] for k, v in summary.items()} == {
            "unassigned": 3,
            "mine": 2,
            "others": 6,
            "closed": 3,
        }
        assert summary["unassigned"]["unread"] == 3
        leo_sections = api.get("/api/v1/inbox/summary", tokens[LEO]).json()["sections"]
        assert leo_sections["mine"]["count"] == 2
        users = {u["email"]: u for u in api.get("/api/v1/users", admin).json()["items"]}
        assert [e for e, u in users.items() if not u["available"]] == [
            f"sam@{content.EMAIL_DOMAIN}"
        ]
        conversations = api.get("/api/v1/conversations", admin, params={"limit": 100}).json()
        by_name = {c["contact"]["name"]: c for c in conversations["items"]}
        # Marco wrote again after Sofia closed his conversation: it reopened, in her section.
        assert by_name["Marco Bianchi"]["status"] == "open"
        assert by_name["Marco Bianchi"]["version"] == 4
        assert {link["target"] for link in by_name["Grace Okoye"]["links"]} == {"deal", "person"}
        statuses = {
            m["status"]
            for c in conversations["items"]
            for m in api.get(f"/api/v1/conversations/{c['id']}/messages", admin).json()["items"]
            if m["direction"] == "outbound"
        }
        assert statuses == {"sent", "delivered", "read"}
    finally:
        api.close()
        live.stop()


# The simulator against a live server -------------------------------------------------------------


CHATTY = (
    Persona("Pia Test", ("Do you have the oak table?",), ("Great, how much?", "OK!"), "Thanks!"),
    Persona("Kai Test", ("Is the lamp on sale?",), ("And the shade?", "Fine."), "Bye!"),
)
AUTH_TOKEN = "simulated-twilio-auth-token"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Any:
    data = tmp_path_factory.mktemp("simulate")
    server = LiveServer(settings_for(f"sqlite:///{data / 'sim.db'}", data), support.TestClock())
    server.start()
    yield server
    server.stop()


def _install_channels(api: Api) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    team = api.signup(company="Simulated Co")
    chat = team.install(name="Web chat", secret="sim-secret")
    r = api.post(
        "/api/v1/integrations",
        team.admin.token,
        json={
            "provider": "twilio_whatsapp",
            "name": "WhatsApp",
            "config": {
                "account_sid": "AC" + "5a" * 16,
                "auth_token": AUTH_TOKEN,
                "from_number": "+15005550006",
            },
        },
    )
    assert r.status_code == 201, r.text
    return team, chat, r.json()


def _inbound(frame: Frame, conversation_id: int | None = None) -> bool:
    return (
        frame["type"] == "message.created"
        and frame["data"]["message"]["direction"] == "inbound"
        and (conversation_id is None or frame["data"]["conversation"]["id"] == conversation_id)
    )


def test_simulated_customers_write_answer_and_come_back(live: LiveServer) -> None:
    api = Api(live)
    try:
        team, chat, whatsapp = _install_channels(api)
        # A customer of days ago, whose conversation was closed.
        old = team.conversation_from(chat, contact="old-1", name="Olga Old", text="Bye!")
        closed = api.post(f"/api/v1/conversations/{old['id']}/close", team.admin.token)
        assert closed.json()["status"] == "closed"
        config = SimulatorConfig(
            url=live.url,
            public_url=live.settings.public_url,  # what Twilio signs
            channels=(
                Channel("api", chat["id"], chat["secret"]),
                Channel("twilio_whatsapp", whatsapp["id"], AUTH_TOKEN),
            ),
            token=team.admin.token,
            rate=600,
            customers=3,
            new_every=20,
            speed=20,
            poll=0.1,
            quiet_chance=0,
            nudge_chance=0,
            comeback_chance=1,
            returning_chance=1,
            duration=50,
            seed=1,
            personas=CHATTY,
        )
        stats = asyncio.run(_simulated_customers(live, team.admin.token, config, old["id"]))
    finally:
        api.close()
    assert stats.error is None, stats.error
    assert stats.comebacks >= 2 and stats.answered >= 1


async def _simulated_customers(
    live: LiveServer, token: str, config: SimulatorConfig, old_id: int
) -> Any:
    ws = await WsClient.connect(live.url.replace("http", "ws") + "/ws", token, name="admin")
    simulator = Simulator(config, say=lambda line: None)
    running = asyncio.create_task(simulator.run())
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(base_url=live.url, headers=headers, trust_env=False) as http:
            # Someone of a closed conversation writes again: it reopens, live.
            back = await ws.wait_for(lambda f: _inbound(f, old_id), timeout=15)
            assert back["data"]["conversation"]["status"] == "open"
            # A new customer writes; an agent answers at once: the customer answers back.
            created = await ws.wait_for_frames(
                lambda frames: _new_conversations(frames, {"api"}), timeout=20
            )
            conversation_id = created["api"]
            start = len(ws.frames)
            r = await http.post(
                f"/api/v1/conversations/{conversation_id}/messages", json={"text": "Yes, €890."}
            )
            assert r.status_code == 201, r.text
            await ws.wait_for_new(lambda f: _inbound(f, conversation_id), timeout=15, start=start)
            # The agent ends the conversation: the customer comes back, and it reopens by itself.
            r = await http.post(f"/api/v1/conversations/{conversation_id}/close")
            assert r.json()["status"] == "closed"
            start = len(ws.frames)
            again = await ws.wait_for_new(
                lambda f: _inbound(f, conversation_id), timeout=15, start=start
            )
            assert again["data"]["conversation"]["status"] == "open"
            # Customers write on the WhatsApp channel too, signed as Twilio signs.
            await ws.wait_for_frames(
                lambda frames: _new_conversations(frames, {"twilio_whatsapp"}), timeout=20
            )
    finally:
        simulator.stop()
        stats = await running
        await ws.close()
    return stats


def _new_conversations(frames: list[Frame], providers: set[str]) -> dict[str, int] | None:
    found: dict[str, int] = {}
    for frame in frames:
        if frame["type"] == "conversation.created":
            conversation = frame["data"]["conversation"]
            found.setdefault(conversation["provider"], conversation["id"])
    return found if providers <= set(found) else None


def test_the_simulator_stops_on_a_wrong_secret_and_keeps_to_its_limits(live: LiveServer) -> None:
    api = Api(live)
    try:
        team, chat, _ = _install_channels(api)
        wrong = SimulatorConfig(
            url=live.url, channels=(Channel("api", chat["id"], "not-the-secret"),), speed=20
        )
        stats = asyncio.run(Simulator(wrong, say=lambda line: None).run())
        assert stats.sent == 0 and stats.error and "signature" in stats.error

        # Without a token the customers only write; the limit stops them.
        limited = SimulatorConfig(
            url=live.url,
            channels=(Channel("api", chat["id"], chat["secret"]),),
            rate=600,
            speed=20,
            new_every=5,
            max_messages=3,
            duration=30,
        )
        stats = asyncio.run(Simulator(limited, say=lambda line: None).run())
        assert stats.error is None and stats.sent == 3
        listed = api.get("/api/v1/conversations", team.admin.token).json()["items"]
        messages = [
            m
            for c in listed
            for m in api.get(f"/api/v1/conversations/{c['id']}/messages", team.admin.token).json()[
                "items"
            ]
        ]
        assert len(messages) == 3
    finally:
        api.close()


# `make demo` and `make run` ----------------------------------------------------------------------


class DemoProcess:
    """`python -m server <args>` in a child process, ready once /readyz answers 200."""

    def __init__(self, args: list[str], env: dict[str, str], port: int) -> None:
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="switchboard-demo-"))
        self.log_path = self.dir / "out.log"
        full_env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        full_env.update(env, PYTHONUNBUFFERED="1")
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", *args],
            cwd=REPO_ROOT,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        try:
            wait_for(self._ready, timeout=60, interval=0.1)
        except BaseException:
            self.interrupt()
            print(f"--- the demo did not become ready; its output:\n{self.output()}")
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"exited with {self.process.returncode}:\n{self.output()}")
        try:
            return httpx.get(self.url + "/readyz", timeout=2, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def output(self) -> str:
        return _tail(self.log_path, 400)

    def interrupt(self) -> int:
        """Ctrl-C, and wait for the end (SIGKILL if it takes too long)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        return self.process.returncode


def test_make_demo_serves_the_workspace_and_its_customers_live(tmp_path: Path) -> None:
    env = {"SWITCHBOARD_DATA_DIR": str(tmp_path / "data"), "PASSWORD_HASH_PROFILE": "fast"}
    port = free_port()
    pace = ["--speed", "20", "--rate", "300", "--new-every", "10", "--poll", "0.2"]
    demo = DemoProcess(["demo", "--port", str(port), *pace], env, port)
    try:
        asyncio.run(_demo_run(demo))
    except BaseException:
        print(f"--- output of the demo:\n{demo.output()}")
        raise
    finally:
        code = demo.interrupt()
    output = demo.output()
    assert code == 0, output
    for expected in (f"open {demo.url}", ADMIN, LEO, PASSWORD, "created just now", "stopped:"):
        assert expected in output

    # Started again, here by `DEMO=1 python -m server run`: the same workspace, nothing added.
    port = free_port()
    again = DemoProcess(["run", "--port", str(port)], {**env, "DEMO": "1"}, port)
    try:
        api = Api(again)  # type: ignore[arg-type]  # Api only needs `.url`
        try:
            token = login(api, LEO)
            sizes = {
                path: len(api.get(f"/api/v1/{path}", token, params={"limit": 100}).json()["items"])
                for path in ("users", "integrations", "persons", "leads", "deals")
            }
        finally:
            api.close()
    finally:
        code = again.interrupt()
    assert sizes == {
        "users": len(content.TEAM),
        "integrations": len(content.CHANNELS),
        "persons": len(content.PERSONS),
        "leads": len(content.LEADS),
        "deals": len(content.DEALS),
    }
    assert code == 0 and "already there" in again.output()


async def _demo_run(demo: DemoProcess) -> None:
    async with httpx.AsyncClient(base_url=demo.url, trust_env=False) as http:
        r = await http.post("/api/v1/login", json={"email": LEO, "password": PASSWORD})
        assert r.status_code == 200, r.text
        token = r.json()["token"]
        http.headers["Authorization"] = f"Bearer {token}"
        ws = await WsClient.connect(demo.url.replace("http", "ws") + "/ws", token, name="leo")
        try:
            # The simulated customers write on all three channels, and it shows live.
            await ws.wait_for_frames(_inbound_on_every_provider, timeout=30)

            # Replies on the demo channels are delivered (by the local stand-in, for Twilio and
            # Meta, which reports them delivered like the real ones).
            unassigned = await http.get("/api/v1/conversations", params={"section": "unassigned"})
            seeded = {c.handle: c.channel for c in content.CONVERSATIONS}
            replied: dict[int, str] = {}  # message id: the status it should reach
            providers: set[str] = set()
            for item in unassigned.json()["items"]:
                provider = item["provider"]
                if item["contact"]["handle"] in seeded and provider not in providers:
                    providers.add(provider)
                    r = await http.post(
                        f"/api/v1/conversations/{item['id']}/messages", json={"text": "On it!"}
                    )
                    assert r.status_code == 201, r.text
                    replied[r.json()["id"]] = "sent" if provider == "api" else "delivered"
            assert providers == {"api", "twilio_whatsapp", "messenger"}
            await ws.wait_for_frames(_reached(replied), timeout=20)
        finally:
            await ws.close()


def _inbound_on_every_provider(frames: list[Frame]) -> bool:
    providers = {f["data"]["conversation"]["provider"] for f in frames if _inbound(f)}
    return providers >= {"api", "twilio_whatsapp", "messenger"}


def _reached(wanted: dict[int, str]) -> Callable[[list[Frame]], bool]:
    def check(frames: list[Frame]) -> bool:
        reached = {
            f["data"]["message"]["id"]
            for f in frames
            if f["type"] == "message.updated"
            and wanted.get(f["data"]["message"]["id"]) == f["data"]["message"]["status"]
        }
        return reached == set(wanted)

    return check


def test_a_server_started_without_the_demo_has_none_of_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    node = ServerProcess({"DEMO": "0", "DATABASE_URL": url}, free_port(), name="plain")
    try:
        r = httpx.post(
            node.url + "/api/v1/login",
            json={"email": ADMIN, "password": PASSWORD},
            trust_env=False,
        )
        assert r.status_code == 401
        log = node.log()
    finally:
        node.stop()
        node.cleanup()
    assert "demo" not in log.lower()
    counts = table_counts(url)
    assert counts["accounts"] == counts["users"] == counts["integrations"] == 0
    assert find_demo(settings_for(url, tmp_path)) is None
