"""Simulated customers: `python -m server simulate`.

Customers write through the real webhooks of a running server, signed as each provider signs
them (`api`: `X-Signature-256`; Twilio: `X-Twilio-Signature` over `PUBLIC_URL` + path; Meta:
`X-Hub-Signature-256`, `object: "page"`). They answer the agents' replies, sometimes nudge when
nobody answers, go quiet, and come back to conversations that were closed — which reopens them.

How they see the agents' replies: by polling the REST API with a user's token (`--token`, or
`--email`/`--password` to log in), one `GET /api/v1/conversations` every `--poll` seconds plus
one `GET .../messages` for each of their conversations that changed. Polling, unlike a websocket,
does not make that user look online to the team. Without a token the customers only write: they
start conversations, nudge once, and come back later, but cannot react to answers.

Bounded and well-behaved: at most `--rate` messages a minute in all and `--customers` talking at
once; every request goes to `--url` and nowhere else (no proxies from the environment); a
message refused for a moment (5xx, 429, no connection) is retried with the same provider id, so
the server stores it once, after a growing pause (honouring `Retry-After`); a wrong secret, an
unknown integration or a refused token stop the simulator. Ctrl-C stops it, as do `--duration`
and `--max-messages`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import random
import re
import secrets
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from server.demo.standin import profile_name
from server.providers.twilio import twilio_signature
from server.security.signatures import sign_sha256

PROVIDERS = ("api", "twilio_whatsapp", "messenger")
WEBHOOK_PATHS = {"api": "api", "twilio_whatsapp": "twilio", "messenger": "messenger"}
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
MAX_POLL_PAGES = 5
USER_AGENT = "switchboard-simulator/1"


@dataclass(frozen=True)
class Channel:
    """One integration the customers write to, and the secret that signs its webhooks."""

    provider: str
    integration_id: int
    secret: str  # api: webhook_secret; twilio_whatsapp: auth_token; messenger: app_secret
    name: str = ""
    account_sid: str | None = None  # twilio_whatsapp (read over REST when a token is given)
    from_number: str | None = None
    page_id: str | None = None  # messenger

    @property
    def label(self) -> str:
        return self.name or f"{self.provider} #{self.integration_id}"


@dataclass(frozen=True)
class Persona:
    name: str
    opening: tuple[str, ...]
    answers: tuple[str, ...]
    thanks: str


PERSONAS = (
    Persona(
        "Olivia Novak",
        ("Hi! Do you have the Bergen sofa in dark green?",),
        ("Great! How long is delivery to Utrecht?", "And could you take the old sofa away?"),
        "Perfect, thank you!",
    ),
    Persona(
        "Jonas Weber",
        ("Hello", "I'd like to return a lamp I bought last week. How does that work?"),
        ("It's the brass floor lamp, order #4620.", "Tomorrow morning works for me."),
        "Thanks a lot!",
    ),
    Persona(
        "Amara Singh",
        ("Do you sell outdoor furniture?",),
        ("For a small balcony: a bistro set maybe.", "Teak sounds nice. Is it in the showroom?"),
        "Great, see you Saturday!",
    ),
    Persona(
        "Lucía Fernández",
        ("Hi, my order #4588 says delivered but nothing arrived.",),
        ("The address is Keizersgracht 80, Amsterdam.", "Oh, the neighbours have it. Sorry!"),
        "All good now, thanks!",
    ),
    Persona(
        "Ben Carter",
        ("Is the walnut desk still on sale?",),
        ("Is 140 cm the only size?", "Then I'll take the 160 one. Can I pay by invoice?"),
        "Thanks, please send the invoice.",
    ),
    Persona(
        "Yuki Sato",
        ("Could you tell me the dimensions of the Alder bench?",),
        ("Would it fit under a 75 cm high table?",),
        "Great, thanks!",
    ),
    Persona(
        "Mateo Rossi",
        ("Hi, do you sell gift cards?",),
        ("€100 would be perfect. Can you email it?",),
        "Lovely, thanks!",
    ),
    Persona(
        "Hana Kim",
        ("Hello! Do your mattresses come with a trial period?",),
        ("How do returns work if I don't like it?", "OK, I'll order the medium one."),
        "Thanks for your help!",
    ),
)
NUDGES = ("Hello? Is anyone there?", "Any news?", "Just checking you got my message :)")
COMEBACKS = (
    ("Hi again! One more question about my order.", "Could you check when it ships?"),
    ("Hello, me again. The delivery came but a part is missing.", "The small bag of screws."),
    ("Hi! We love it, and we'd like to order a second one.", "Same colour, please."),
    ("Hi, sorry to bother you again: can I change the delivery day?", "Friday would be better."),
)


@dataclass(frozen=True)
class SimulatorConfig:
    url: str
    channels: tuple[Channel, ...]
    # The URL the server believes it has (its PUBLIC_URL): Twilio signs that, not `url`.
    public_url: str | None = None
    token: str | None = None
    email: str | None = None
    password: str | None = None
    rate: float = 10.0  # messages per minute, at most, from all customers together
    customers: int = 3  # talking at once, at most
    new_every: float = 40.0  # seconds between new customers, on average
    speed: float = 1.0  # every pause is divided by it
    poll: float = 2.0  # seconds between looks at the inbox
    quiet_chance: float = 0.15  # that a customer reads an answer and says nothing more
    nudge_chance: float = 0.4  # that a customer nobody answers writes again once
    comeback_chance: float = 0.6  # that a customer whose conversation was closed writes again
    returning_chance: float = 0.25  # that a "new" customer is one of a closed conversation
    duration: float | None = None  # seconds
    max_messages: int | None = None
    seed: int | None = None
    ready_timeout: float = 60.0
    personas: tuple[Persona, ...] = PERSONAS  # who the new customers are, and what they say


class Fatal(Exception):
    """The server refuses the simulator for good: a wrong secret, id, token or URL."""


class _Refused(Exception):
    """The server refuses one message for good (400, 413, 422): it is dropped."""


@dataclass
class Customer:
    channel: Channel
    handle: str
    name: str
    outbox: list[str]  # what they are about to write, in order
    answers: list[str]  # what they will say to the agents' next answers
    thanks: str | None
    due: float  # when they next act: write, give up waiting, or are forgotten
    talking: bool = True  # False: quiet
    done_after_outbox: bool = False
    nudged: bool = False
    returning: bool = False  # back to a closed conversation; counted when they write
    conversation_id: int | None = None
    last_seen_message_id: int = 0
    handled_reply_id: int = 0
    closed: bool = False
    written: int = 0

    @property
    def key(self) -> tuple[int, str]:
        return self.channel.integration_id, self.handle


@dataclass
class Stats:
    sent: int = 0
    answered: int = 0  # agents' replies the customers reacted to
    comebacks: int = 0  # customers who wrote again in a closed conversation
    conversations: set[tuple[int, str]] = field(default_factory=set)
    error: str | None = None

    def summary(self) -> str:
        line = (
            f"{self.sent} messages from {len(self.conversations)} customers, "
            f"{self.answered} answers to agents, {self.comebacks} comebacks"
        )
        return f"{line}; stopped: {self.error}" if self.error else line


def _short(text: str, limit: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Simulator:
    """Runs the customers until stopped; `stats` tells what they did."""

    def __init__(self, config: SimulatorConfig, *, say: Callable[[str], None] | None = None):
        if not config.channels:
            raise ValueError("the simulator needs at least one channel")
        for channel in config.channels:
            if channel.provider not in PROVIDERS:
                raise ValueError(f"unknown provider {channel.provider!r}")
        if config.rate <= 0 or config.speed <= 0 or config.customers < 1:
            raise ValueError("rate and speed must be positive, customers at least 1")
        if not config.personas:
            raise ValueError("the simulator needs at least one persona")
        self.config = config
        self.stats = Stats()
        self.customers: list[Customer] = []
        self._say = say or (lambda line: print(line, flush=True))
        self._random = random.Random(config.seed)
        self._token = config.token
        self._channels = list(config.channels)
        self._base = config.url.rstrip("/")
        self._public = (config.public_url or config.url).rstrip("/")
        self._last_sent = -math.inf
        self._spawned = 0
        self._stop = asyncio.Event()
        self._http: httpx.AsyncClient | None = None

    def say(self, line: str) -> None:
        self._say(f"[simulator] {line}")

    def stop(self) -> None:
        """Stop soon (call on the simulator's event loop)."""
        self._stop.set()

    # Running -----------------------------------------------------------------------------------

    async def run(self) -> Stats:
        headers = {"User-Agent": USER_AGENT}
        async with httpx.AsyncClient(
            base_url=self._base, timeout=10, trust_env=False, headers=headers
        ) as http:
            self._http = http
            try:
                await self._start()
                await self._loop()
            except Fatal as exc:
                self.stats.error = str(exc)
                self.say(f"stopping: {exc}")
        return self.stats

    async def _start(self) -> None:
        await self._wait_ready()
        if self._token is None and self.config.email and self.config.password:
            self._token = await self._log_in(self.config.email, self.config.password)
        self._channels = [await self._complete(c) for c in self._channels]
        mode = "and answer the agents" if self._token else "(no token: they cannot see answers)"
        names = ", ".join(c.label for c in self._channels)
        self.say(
            f"customers write to {names} at {self._base} {mode}; "
            f"at most {self.config.rate:g} messages a minute"
        )

    async def _loop(self) -> None:
        clock = asyncio.get_running_loop().time
        started = clock()
        next_spawn = started
        next_poll = started
        while not self._stop.is_set():
            now = clock()
            if self.config.duration is not None and now - started >= self.config.duration:
                return
            if self._enough():
                return
            if self._token and now >= next_poll:
                await self._poll()
                next_poll = clock() + self.config.poll
            if now >= next_spawn:
                if sum(c.talking for c in self.customers) < self.config.customers:
                    await self._spawn()
                next_spawn = clock() + self._pause_of(self.config.new_every, spread=0.5)
            for customer in list(self.customers):
                if self._stop.is_set() or self._enough():
                    return
                if customer in self.customers and clock() >= self._ready_at(customer):
                    await self._act(customer)
            wake = min(
                [next_spawn, next_poll if self._token else math.inf]
                + [self._ready_at(c) for c in self.customers]
            )
            await self._sleep(min(max(wake - clock(), 0.01), 1.0))

    def _ready_at(self, customer: Customer) -> float:
        """When the customer acts next: writing waits for the rate limit too."""
        if customer.outbox:
            return max(customer.due, self._last_sent + 60 / self.config.rate)
        return customer.due

    def _enough(self) -> bool:
        limit = self.config.max_messages
        return limit is not None and self.stats.sent >= limit

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def _pause_of(self, seconds: float, *, spread: float = 0.5) -> float:
        """A human pause around `seconds` (± `spread` of it), shortened by the speed."""
        factor = self._random.uniform(1 - spread, 1 + spread)
        return seconds * factor / self.config.speed

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    # Customers ---------------------------------------------------------------------------------

    async def _spawn(self) -> None:
        if self._token and self._random.random() < self.config.returning_chance:
            returning = await self._returning_customer()
            if returning is not None:
                self.customers.append(returning)
                return
        busy = {c.name for c in self.customers}
        personas = self.config.personas
        persona = self._random.choice([p for p in personas if p.name not in busy] or personas)
        # Each channel in turn, so that every one of them comes alive.
        channel = self._channels[self._spawned % len(self._channels)]
        self._spawned += 1
        handle = self._new_handle(channel, persona)
        name = persona.name
        if channel.provider == "messenger":
            # Meta names Messenger contacts (the demo's stand-in makes names up the same way).
            name = " ".join(profile_name(handle))
        self.customers.append(
            Customer(
                channel=channel,
                handle=handle,
                name=name,
                outbox=list(persona.opening),
                answers=list(persona.answers),
                thanks=persona.thanks,
                due=self._now(),
            )
        )
        self._forget_oldest_quiet()

    def _new_handle(self, channel: Channel, persona: Persona) -> str:
        taken = {c.handle for c in self.customers}
        while True:
            if channel.provider == "api":
                slug = re.sub(r"[^a-z]+", "-", persona.name.lower()).strip("-")
                handle = f"sim-{slug}-{secrets.token_hex(3)}"
            elif channel.provider == "twilio_whatsapp":
                # Ofcom's range for drama: numbers that belong to nobody.
                handle = f"+447700900{self._random.randint(500, 999)}"
            else:
                handle = f"68345291{self._random.randint(10**7, 10**8 - 1)}"
            if handle not in taken:
                return handle

    async def _returning_customer(self) -> Customer | None:
        """Someone whose conversation is closed writes again (the conversation reopens)."""
        page = await self._get("/api/v1/conversations", {"section": "closed", "limit": "50"})
        if page is None:
            return None
        channels = {c.integration_id: c for c in self._channels}
        tracked = {c.key for c in self.customers}
        candidates = []
        for item in page.get("items", []):
            channel = channels.get(item.get("integration_id"))
            handle = str((item.get("contact") or {}).get("handle") or "")
            if channel is None or not handle or (channel.integration_id, handle) in tracked:
                continue
            if channel.provider == "twilio_whatsapp" and not E164.match(handle):
                continue
            candidates.append((channel, handle, item))
        if not candidates:
            return None
        channel, handle, item = self._random.choice(candidates)
        last_id = int((item.get("last_message") or {}).get("id") or 0)
        opening, answer = self._random.choice(COMEBACKS)
        return Customer(
            channel=channel,
            handle=handle,
            name=str(item["contact"].get("name") or handle),
            outbox=[opening],
            answers=[answer],
            thanks="Thanks!",
            due=self._now(),
            returning=True,
            conversation_id=int(item["id"]),
            last_seen_message_id=last_id,
            handled_reply_id=last_id,
            closed=True,
        )

    def _forget_oldest_quiet(self) -> None:
        quiet = [c for c in self.customers if not c.talking]
        for customer in quiet[: max(len(quiet) - 4 * self.config.customers, 0)]:
            self.customers.remove(customer)

    async def _act(self, customer: Customer) -> None:
        now = self._now()
        if customer.outbox:
            text = customer.outbox[0]
            if not await self._write(customer, text):
                return
            customer.outbox.pop(0)
            if customer.outbox:
                customer.due = self._now() + self._pause_of(4)
            elif customer.done_after_outbox:
                self._go_quiet(customer, "says goodbye")
            else:
                customer.due = self._now() + self._pause_of(120)
        elif customer.talking:
            # Nobody answered in time.
            if not customer.nudged and self._random.random() < self.config.nudge_chance:
                customer.nudged = True
                customer.outbox.append(self._random.choice(NUDGES))
                customer.due = now
            else:
                self._go_quiet(customer, "gives up waiting and goes quiet")
        elif not self._token and self._random.random() < self.config.comeback_chance:
            # Nobody can tell them it was closed: they just come back some day.
            self._come_back(customer)
        else:
            self.customers.remove(customer)

    def _go_quiet(self, customer: Customer, why: str) -> None:
        customer.talking = False
        customer.outbox.clear()
        customer.due = self._now() + self._pause_of(600 if self._token else 90)
        self.say(f"{customer.name} {why}")

    def _come_back(self, customer: Customer) -> None:
        opening, answer = self._random.choice(COMEBACKS)
        customer.talking = True
        customer.returning = True
        customer.nudged = False
        customer.done_after_outbox = False
        customer.outbox = [opening]
        customer.answers = [answer]
        customer.thanks = "Thanks!"
        customer.due = self._now() + self._pause_of(40)

    def _agent_replied(self, customer: Customer, reply: dict[str, Any]) -> None:
        if not customer.talking or customer.outbox:
            return  # quiet, or already typing
        sender = (reply.get("sender") or {}).get("name") or "the agent"
        self.say(f'{customer.name} reads {sender}\'s answer: "{_short(reply.get("text", ""))}"')
        self.stats.answered += 1
        customer.nudged = False
        if self._random.random() < self.config.quiet_chance:
            self._go_quiet(customer, "says nothing more")
        elif customer.answers:
            customer.outbox.append(customer.answers.pop(0))
            customer.due = self._now() + self._pause_of(8)
        elif customer.thanks:
            customer.outbox.append(customer.thanks)
            customer.done_after_outbox = True
            customer.due = self._now() + self._pause_of(8)
        else:
            self._go_quiet(customer, "is done")

    def _conversation_closed(self, customer: Customer) -> None:
        if self._random.random() < self.config.comeback_chance:
            self._come_back(customer)
        else:
            self.customers.remove(customer)

    # Writing -----------------------------------------------------------------------------------

    async def _write(self, customer: Customer, text: str) -> bool:
        """Send one message through the webhook; False if stopped before it was delivered.

        A message the server refuses for good (400, 422) is dropped, and True returned.
        """
        path, body, headers = self._webhook(customer, text)
        try:
            answer = await self._post_webhook(customer.channel, path, body, headers)
        except _Refused as exc:
            self._last_sent = self._now()
            self.say(f"{customer.channel.label}: a message was refused: {exc}")
            return True
        if answer is None:
            return False
        self._last_sent = self._now()
        self.stats.sent += 1
        self.stats.conversations.add(customer.key)
        customer.written += 1
        if customer.channel.provider == "api":
            with contextlib.suppress(ValueError, KeyError, TypeError):
                customer.conversation_id = int(orjson.loads(answer)["conversation_id"])
        if customer.returning:
            customer.returning = False
            self.stats.comebacks += 1
            where = f" #{customer.conversation_id}" if customer.conversation_id else ""
            self.say(f"{customer.name} comes back to the closed conversation{where}")
        self.say(f'{customer.name} ({customer.channel.label}) writes: "{_short(text)}"')
        return True

    def _webhook(self, customer: Customer, text: str) -> tuple[str, bytes, dict[str, str]]:
        """The provider's request for one message: path, raw body, headers (signed)."""
        channel = customer.channel
        path = f"/webhooks/{WEBHOOK_PATHS[channel.provider]}/{channel.integration_id}"
        if channel.provider == "api":
            body = orjson.dumps(
                {
                    "message_id": f"sim-{uuid.uuid4().hex}",
                    "contact": {"id": customer.handle, "name": customer.name},
                    "text": text,
                }
            )
            headers = {
                "Content-Type": "application/json",
                "X-Signature-256": sign_sha256(channel.secret, body),
            }
            return path, body, headers
        if channel.provider == "twilio_whatsapp":
            sid = "SM" + secrets.token_hex(16)
            params = [
                ("MessageSid", sid),
                ("SmsMessageSid", sid),
                ("AccountSid", channel.account_sid or ""),
                ("From", f"whatsapp:{customer.handle}"),
                ("To", f"whatsapp:{channel.from_number or ''}"),
                ("Body", text),
                ("ProfileName", customer.name),
                ("WaId", customer.handle.lstrip("+")),
                ("NumMedia", "0"),
                ("NumSegments", "1"),
                ("MessageType", "text"),
                ("SmsStatus", "received"),
                ("ApiVersion", "2010-04-01"),
            ]
            signature = twilio_signature(channel.secret, self._public + path, params)
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
            }
            return path, urlencode(params).encode(), headers
        now = int(time.time() * 1000)
        page_id = channel.page_id
        event = {
            "sender": {"id": customer.handle},
            "recipient": {"id": page_id or ""},
            "timestamp": now,
            "message": {"mid": "m_sim" + secrets.token_hex(12), "text": text},
        }
        entry: dict[str, Any] = {"time": now, "messaging": [event]}
        if page_id:
            entry["id"] = page_id
        body = orjson.dumps({"object": "page", "entry": [entry]})
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign_sha256(channel.secret, body),
        }
        return path, body, headers

    async def _post_webhook(
        self, channel: Channel, path: str, body: bytes, headers: dict[str, str]
    ) -> bytes | None:
        """POST, retrying what may pass later with the same body (the server deduplicates)."""
        assert self._http is not None
        delay = 1.0
        reported = False
        while not self._stop.is_set():
            try:
                response = await self._http.post(path, content=body, headers=headers)
            except httpx.HTTPError as exc:
                problem = f"cannot reach the server ({exc.__class__.__name__})"
            else:
                status = response.status_code
                if status == 200:
                    if reported:
                        self.say("the server answers again")
                    return response.content
                if status == 403:
                    raise Fatal(
                        f"{channel.label}: the server refused the signature (wrong secret?)"
                    )
                if status == 404:
                    raise Fatal(f"{channel.label}: no integration {channel.integration_id} there")
                if status == 429:
                    delay = max(delay, _retry_after(response))
                    problem = "the server asks to slow down (429)"
                elif status >= 500:
                    problem = f"the server answered {status}"
                else:
                    raise _Refused(f"{status} {_short(response.text, 200)}")
            if not reported:
                self.say(f"{problem}; trying again in {delay:.0f} s")
                reported = True
            await self._sleep(delay)
            delay = min(delay * 2, 30.0)
        return None

    # Reading the inbox (with a token) ------------------------------------------------------------

    async def _poll(self) -> None:
        """See the agents' answers, and which conversations were closed."""
        tracked = {c.key: c for c in self.customers if c.written or c.conversation_id}
        if not tracked:
            return
        found: dict[tuple[int, str], dict[str, Any]] = {}
        cursor: str | None = None
        for _ in range(MAX_POLL_PAGES):
            params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
            page = await self._get("/api/v1/conversations", params)
            if page is None:
                return
            for item in page.get("items", []):
                key = (int(item["integration_id"]), str(item["contact"]["handle"]))
                if key in tracked:
                    found[key] = item
            cursor = page.get("next_cursor")
            if not cursor or len(found) == len(tracked):
                break
        for key, item in found.items():
            customer = tracked[key]
            if customer in self.customers:
                await self._update(customer, item)

    async def _update(self, customer: Customer, item: dict[str, Any]) -> None:
        customer.conversation_id = int(item["id"])
        last_id = int((item.get("last_message") or {}).get("id") or 0)
        if last_id != customer.last_seen_message_id:
            customer.last_seen_message_id = last_id
            await self._read_replies(customer)
        closed = item.get("status") == "closed"
        if closed and not customer.closed:
            customer.closed = True
            if customer in self.customers:
                self._conversation_closed(customer)
        elif not closed:
            customer.closed = False

    async def _read_replies(self, customer: Customer) -> None:
        path = f"/api/v1/conversations/{customer.conversation_id}/messages"
        page = await self._get(path, {"limit": "20"})
        if page is None:
            return
        messages = page.get("items", [])
        newest_inbound = max((m["id"] for m in messages if m["direction"] == "inbound"), default=0)
        after = max(newest_inbound, customer.handled_reply_id)
        replies = [m for m in messages if m["direction"] == "outbound" and m["id"] > after]
        if replies:
            newest = max(replies, key=lambda m: int(m["id"]))
            customer.handled_reply_id = int(newest["id"])
            self._agent_replied(customer, newest)

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any] | None:
        """A REST read with the token; None (try again later) for a passing problem."""
        assert self._http is not None and self._token is not None
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            response = await self._http.get(path, params=params, headers=headers)
        except httpx.HTTPError:
            return None
        if response.status_code == 401:
            raise Fatal("the server refused the token (401)")
        if response.status_code == 429:
            await self._sleep(_retry_after(response))
            return None
        if response.status_code != 200:
            return None
        document = response.json()
        return document if isinstance(document, dict) else None

    # Start-up ----------------------------------------------------------------------------------

    async def _wait_ready(self) -> None:
        assert self._http is not None
        deadline = self._now() + self.config.ready_timeout
        while not self._stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                if (await self._http.get("/readyz")).status_code == 200:
                    return
            if self._now() > deadline:
                raise Fatal(f"{self._base} did not answer /readyz within the timeout")
            await self._sleep(0.5)

    async def _log_in(self, email: str, password: str) -> str:
        assert self._http is not None
        response = await self._http.post(
            "/api/v1/login", json={"email": email, "password": password}
        )
        if response.status_code != 200:
            raise Fatal(f"logging in as {email} failed ({response.status_code})")
        token = response.json()["token"]
        assert isinstance(token, str)
        return token

    async def _complete(self, channel: Channel) -> Channel:
        """Name and public settings of the channel, read over REST where a token allows."""
        if self._token:
            page = await self._integration(channel.integration_id)
            if page.get("provider") != channel.provider:
                raise Fatal(
                    f"integration {channel.integration_id} is {page.get('provider')!r}, "
                    f"not {channel.provider!r}"
                )
            config = page.get("config") or {}
            channel = replace(
                channel,
                name=channel.name or str(page.get("name") or ""),
                account_sid=channel.account_sid or config.get("account_sid"),
                from_number=channel.from_number or config.get("from_number"),
                page_id=channel.page_id or config.get("page_id"),
            )
        if channel.provider == "twilio_whatsapp" and not channel.account_sid:
            raise Fatal(
                "a twilio_whatsapp channel needs its account SID (--account-sid or a token)"
            )
        return channel

    async def _integration(self, integration_id: int) -> dict[str, Any]:
        assert self._http is not None and self._token is not None
        response = await self._http.get(
            f"/api/v1/integrations/{integration_id}",
            headers={"Authorization": f"Bearer {self._token}"},
        )
        if response.status_code == 401:
            raise Fatal("the server refused the token (401)")
        if response.status_code != 200:
            raise Fatal(f"integration {integration_id} is not visible with this token")
        document: dict[str, Any] = response.json()
        return document


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After", "5")), 1.0), 300.0)
    except ValueError:
        return 5.0


