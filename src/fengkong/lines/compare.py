"""Two policies' line strategies over the same portfolio, side by side (``fengkong policy simulate --lines``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from fengkong.errors import FengkongError
from fengkong.lines.review import ReviewReport, summarise
from fengkong.lines.strategy import line_strategy
from fengkong.policy.compiler import CompiledPolicy
from fengkong.policy.outcomes import outcome_values

OUTCOME_COLUMNS = ("bad", "bad_next_12m")


def outcomes_of(lines: pl.DataFrame) -> pl.DataFrame | None:
    """``(line_id, bad)`` from the table's outcome column (the first of ``OUTCOME_COLUMNS`` present), or None.

    The column must hold 0 (performed well), 1 (went bad) or nothing yet (null, or NaN from pandas): anything
    else (2, 0.5, "yes") would silently count a line as neither good nor bad, or as the wrong one, so it is
    refused, naming the column, before any figure is computed.
    """
    column = next((c for c in OUTCOME_COLUMNS if c in lines.columns), None)
    if column is None:
        return None
    values, problem = outcome_values(lines.get_column(column))
    if problem is not None:
        raise FengkongError(
            "invalid_value",
            f"column {column}: outcomes must be 0 (performed well), 1 (went bad) or empty; {problem}",
            column,
            422,
        )
    return pl.DataFrame({"line_id": lines.get_column("line_id"), "bad": values.cast(pl.Int8)})


def compare_line_strategies(
    candidate: CompiledPolicy, current: CompiledPolicy, lines: pl.DataFrame, as_of: dt.date
) -> dict[str, Any]:
    """Review ``lines`` under both policies; where a 0/1 outcome column is present, count the lines each strategy
    restricts that later performed well (over-restriction) beside the bad ones it caught. An outcome column
    holding anything but 0, 1 and empty is refused before either policy runs (``outcomes_of``)."""
    outcomes = outcomes_of(lines)
    reports: dict[str, ReviewReport] = {}
    results: dict[str, pl.DataFrame] = {}
    for role, policy in (("candidate", candidate), ("current", current)):
        results[role] = line_strategy(policy).review_frame(lines, as_of)
        reports[role] = summarise(results[role], policy.version, as_of, outcomes)
    both = (
        results["candidate"]
        .select("line_id", pl.col("action").alias("candidate"))
        .join(results["current"].select("line_id", pl.col("action").alias("current")), on="line_id")
    )
    changed = both.filter(pl.col("candidate") != pl.col("current"))
    moves = (
        changed.group_by("current", "candidate").len().sort("len", descending=True).head(20).to_dicts()
        if changed.height
        else []
    )
    return {
        "as_of": as_of.isoformat(),
        "candidate": reports["candidate"].as_dict(),
        "current": reports["current"].as_dict(),
        "lines_with_a_different_action": changed.height,
        "moves": [{"from": m["current"], "to": m["candidate"], "lines": m["len"]} for m in moves],
    }


def markdown(comparison: dict[str, Any]) -> str:
    cand, curr = comparison["candidate"], comparison["current"]
    rows = [
        "## Line review, side by side",
        "",
        f"| measure | current {curr['policy_version']} | candidate {cand['policy_version']} |",
        "| --- | ---: | ---: |",
    ]
    for action in ("increase", "keep", "decrease", "freeze", "unfreeze", "close"):
        rows.append(f"| {action} | {curr['actions'][action]:,} | {cand['actions'][action]:,} |")
    rows.append(
        f"| limit exposure after | {curr['exposure']['limit_after']:,.0f} | {cand['exposure']['limit_after']:,.0f} |"
    )
    rows.append(f"| first-time restrictions | {curr['first_time']['lines']:,} | {cand['first_time']['lines']:,} |")
    if "outcomes" in cand:
        for key, label in (
            ("restricted_good", "restricted, later performed well"),
            ("restricted_bad", "restricted, went bad"),
        ):
            rows.append(f"| {label} | {curr['outcomes'][key]:,} | {cand['outcomes'][key]:,} |")
    rows += ["", f"{comparison['lines_with_a_different_action']:,} lines would get a different action."]
    return "\n".join(rows) + "\n"
