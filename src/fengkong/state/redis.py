"""Online state in Redis, shared by several API replicas.

One sorted set per (series, key): the score is the event time, the member text encodes the whole entry
(``"{ts!r}\\x1f{amount!r}\\x1f{member}"``) so that the same entry added twice, by a retry or by two replicas
at once, is stored once, while one member seen at two times stays two entries (as in :class:`MemoryState`).

Every write is one Lua script, so it is atomic across replicas: ZADD, then drop what the horizon can no
longer see (scores at or before the newest score of that key minus the horizon; the newest entry is never
dropped, so the highest score *is* the newest event seen), then EXPIRE the key so a key nobody writes to any
more vanishes by itself. Counts are ZCOUNT with an exclusive lower bound; sums and distinct counts run on
the server (a Lua script) so a busy key never ships its members to the client.

Idle expiry is by wall-clock time: a key lives ``horizon + ttl_margin`` seconds after its last write (longer
when its events are dated in the future). That is exact for windows that end at the present, and for
replays of old events as long as they are queried within the horizon; pass ``ttl_margin=None`` to keep
idle keys until their next write trims them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self, cast
from urllib.parse import quote

import redis

__all__ = ["RedisState"]

_SEP = "\x1f"

# KEYS[1] the series key; ARGV: ts, member text, horizon, ttl base ('' for none), client wall time.
_ADD = """
local added = redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
if added == 0 then
  return 0
end
local newest = tonumber(ARGV[1])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] then
  local t = tonumber(top[2])
  if t > newest then newest = t end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.17g', newest - tonumber(ARGV[3])))
if ARGV[4] ~= '' then
  local ttl = tonumber(ARGV[4])
  local ahead = newest - tonumber(ARGV[5])
  if ahead > 0 then ttl = ttl + ahead end
  redis.call('EXPIRE', KEYS[1], math.ceil(ttl))
end
return 1
"""

# KEYS[1] the series key; ARGV: min, max (ZRANGEBYSCORE syntax). Neumaier-compensated sum of the amounts.
_TOTAL = """
local items = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[2])
local s, c = 0.0, 0.0
for i = 1, #items do
  local m = items[i]
  local a = string.find(m, '\\31', 1, true)
  local b = string.find(m, '\\31', a + 1, true)
  local x = tonumber(string.sub(m, a + 1, b - 1))
  local t = s + x
  if math.abs(s) >= math.abs(x) then c = c + ((s - t) + x) else c = c + ((x - t) + s) end
  s = t
end
return string.format('%.17g', s + c)
"""

# KEYS[1] the series key; ARGV: min, max. Number of distinct members.
_DISTINCT = """
local items = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[2])
local seen, n = {}, 0
for i = 1, #items do
  local m = items[i]
  local a = string.find(m, '\\31', 1, true)
  local b = string.find(m, '\\31', a + 1, true)
  local k = string.sub(m, b + 1)
  if not seen[k] then
    seen[k] = true
    n = n + 1
  end
end
return n
"""


# KEYS[1] the series key; ARGV: min, max, 'first' or 'last'. The amount of the earliest (latest) entry in
# range; among entries at that same time the smallest (largest) amount, as MemoryState does.
_EDGE = """
local items
if ARGV[3] == 'last' then
  items = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[1], 'WITHSCORES')
else
  items = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[2], 'WITHSCORES')
end
if #items == 0 then return false end
local top = tonumber(items[2])
local best = nil
for i = 1, #items, 2 do
  if tonumber(items[i + 1]) ~= top then break end
  local m = items[i]
  local a = string.find(m, '\\31', 1, true)
  local b = string.find(m, '\\31', a + 1, true)
  local x = tonumber(string.sub(m, a + 1, b - 1))
  if best == nil or (ARGV[3] == 'last' and x > best) or (ARGV[3] ~= 'last' and x < best) then best = x end
