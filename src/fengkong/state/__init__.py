"""Online state behind one interface: in-process (default) or Redis (shared by several API replicas).

A backend stores, per (series, key), timestamped members with an amount, and answers counts, sums and
distinct counts over a half-open interval (since, until]. ``add`` also drops what its horizon can no
longer see, so memory stays bounded as time passes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class OnlineState(Protocol):
    def add(self, series: str, key: str, ts: float, member: str, amount: float, horizon: float) -> None:
        """Record ``member`` at ``ts``; the same (series, key, member, ts) twice is recorded once."""

    def add_many(self, items: Iterable[tuple[str, str, float, str, float, float]]) -> None:
        """``add`` for each (series, key, ts, member, amount, horizon), in order."""

    def count(self, series: str, key: str, since: float, until: float) -> int:
        """Members with since < ts ≤ until."""

    def total(self, series: str, key: str, since: float, until: float) -> float:
        """Sum of amounts with since < ts ≤ until."""

    def distinct(self, series: str, key: str, since: float, until: float) -> int:
        """Distinct members with since < ts ≤ until."""

    def first(self, series: str, key: str, since: float, until: float) -> float | None:
        """Amount of the earliest entry with since < ts ≤ until (ties: the smallest); None if there is none."""

    def last(self, series: str, key: str, since: float, until: float) -> float | None:
        """Amount of the latest entry with since < ts ≤ until (ties: the largest); None if there is none."""

    def clear(self) -> None:
        """Forget everything (used before a rebuild from stored events)."""
