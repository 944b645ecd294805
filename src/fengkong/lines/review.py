"""The report of a portfolio line review: actions by type and reason, exposure before and after, first-time hits,
and — where outcomes are known (the simulated world's ground truth, or matured performance) — the lines a
strategy would restrict that later performed well: over-restriction is a defect too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from fengkong.lines.strategy import ACTIONS, ADVERSE


@dataclass
class Outcomes:
    """How restricted lines later performed, from a 0/1 ``bad`` column (1: went bad, 0: performed well)."""

    restricted: int
    restricted_good: int  # false positives: restricted, then performed well
    restricted_bad: int
    bad_total: int  # every line that went bad, restricted or not
    good_total: int

    @property
    def false_positive_share(self) -> float | None:
        return self.restricted_good / self.restricted if self.restricted else None

    @property
    def bad_caught_share(self) -> float | None:
        return self.restricted_bad / self.bad_total if self.bad_total else None

    @property
    def good_hurt_share(self) -> float | None:
        return self.restricted_good / self.good_total if self.good_total else None


@dataclass
class ReviewReport:
    policy_version: str
    as_of: dt.date
    lines: int
    actions: dict[str, int]
    reasons: dict[str, dict[str, int]]  # action → reason code → lines
    blocked: dict[str, int]  # guardrail → lines it held back
    limit_before: float
    limit_after: float
    available_before: float  # undrawn and drawable: limit − outstanding on active lines
    available_after: float
    first_time: int  # lines restricted for the first time
    first_time_lines: list[str] = field(default_factory=list)  # up to 20 of them
    outcomes: Outcomes | None = None
    scope: str = "all"  # all: every line; due: only the frozen lines whose review date has come

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "policy_version": self.policy_version,
            "as_of": self.as_of.isoformat(),
            "scope": self.scope,
            "lines": self.lines,
            "actions": self.actions,
            "reasons": self.reasons,
            "blocked": self.blocked,
            "exposure": {
                "limit_before": self.limit_before,
                "limit_after": self.limit_after,
                "change": self.limit_after - self.limit_before,
                "available_before": self.available_before,
                "available_after": self.available_after,
            },
            "first_time": {"lines": self.first_time, "sample": self.first_time_lines},
        }
        if self.outcomes is not None:
            o = self.outcomes
            out["outcomes"] = {
                "restricted": o.restricted,
                "restricted_good": o.restricted_good,
                "restricted_bad": o.restricted_bad,
                "bad_total": o.bad_total,
                "good_total": o.good_total,
                "false_positive_share": o.false_positive_share,
                "bad_caught_share": o.bad_caught_share,
                "good_hurt_share": o.good_hurt_share,
            }
        return out

    def markdown(self) -> str:
        what = "frozen lines due for review" if self.scope == "due" else "lines"
        lines = [
            f"# Line review under policy {self.policy_version} as of {self.as_of.isoformat()}",
            "",
            f"{self.lines:,} {what} reviewed. Limit exposure {self.limit_before:,.0f} → {self.limit_after:,.0f} "
            f"({self.limit_after - self.limit_before:+,.0f}); available to draw {self.available_before:,.0f} → "
            f"{self.available_after:,.0f} ({self.available_after - self.available_before:+,.0f}).",
            "",
            "| action | lines |",
            "| --- | ---: |",
            *(f"| {a} | {n:,} |" for a, n in self.actions.items() if n),
            "",
            "| action | reason | lines |",
            "| --- | --- | ---: |",
            *(f"| {a} | {r} | {n:,} |" for a, by in self.reasons.items() for r, n in by.items()),
        ]
        if self.blocked:
            lines += ["", "Held back by guardrails: " + ", ".join(f"{g} {n:,}" for g, n in self.blocked.items())]
        lines += ["", f"Lines restricted for the first time: {self.first_time:,}."]
        if self.outcomes is not None:
            o = self.outcomes
            lines += [
                "",
                f"Of {o.restricted:,} lines restricted, {o.restricted_good:,} later performed well "
                f"(false positives: {_pct(o.false_positive_share)}); the strategy caught {o.restricted_bad:,} of "
                f"{o.bad_total:,} lines that went bad ({_pct(o.bad_caught_share)}) and hurt "
                f"{_pct(o.good_hurt_share)} of the good ones.",
            ]
        return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _available(result: pl.DataFrame, status: str, limit: str) -> float:
    active = result.filter(pl.col(status) == "active")
    return float((active[limit] - active["outstanding"]).clip(lower_bound=0).sum())


def summarise(
    result: pl.DataFrame, policy_version: str, as_of: dt.date, outcomes: pl.DataFrame | None = None
) -> ReviewReport:
    """Summarise ``LineStrategy.review_frame`` output; ``outcomes`` (line_id, bad) adds over-restriction."""
    counts = dict(result.group_by("action").len().iter_rows())
    actions = {a: int(counts.get(a, 0)) for a in ACTIONS}
    by_reason: dict[str, dict[str, int]] = {}
    exploded = (
        result.filter(pl.col("reasons").list.len() > 0)
        .select("action", pl.col("reasons").alias("reason"))
        .explode("reason")
        .group_by("action", "reason")
        .len()
        .sort("action", "len", "reason", descending=[False, True, False])
    )
    for action, code, n in exploded.iter_rows():
        by_reason.setdefault(action, {})[code] = int(n)
    blocked = dict(
        result.filter(pl.col("blocked_by").is_not_null()).group_by("blocked_by").len().sort("blocked_by").iter_rows()
    )
    live = result.filter(pl.col("status") != "closed")
    first = result.filter(pl.col("first_time"))
    report = ReviewReport(
        policy_version=policy_version,
        as_of=as_of,
        lines=result.height,
        actions=actions,
        reasons=by_reason,
        blocked={str(k): int(v) for k, v in blocked.items()},
        limit_before=float(live["limit"].sum()),
        limit_after=float(live.filter(pl.col("new_status") != "closed")["new_limit"].sum()),
        available_before=_available(result, "status", "limit"),
        available_after=_available(result, "new_status", "new_limit"),
        first_time=first.height,
        first_time_lines=first["line_id"].head(20).to_list(),
    )
    if outcomes is not None:
        joined = result.select("line_id", "action").join(outcomes.select("line_id", "bad"), on="line_id", how="inner")
        joined = joined.filter(pl.col("bad").is_not_null())
        restricted = pl.col("action").is_in(list(ADVERSE))
        report.outcomes = Outcomes(
            restricted=joined.filter(restricted).height,
            restricted_good=joined.filter(restricted & (pl.col("bad") == 0)).height,
            restricted_bad=joined.filter(restricted & (pl.col("bad") == 1)).height,
            bad_total=joined.filter(pl.col("bad") == 1).height,
            good_total=joined.filter(pl.col("bad") == 0).height,
        )
    return report
