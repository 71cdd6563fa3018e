"""An account feed's choice of sockets, as sockets come and go and sharing changes.

The feed works out once per integration which of its sockets may see that integration's
conversations, and must forget it whenever that could change. Here on sockets that are not live
yet, whose queued frames show what the feed pushed to them.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from starlette.websockets import WebSocket

from server.domain.events import personal_template
from server.metrics import Metrics
from server.realtime.connection import Connection
from server.realtime.feed import AccountFeed
from server.realtime.frames import PersonalFrames
from server.realtime.wire import WireEvent

ACCOUNT = 1
SHARED, PRIVATE = 10, 20
ALICE, BOB = 100, 200


def _feed() -> AccountFeed:
    runtime: Any = SimpleNamespace(metrics=Metrics())
    return AccountFeed(
        runtime,
        ACCOUNT,
        last_seq=0,
        audience={SHARED: frozenset({ALICE, BOB}), PRIVATE: frozenset({ALICE})},
    )


def _socket(feed: AccountFeed, user_id: int) -> Connection:
    connection = Connection(cast(WebSocket, None), user_id=user_id, account_id=ACCOUNT)
    feed.attach(connection, since=None)
    return connection


def _frames(connection: Connection) -> list[str]:
    return list(connection._outbox or ())


def _deliver(feed: AccountFeed, integration_id: int | None, name: str) -> None:
    feed.last_seq += 1
    feed._deliver(WireEvent(ACCOUNT, feed.last_seq, integration_id, None, name, "x"))


def test_each_event_reaches_exactly_the_sockets_that_may_see_it_as_things_change() -> None:
    feed = _feed()
    alice = _socket(feed, ALICE)
    bob = _socket(feed, BOB)
    _deliver(feed, SHARED, "shared-1")
    _deliver(feed, PRIVATE, "private-1")
    _deliver(feed, None, "everyone-1")
    assert _frames(alice) == ["shared-1", "private-1", "everyone-1"]
    assert _frames(bob) == ["shared-1", "everyone-1"]

    bob_again = _socket(feed, BOB)  # a second tab, after the feed worked out who sees what
    _deliver(feed, SHARED, "shared-2")
    assert _frames(bob_again) == ["shared-2"]

    feed.audience = {SHARED: frozenset({ALICE, BOB}), PRIVATE: frozenset({ALICE, BOB})}
    _deliver(feed, PRIVATE, "private-2")  # now shared with Bob too
    assert _frames(bob)[-1] == _frames(bob_again)[-1] == "private-2"

    feed.detach(alice)
    _deliver(feed, SHARED, "shared-3")
    assert "shared-3" not in _frames(alice)
    assert _frames(bob)[-1] == "shared-3"


def test_a_personal_event_reaches_each_recipients_sockets_with_their_own_id() -> None:
    feed = _feed()
    alice, alice_tab = _socket(feed, ALICE), _socket(feed, ALICE)
    bob = _socket(feed, BOB)
    template = personal_template("notification.created", "notification", {"kind": "k"})
    recipients = ((ALICE, 7), (999, 8))  # 999 has no socket here
    feed._deliver(WireEvent(ACCOUNT, None, None, None, template, "n", recipients=recipients))
    text = PersonalFrames(template).text(7)
    assert _frames(alice) == _frames(alice_tab) == [text]
    assert _frames(bob) == []
