"""Presence in a real (private) Redis: a node's periodic refresh keeps its sockets' users online.

The refresh sends one command per account (a script) instead of two per socket; these tests
hold it to what the pipeline did: every connection's expiry and every user's latest expiry in
the account set pushed back, an expiry never pulled earlier, and accounts and batches kept apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from server.realtime import presence
from server.realtime.presence import PresenceStore
from tests.nodes import RedisServer
from tests.support import free_port

PREFIX = "sb-presence-test"


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(free_port())
    yield server
    server.cleanup()


def run(redis_server: RedisServer, scenario: object) -> None:
    async def main() -> None:
        client = Redis.from_url(redis_server.url)
        try:
            await client.flushdb()
            await scenario(client)  # type: ignore[operator]
        finally:
            await client.aclose()

    asyncio.run(main())


async def _score(client: Redis, key: str, member: str | int) -> float:
    score = await client.zscore(key, str(member))
    assert score is not None, f"{member} missing from {key}"
    return float(score)


def test_refresh_keeps_every_connection_and_user_online(redis_server: RedisServer) -> None:
    async def scenario(client: Redis) -> None:
        # Connected with an expiry already past: without a refresh, nobody is online.
        expired = PresenceStore(client, prefix=PREFIX, ttl=-60)
        live = [(1, 10, "c1-n"), (1, 10, "c2-n"), (1, 11, "c3-n"), (2, 20, "c4-n")]
        for account_id, user_id, connection in live:
            await expired.connect(account_id, user_id, connection)
        assert await expired.online(1) == set() and await expired.online(2) == set()

        store = PresenceStore(client, prefix=PREFIX)
        await store.refresh(live)
        assert await store.online(1) == {10, 11}
        assert await store.online(2) == {20}
        for account_id, user_id, connection in live:
            user_key = store.key(account_id, f"user:{user_id}")
            connection_expiry = await _score(client, user_key, connection)
            user_expiry = await _score(client, store.key(account_id), user_id)
            assert connection_expiry == pytest.approx(user_expiry)
            assert connection_expiry > 0
        # Each account's users stay in their own account's set.
        assert await client.zscore(store.key(2), "10") is None
        assert await client.zscore(store.key(1), "20") is None

    run(redis_server, scenario)


def test_refresh_never_pulls_a_users_expiry_earlier(redis_server: RedisServer) -> None:
    async def scenario(client: Redis) -> None:
        # Another node connected the user later, with a longer TTL: its expiry stands.
        later = PresenceStore(client, prefix=PREFIX, ttl=3600)
        await later.connect(1, 10, "other-node")
        far = await _score(client, later.key(1), 10)

        store = PresenceStore(client, prefix=PREFIX)
        await store.connect(1, 10, "this-node")
        await store.refresh([(1, 10, "this-node")])
        assert await _score(client, store.key(1), 10) == far
        user_key = store.key(1, "user:10")
        assert await _score(client, user_key, "this-node") < far
        assert await _score(client, user_key, "other-node") == far

    run(redis_server, scenario)


def test_refresh_in_batches_reaches_every_user(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(presence, "REFRESH_BATCH", 2)

    async def scenario(client: Redis) -> None:
        expired = PresenceStore(client, prefix=PREFIX, ttl=-60)
        live = [(7, user_id, f"c{user_id}-{n}") for user_id in range(1, 6) for n in range(3)]
        for account_id, user_id, connection in live:
            await expired.connect(account_id, user_id, connection)

        store = PresenceStore(client, prefix=PREFIX)
        await store.refresh(live)
        assert await store.online(7) == {1, 2, 3, 4, 5}
        for _, user_id, connection in live:
            assert await _score(client, store.key(7, f"user:{user_id}"), connection) > 0

    run(redis_server, scenario)


def test_refresh_of_nothing_sends_nothing(redis_server: RedisServer) -> None:
    async def scenario(client: Redis) -> None:
        await PresenceStore(client, prefix=PREFIX).refresh([])
        assert await client.dbsize() == 0

    run(redis_server, scenario)