end
return string.format('%.17g', best)
"""


def _finite(name: str, value: float) -> float:
    value = float(value) + 0.0  # ints become floats, -0.0 becomes 0.0: one text per value
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    return value


def _bound(value: float) -> str:
    if math.isnan(value):
        raise ValueError("a window bound cannot be NaN")
    return repr(float(value))  # repr round-trips exactly; Redis reads 'inf' and '-inf'


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "\\*?[]" else ch for ch in text)


class RedisState:
    """The :class:`fengkong.state.OnlineState` protocol on Redis (redis-py; tested on redis-server 7, needs 5 or newer).

    ``url_or_client`` is a URL (``redis://host:6379/0``; the state then owns and closes its client) or a
    ``redis.Redis`` the caller keeps owning. Keys are ``{prefix}{series}:{key}`` with both parts
    percent-escaped, so no (series, key) pair can collide with another; ``clear`` only touches keys
    under ``prefix``.
    """

    def __init__(
        self,
        url_or_client: str | redis.Redis,
        prefix: str = "fk:",
        *,
        ttl_margin: float | None = 3600.0,
    ) -> None:
        if isinstance(url_or_client, str):
            self.client: redis.Redis = redis.Redis.from_url(url_or_client)
            self._owns_client = True
        else:
            self.client = url_or_client
            self._owns_client = False
        if ttl_margin is not None and not (math.isfinite(ttl_margin) and ttl_margin >= 0):
            raise ValueError(f"ttl_margin must be a non-negative number of seconds or None, not {ttl_margin!r}")
        self.prefix = prefix
        self.ttl_margin = ttl_margin
        self._add = self.client.register_script(_ADD)
        self._total = self.client.register_script(_TOTAL)
        self._distinct = self.client.register_script(_DISTINCT)
        self._edge_script = self.client.register_script(_EDGE)

    # -- keys -----------------------------------------------------------------

    def redis_key(self, series: str, key: str) -> str:
        """The Redis key holding (series, key)."""
        return f"{self.prefix}{quote(series, safe='')}:{quote(key, safe='')}"

    def _add_args(
        self, series: str, key: str, ts: float, member: str, amount: float, horizon: float, now: float
    ) -> tuple[list[str], list[str]]:
        ts = _finite("ts", ts)
        amount = _finite("amount", amount)
        horizon = _finite("horizon", horizon)
        if horizon <= 0:
            raise ValueError(f"horizon must be positive, not {horizon!r}")
        ttl = "" if self.ttl_margin is None else repr(math.ceil(horizon + self.ttl_margin))
        text = f"{ts!r}{_SEP}{amount!r}{_SEP}{member}"
        return [self.redis_key(series, key)], [repr(ts), text, repr(horizon), ttl, repr(now)]

    # -- writes ---------------------------------------------------------------

    def add(self, series: str, key: str, ts: float, member: str, amount: float, horizon: float) -> None:
        keys, args = self._add_args(series, key, ts, member, amount, horizon, time.time())
        self._add(keys=keys, args=args)

    def add_many(self, items: Iterable[tuple[str, str, float, str, float, float]], chunk: int = 1000) -> None:
        """``add`` for many (series, key, ts, member, amount, horizon) at once, pipelined in chunks.

        Each add stays atomic; the batch as a whole is not a transaction.
        """
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        pending = 0
        for series, key, ts, member, amount, horizon in items:
            keys, args = self._add_args(series, key, ts, member, amount, horizon, now)
            self._add(keys=keys, args=args, client=pipe)
            pending += 1
            if pending >= chunk:
                pipe.execute()
                pending = 0
        if pending:
            pipe.execute()

    def clear(self) -> None:
        """Delete every key under this state's prefix (and nothing else in the database)."""
        batch: list[Any] = []
        for name in self.client.scan_iter(match=_glob_escape(self.prefix) + "*", count=1000):
            batch.append(name)
            if len(batch) >= 1000:
                self.client.unlink(*batch)
                batch.clear()
        if batch:
            self.client.unlink(*batch)

    # -- reads ----------------------------------------------------------------

    def count(self, series: str, key: str, since: float, until: float) -> int:
        # redis-py types replies as "Awaitable or not" for its sync and async clients alike; this one is sync.
        n = cast(int, self.client.zcount(self.redis_key(series, key), "(" + _bound(since), _bound(until)))
        return int(n)

    def total(self, series: str, key: str, since: float, until: float) -> float:
        text = self._total(keys=[self.redis_key(series, key)], args=["(" + _bound(since), _bound(until)])
        return float(text)

    def distinct(self, series: str, key: str, since: float, until: float) -> int:
        n = self._distinct(keys=[self.redis_key(series, key)], args=["(" + _bound(since), _bound(until)])
        return int(n)

    def first(self, series: str, key: str, since: float, until: float) -> float | None:
        return self._edge(series, key, since, until, "first")

    def last(self, series: str, key: str, since: float, until: float) -> float | None:
        return self._edge(series, key, since, until, "last")

    def _edge(self, series: str, key: str, since: float, until: float, which: str) -> float | None:
        text = self._edge_script(keys=[self.redis_key(series, key)], args=["(" + _bound(since), _bound(until), which])
        return None if text is None else float(text)

    def size(self) -> int:
        """Entries held under this prefix, for memory tests and metrics (scans the keyspace: not for hot paths)."""
        names = list(self.client.scan_iter(match=_glob_escape(self.prefix) + "*", count=1000))
        if not names:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.zcard(name)
        return sum(int(n) for n in pipe.execute())

    # -- lifecycle ------------------------------------------------------------

    def close(self) -> None:
        """Close the client if this state created it from a URL."""
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