# Command line ----------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="the server (default: http://127.0.0.1:8000)")
    parser.add_argument("--integration", type=int, help="the integration's id")
    parser.add_argument(
        "--secret",
        default=os.environ.get("WEBHOOK_SECRET"),
        help="what signs its webhooks: webhook_secret, auth_token or app_secret "
        "(default: $WEBHOOK_SECRET)",
    )
    parser.add_argument("--provider", choices=PROVIDERS, default="api")
    parser.add_argument(
        "--channel",
        action="append",
        default=[],
        metavar="PROVIDER:ID:SECRET",
        help="a channel to write to (repeatable), instead of --integration/--secret/--provider",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="the channels and admin login of this installation's demo workspace",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("SWITCHBOARD_TOKEN"),
        help="a user's token, to see the agents' answers (default: $SWITCHBOARD_TOKEN)",
    )
    parser.add_argument("--email", help="log in as this user instead of --token")
    parser.add_argument(
        "--password",
        default=os.environ.get("SWITCHBOARD_PASSWORD"),
        help="for --email (default: $SWITCHBOARD_PASSWORD)",
    )
    parser.add_argument("--public-url", help="the server's PUBLIC_URL (Twilio signs it)")
    parser.add_argument("--account-sid", help="twilio_whatsapp without a token")
    parser.add_argument("--from-number", help="twilio_whatsapp: the channel's number")
    parser.add_argument("--page-id", help="messenger: the page's id")
    add_pace_arguments(parser)
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--max-messages", type=int, help="stop after this many messages")
    parser.add_argument("--seed", type=int, help="random seed, for a repeatable run")


