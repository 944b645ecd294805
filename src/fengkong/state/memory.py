"""In-process online state: sorted lists per (series, key), exact at window edges.

Rebuilt from stored events when the engine starts, so a restart loses nothing.
"""

from __future__ import annotations

import threading
from bisect import bisect_right


class MemoryState:
    def __init__(self) -> None:
        self._series: dict[tuple[str, str], list[tuple[float, str, float]]] = {}
        self._newest: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def add(self, series: str, key: str, ts: float, member: str, amount: float, horizon: float) -> None:
        k = (series, key)
        with self._lock:
            entries = self._series.setdefault(k, [])
            entry = (ts, member, amount)
            i = bisect_right(entries, entry)
            if i and entries[i - 1] == entry:
                return  # already recorded (an event replayed)
            entries.insert(i, entry)
            newest = max(self._newest.get(k, ts), ts)
            self._newest[k] = newest
            cut = bisect_right(entries, (newest - horizon, "\uffff", float("inf")))
            if cut:
                del entries[:cut]  # nothing at or before newest - horizon can be in any window again

    def _slice(self, series: str, key: str, since: float, until: float) -> list[tuple[float, str, float]]:
        entries = self._series.get((series, key))
        if not entries:
            return []
        lo = bisect_right(entries, (since, "\uffff", float("inf")))
        hi = bisect_right(entries, (until, "\uffff", float("inf")))
        return entries[lo:hi]

    def count(self, series: str, key: str, since: float, until: float) -> int:
        with self._lock:
            return len(self._slice(series, key, since, until))

    def total(self, series: str, key: str, since: float, until: float) -> float:
        with self._lock:
            return sum(a for _, _, a in self._slice(series, key, since, until))

    def distinct(self, series: str, key: str, since: float, until: float) -> int:
        with self._lock:
            return len({m for _, m, _ in self._slice(series, key, since, until)})

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
            self._newest.clear()

    def size(self) -> int:
        """Entries held, for memory tests and metrics."""
        with self._lock:
            return sum(len(v) for v in self._series.values())
