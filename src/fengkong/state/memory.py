"""In-process online state: sorted lists per (series, key), exact at window edges.

Rebuilt from stored events when the engine starts, so a restart loses nothing.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Iterable
from operator import itemgetter

_INF = float("inf")
_MEMBER = itemgetter(1)
_AMOUNT = itemgetter(2)
SWEEP_FLOOR = 10_000  # a series is swept for idle keys when it holds twice as many as after its last sweep


class MemoryState:
    def __init__(self) -> None:
        # series → key → entries (ts, member, amount), sorted; nested so that an add allocates no key tuple
        self._series: dict[str, dict[str, list[tuple[float, str, float]]]] = {}
        self._horizon: dict[str, float] = {}  # per series, as its adds last said
        self._clock = -_INF  # the newest time seen on any key: the stream's "now"
        self._sweep_at: dict[str, int] = {}  # per series, the key count that sets off its next sweep
        self._lock = threading.Lock()

    def add(self, series: str, key: str, ts: float, member: str, amount: float, horizon: float) -> None:
        with self._lock:
            self._add(series, key, ts, member, amount, horizon)

    def add_many(self, items: Iterable[tuple[str, str, float, str, float, float]]) -> None:
        """Several adds under one lock (an event's windows)."""
        with self._lock:
            for item in items:
                self._add(*item)

    def _add(self, series: str, key: str, ts: float, member: str, amount: float, horizon: float) -> None:
        entry = (ts, member, amount)
        keys = self._series.get(series)
        if keys is None:
            keys = self._series[series] = {}
        self._horizon[series] = horizon
        if ts > self._clock:
            self._clock = ts
        entries = keys.get(key)
        if entries is None:
            keys[key] = [entry]
            if len(keys) >= self._sweep_at.get(series, SWEEP_FLOOR):
                self._sweep(series, keys)
            return
        if entry > entries[-1]:  # events mostly arrive in time order: append
            entries.append(entry)
        else:
            i = bisect_right(entries, entry)
            if i and entries[i - 1] == entry:
                return  # already recorded (an event replayed)
            entries.insert(i, entry)
        # the newest entry is the last; nothing at or before newest - horizon can be in any window again
        edge = entries[-1][0] - horizon
        if entries[0][0] <= edge:
            del entries[: bisect_right(entries, (edge, "\uffff", _INF))]

    def _sweep(self, series: str, keys: dict[str, list[tuple[float, str, float]]]) -> None:
        """Forget a series' keys idle for longer than its horizon (a device seen once, months ago), so memory
        follows the traffic within the horizon, not every key ever seen. A series is swept when its key count
        doubles since the last sweep: the work per add stays constant, and at most half the keys held are idle."""
        edge = self._clock - self._horizon[series]
        for key in [key for key, entries in keys.items() if entries[-1][0] <= edge]:
            del keys[key]
        self._sweep_at[series] = max(SWEEP_FLOOR, 2 * len(keys))

    def _slice(self, series: str, key: str, since: float, until: float) -> list[tuple[float, str, float]]:
        entries = self._series.get(series, {}).get(key)
        if not entries:
            return []
        lo = bisect_right(entries, (since, "\uffff", _INF))
        hi = bisect_right(entries, (until, "\uffff", _INF))
        return entries[lo:hi]

    def count(self, series: str, key: str, since: float, until: float) -> int:
        with self._lock:
            return len(self._slice(series, key, since, until))

    def total(self, series: str, key: str, since: float, until: float) -> float:
        with self._lock:
            total: float = sum(map(_AMOUNT, self._slice(series, key, since, until)))
            return total

    def distinct(self, series: str, key: str, since: float, until: float) -> int:
        with self._lock:
            return len(set(map(_MEMBER, self._slice(series, key, since, until))))

    def first(self, series: str, key: str, since: float, until: float) -> float | None:
        with self._lock:
            entries = self._slice(series, key, since, until)
            if not entries:
                return None
            ts = entries[0][0]
            return min(a for t, _, a in entries if t == ts)

    def last(self, series: str, key: str, since: float, until: float) -> float | None:
        with self._lock:
            entries = self._slice(series, key, since, until)
            if not entries:
                return None
            ts = entries[-1][0]
            return max(a for t, _, a in entries if t == ts)

    def clear(self) -> None:
        with self._lock:
            self._series.clear()
            self._horizon.clear()
            self._clock = -_INF
            self._sweep_at.clear()

    def size(self) -> int:
        """Entries held, for memory tests and metrics."""
        with self._lock:
            return sum(len(entries) for keys in self._series.values() for entries in keys.values())