def add_pace_arguments(parser: argparse.ArgumentParser) -> None:
    """The pace options, shared with `python -m server demo`."""
    defaults = SimulatorConfig(url="", channels=())
    parser.add_argument(
        "--rate", type=float, default=defaults.rate, help="messages per minute, at most"
    )
    parser.add_argument(
        "--customers", type=int, default=defaults.customers, help="talking at once, at most"
    )
    parser.add_argument(
        "--new-every",
        type=float,
        default=defaults.new_every,
        help="seconds between new customers, on average",
    )
    parser.add_argument(
        "--speed", type=float, default=defaults.speed, help="divide every pause by this"
    )
    parser.add_argument(
        "--poll", type=float, default=defaults.poll, help="seconds between looks at the inbox"
    )


def pace(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "rate": args.rate,
        "customers": args.customers,
        "new_every": args.new_every,
        "speed": args.speed,
        "poll": args.poll,
    }


def parse_channel(value: str) -> Channel:
    provider, _, rest = value.partition(":")
    integration, _, secret = rest.partition(":")
    if provider not in PROVIDERS or not integration.isdigit() or not secret:
        raise ValueError(f"--channel {value!r}: expected PROVIDER:ID:SECRET")
    return Channel(provider, int(integration), secret)


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """The configuration the command line asks for; ValueError if it does not add up."""
    url = args.url
    channels = [parse_channel(c) for c in args.channel]
    email, password = args.email, args.password
    if args.integration is not None:
        if not args.secret:
            raise ValueError("--integration needs --secret (or $WEBHOOK_SECRET)")
        channels.append(
            Channel(
                args.provider,
                args.integration,
                args.secret,
                account_sid=args.account_sid,
                from_number=args.from_number,
                page_id=args.page_id,
            )
        )
    if args.demo:
        from server.config import Settings
        from server.demo.seed import find_demo

        settings = Settings.from_env()
        workspace = find_demo(settings)
        if workspace is None:
            raise ValueError("this installation has no demo workspace: run `make demo` first")
        channels += [
            Channel(c.provider, c.id, c.secret, c.name, page_id=c.public.get("page_id"))
            for c in workspace.channels
        ]
        url = url or settings.public_url
        if not (args.token or email):
            email, password = workspace.admin.email, workspace.password
    if not channels:
        raise ValueError("name a channel: --integration and --secret, --channel, or --demo")
    if email and not password:
        raise ValueError("--email needs --password (or $SWITCHBOARD_PASSWORD)")
    return SimulatorConfig(
        url=url or "http://127.0.0.1:8000",
        channels=tuple(channels),
        public_url=args.public_url,
        token=args.token,
        email=email,
        password=password,
        duration=args.duration,
        max_messages=args.max_messages,
        seed=args.seed,
        **pace(args),
    )


def main(args: argparse.Namespace) -> int:
    """`python -m server simulate`: runs until Ctrl-C (or its limits); returns the exit code."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # no line per request
    try:
        config = config_from_args(args)
        simulator = Simulator(config)
    except ValueError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    try:
        stats = asyncio.run(simulator.run())
    except KeyboardInterrupt:
        stats = simulator.stats
    simulator.say(f"done: {stats.summary()}")
    return 1 if stats.error else 0
