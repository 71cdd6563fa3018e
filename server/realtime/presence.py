"""Presence in Redis: who has a live connection on any node, with expiry so dead nodes drop out.

Each connection is a member of its user's sorted set, scored by when it expires; nodes refresh
their connections' scores well before that. A user is online while any member is unexpired. The
account's set of users (scored by their latest expiry) lets a sweeper on any node find users
whose connections all expired (their node died) and report them offline exactly once: the Lua
scripts make each transition atomic, so of several nodes racing only one sees it.
"""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis

TTL = 45.0  # a connection not refreshed for this long is dead (its node is gone)
REFRESH_INTERVAL = 15.0
SWEEP_INTERVAL = 5.0

# KEYS: user set, account set, accounts index. ARGV: connection, expiry, now, user id, account id.
# Returns 1 when the user was offline before this connection.
_CONNECT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local before = redis.call('ZCARD', KEYS[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[2], 'GT', ARGV[2], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[5])
if before == 0 then return 1 end
return 0
"""

# KEYS: user set, account set. ARGV: connection, now, user id. Returns 1 when the user went offline.
_DISCONNECT = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1])
  if redis.call('ZREM', KEYS[2], ARGV[3]) == 1 then return 1 end
end
return 0
"""

# KEYS: account set. ARGV: now, user-set key prefix. Returns the users who went offline.
_SWEEP = """
local gone = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 500)
for _, user in ipairs(due) do
  local key = ARGV[2] .. user
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
  local latest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if latest[2] == nil then
    redis.call('DEL', key)
    if redis.call('ZREM', KEYS[1], user) == 1 then table.insert(gone, user) end
  else
    redis.call('ZADD', KEYS[1], latest[2], user)
  end
end
return gone
"""


# One account's refresh in one command (a pipeline of two commands per socket cost the node ~1.5%
# of its CPU at 1,000 sockets). KEYS: account set, then each user's set. ARGV: expiry, then for
# each user: their id, their number of connections, the connections.
_REFRESH = """
local expiry = ARGV[1]
local at = 2
for i = 2, #KEYS do
  local user, count = ARGV[at], tonumber(ARGV[at + 1])
  for j = at + 2, at + 1 + count do
    redis.call('ZADD', KEYS[i], expiry, ARGV[j])
  end
  redis.call('ZADD', KEYS[1], 'GT', expiry, user)
  at = at + 2 + count
end
return 0
"""
# Users per refresh command: bounds how long Redis runs one script.
REFRESH_BATCH = 500


class PresenceStore:
    def __init__(self, redis: Redis, *, prefix: str, ttl: float = TTL) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:presence"
        self.ttl = ttl
        self._connect = redis.register_script(_CONNECT)
        self._disconnect = redis.register_script(_DISCONNECT)
        self._sweep = redis.register_script(_SWEEP)
        self._refresh = redis.register_script(_REFRESH)

    def key(self, account_id: int, name: str = "") -> str:
        """The account's presence keys: its user set, or `name` under it."""
        return f"{self.prefix}:{account_id}" + (f":{name}" if name else "")

    def _account_key(self, account_id: int) -> str:
        return self.key(account_id)

    def _user_prefix(self, account_id: int) -> str:
        return self.key(account_id, "user:")

    def _accounts_key(self) -> str:
        return f"{self.prefix}:accounts"

    async def connect(self, account_id: int, user_id: int, connection: str) -> bool:
        """Record a live connection; True if this made the user come online."""
        now = time.time()
        keys = [
            self._user_prefix(account_id) + str(user_id),
            self._account_key(account_id),
            self._accounts_key(),
        ]
        result = await self._connect(
            keys=keys, args=[connection, now + self.ttl, now, user_id, account_id]
        )
        return bool(result)

    async def disconnect(self, account_id: int, user_id: int, connection: str) -> bool:
        """Forget a connection; True if this made the user go offline."""
        keys = [self._user_prefix(account_id) + str(user_id), self._account_key(account_id)]
        result = await self._disconnect(keys=keys, args=[connection, time.time(), user_id])
        return bool(result)

    async def refresh(self, connections: list[tuple[int, int, str]]) -> None:
        """Push back the expiry of this node's live connections (account, user, connection)."""
        by_user: dict[tuple[int, int], list[str]] = {}
        for account_id, user_id, connection in connections:
            by_user.setdefault((account_id, user_id), []).append(connection)
        by_account: dict[int, list[tuple[int, list[str]]]] = {}
        for (account_id, user_id), members in by_user.items():
            by_account.setdefault(account_id, []).append((user_id, members))
        expiry = time.time() + self.ttl
        for account_id, users in by_account.items():
            for start in range(0, len(users), REFRESH_BATCH):
                batch = users[start : start + REFRESH_BATCH]
                keys = [self._account_key(account_id)]
                args: list[str | float | int] = [expiry]
                for user_id, members in batch:
                    keys.append(self._user_prefix(account_id) + str(user_id))
                    args += [user_id, len(members), *members]
                await self._refresh(keys=keys, args=args)

    async def sweep(self) -> dict[int, list[int]]:
        """Users whose every connection expired, per account; each reported by one sweeper only."""
        gone: dict[int, list[int]] = {}
        now = time.time()
        for raw in await self.redis.smembers(self._accounts_key()):
            account_id = int(raw)
            users: list[Any] = await self._sweep(
                keys=[self._account_key(account_id)], args=[now, self._user_prefix(account_id)]
            )
            if users:
                gone[account_id] = [int(u) for u in users]
            elif not await self.redis.exists(self._account_key(account_id)):
                await self.redis.srem(self._accounts_key(), str(account_id))
        return gone

    async def set_available(self, account_id: int, user_id: int, available: bool) -> None:
        """Mirror of the database's availability, for fast reads by the team view."""
        await self.redis.hset(
            self.key(account_id, "available"), str(user_id), "1" if available else "0"
        )

    async def online(self, account_id: int) -> set[int]:
        """The account's users with a live connection somewhere."""
        members = await self.redis.zrangebyscore(self._account_key(account_id), time.time(), "+inf")
        return {int(m) for m in members}  # type: ignore[arg-type]
