"""The line strategy of a policy: behaviour score, segments and guardrails, as one columnar function.

``review_frame`` takes a table of lines (one row each: status, limit, outstanding, the guardrail history and
the behaviour features of ``features/registry.py``) and returns what to do with each, with reasons. It is a
pure function of its rows, so it runs the same on one machine (polars) and partition by partition on Spark
(``fengkong.lines.distributed``). ``review_row`` is the same meaning one row at a time; a property test holds
the two equal.

How a row is decided:

1. closed lines, and frozen lines whose review date has not come, are skipped;
2. the behaviour scorecard gives ``behaviour_score`` and its reasons (characteristics that lost most points);
3. the first segment whose condition is definitely true proposes an action (none matches: ``keep``);
4. a frozen line that is due for review is frozen again (a freeze or close segment matched) or unfrozen;
5. guardrails can turn an increase or a decrease into ``keep`` and say which one did (``blocked_by``):
   the cooling-off after an increase, the number of decreases in the window, the limit never below the
   outstanding balance, the limit ceiling. Freezing and closing are safety actions and are never blocked.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import polars as pl

from fengkong.errors import FengkongError
from fengkong.features.registry import FeatureRegistry, FeatureType
from fengkong.models.scorecard import Scorecard, resolve_scorecard
from fengkong.policy import expressions as ex
from fengkong.policy.compiler import CompiledPolicy, compile_columnar, compile_row, normalize_frame, normalize_row
from fengkong.policy.schema import GuardrailSpec, SegmentSpec

#: Columns a review table must have besides the behaviour features the strategy reads.
LINE_COLUMNS: dict[str, type[pl.DataType]] = {
    "line_id": pl.String,
    "customer_id": pl.String,
    "status": pl.String,  # active | frozen | closed
    "limit": pl.Float64,
    "outstanding": pl.Float64,
    "review_due_on": pl.Date,  # frozen lines: the date by which they are reviewed again
    "last_increase_on": pl.Date,  # the last limit increase, or null
    "decreases_in_window": pl.Int64,  # limit decreases within the guardrail window before the review date
    "ever_restricted": pl.Boolean,  # ever decreased, frozen or closed before
}

#: Behaviour features derived here from the line columns, so a table need not carry them.
DERIVED = ("line_limit", "line_outstanding", "line_utilisation")

ACTIONS = ("increase", "keep", "decrease", "freeze", "unfreeze", "close", "skip")
ADVERSE = ("decrease", "freeze", "close")
MAX_SCORE_REASONS = 2

OUTPUT_SCHEMA: dict[str, pl.DataType] = {
    "line_id": pl.String(),
    "customer_id": pl.String(),
    "status": pl.String(),
    "limit": pl.Float64(),
    "outstanding": pl.Float64(),
    "behaviour_score": pl.Float64(),
    "segment": pl.String(),
    "proposed": pl.String(),
    "action": pl.String(),
    "blocked_by": pl.String(),
    "new_limit": pl.Float64(),
    "new_status": pl.String(),
    "review_due_on": pl.Date(),
    "effective_on": pl.Date(),
    "first_time": pl.Boolean(),
    "reasons": pl.List(pl.String()),
}


@dataclass(frozen=True)
class _Segment:
    spec: SegmentSpec
    row: Any
    expr: pl.Expr


class LineStrategy:
    """A policy's ``lines:`` section compiled for row and columnar use."""

    def __init__(
        self,
        policy_version: str,
        segments: Sequence[SegmentSpec],
        guardrails: GuardrailSpec,
        scorecard: Scorecard | None,
        rounding: float,
        features: FeatureRegistry,
    ) -> None:
        self.policy_version = policy_version
        self.guardrails = guardrails
        self.scorecard = scorecard
        self.rounding = rounding
        self.features = features
        self._segments = []
        refs: set[str] = set(scorecard.features) if scorecard is not None else set()
        for segment in segments:
            tree = ex.parse(segment.when)
            ex.check(tree, features)
            refs |= ex.references(tree)
            self._segments.append(_Segment(segment, compile_row(tree), compile_columnar(tree)))
        self.inputs = sorted(refs - {"behaviour_score"})

    @property
    def segments(self) -> list[SegmentSpec]:
        return [s.spec for s in self._segments]

    # ------------------------------------------------------------------------------------------ row

    def review_row(self, line: Mapping[str, Any], as_of: dt.date) -> dict[str, Any]:
        """Decide one line; the meaning ``review_frame`` gives every row of a table."""
        g = self.guardrails
        row = normalize_row({**line, **_derived_row(line)}, self.features)
        status, limit, outstanding = line["status"], float(line["limit"]), float(line["outstanding"])
        out: dict[str, Any] = {
            "line_id": line["line_id"],
            "customer_id": line["customer_id"],
            "status": status,
            "limit": limit,
            "outstanding": outstanding,
            "behaviour_score": None,
            "segment": None,
            "proposed": None,
            "action": "skip",
            "blocked_by": None,
            "new_limit": limit,
            "new_status": status,
            "review_due_on": line.get("review_due_on"),
            "effective_on": None,
            "first_time": False,
            "reasons": [],
        }
        due = line.get("review_due_on")
        if status == "closed" or (status == "frozen" and due is not None and due > as_of):
            return out
        score_reasons: list[str] = []
        if self.scorecard is not None:
            score, lines = self.scorecard.score_row(row)
            row["behaviour_score"] = score
            out["behaviour_score"] = score
            score_reasons = self.scorecard.reasons_from(lines, MAX_SCORE_REASONS)
        segment = next((s.spec for s in self._segments if s.row(row) is True), None)
        proposed = segment.action if segment is not None else "keep"
        out["segment"] = segment.id if segment is not None else None
        out["proposed"] = proposed
        action: str = proposed
        blocked: str | None = None
        new_limit = limit
        if status == "frozen":
            action = proposed if proposed in ("freeze", "close") else "unfreeze"
        elif proposed == "increase":
            assert segment is not None and segment.change is not None
            last = line.get("last_increase_on")
            target = min(limit * (1 + segment.change), limit * (1 + g.max_increase_fraction), g.max_limit)
            new_limit = _round_down(target, self.rounding)
            if last is not None and (as_of - last).days < g.increase_cooling_off_days:
                action, blocked, new_limit = "keep", "increase_cooling_off", limit
            elif new_limit <= limit:
                action, blocked, new_limit = "keep", "max_limit", limit
        elif proposed == "decrease":
            assert segment is not None and segment.change is not None
            last = line.get("last_increase_on")
            new_limit = max(_round_down(limit * (1 - segment.change), self.rounding), outstanding)
            if last is not None and (as_of - last).days < g.increase_cooling_off_days:
                action, blocked, new_limit = "keep", "increase_cooling_off", limit
            elif int(line["decreases_in_window"] or 0) >= g.max_decreases:
                action, blocked, new_limit = "keep", "max_decreases", limit
            elif new_limit >= limit:
                action, blocked, new_limit = "keep", "outstanding_floor", limit
        out["action"], out["blocked_by"], out["new_limit"] = action, blocked, new_limit
        out["new_status"] = {"freeze": "frozen", "close": "closed", "unfreeze": "active"}.get(action, status)
        if action == "freeze":
            out["review_due_on"] = as_of + dt.timedelta(days=g.freeze_review_days)
        elif action in ("unfreeze", "close"):
            out["review_due_on"] = None
        if action == "decrease":
            out["effective_on"] = as_of + dt.timedelta(days=g.decrease_notice_days)
        out["first_time"] = action in ADVERSE and not bool(line.get("ever_restricted"))
        if action == "unfreeze":
            out["reasons"] = ["LINE_REVIEW_CLEARED"]
        elif action not in ("keep", "skip") and segment is not None:
            reasons = [segment.reason]
            if action in ADVERSE:
                reasons += score_reasons
            out["reasons"] = list(dict.fromkeys(reasons))
        return out

    # ------------------------------------------------------------------------------------------ columnar

    def review_frame(self, lines: pl.DataFrame | pl.LazyFrame, as_of: dt.date) -> pl.DataFrame:
        """Decide every line of a table at once (see the module docstring for the meaning)."""
        return self.review_lazy(lines.lazy(), as_of).collect()

    def review_lazy(self, lines: pl.LazyFrame, as_of: dt.date) -> pl.LazyFrame:
        g = self.guardrails
        schema = lines.collect_schema()
        missing = [c for c in (*LINE_COLUMNS, *(n for n in self.inputs if n not in DERIVED)) if c not in schema]
        if missing:
            raise FengkongError(
                "missing_column", f"the line table lacks column(s): {', '.join(missing)}", missing[0], 422
            )
        frame = lines.with_columns(
            [pl.col(name).cast(dtype) for name, dtype in LINE_COLUMNS.items()]
            + [
                pl.col("limit").alias("line_limit"),
                pl.col("outstanding").alias("line_outstanding"),
                _utilisation(pl.col("outstanding"), pl.col("limit")).alias("line_utilisation"),
            ]
        )
        frame = normalize_frame(frame, self.features, self.inputs)
        as_of_lit = pl.lit(as_of, dtype=pl.Date)
        limit, outstanding, status = pl.col("limit"), pl.col("outstanding"), pl.col("status")
        due = pl.col("review_due_on")
        skipped = (status == "closed") | ((status == "frozen") & due.is_not_null() & (due > as_of_lit))

        reason_cols: list[pl.Expr] = []
        if self.scorecard is not None:
            points = self.scorecard.points_exprs()
            frame = frame.with_columns(
                (pl.lit(self.scorecard.spec.base_points) + pl.sum_horizontal(points)).alias("behaviour_score")
            )
            reason_cols = _score_reason_exprs(self.scorecard, points)
        else:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("behaviour_score"))

        seg_id: Any = pl.lit(None, dtype=pl.String)
        seg_action: Any = pl.lit("keep")
        seg_change: Any = pl.lit(None, dtype=pl.Float64)
        seg_reason: Any = pl.lit(None, dtype=pl.String)
        for s in reversed(self._segments):  # the first match wins: build the when-chain from the last
            hit = s.expr.fill_null(False)
            seg_id = pl.when(hit).then(pl.lit(s.spec.id)).otherwise(seg_id)
            seg_action = pl.when(hit).then(pl.lit(s.spec.action)).otherwise(seg_action)
            seg_change = pl.when(hit).then(pl.lit(s.spec.change, dtype=pl.Float64)).otherwise(seg_change)
            seg_reason = pl.when(hit).then(pl.lit(s.spec.reason)).otherwise(seg_reason)
        frame = frame.with_columns(
            seg_id.alias("segment"),
            seg_action.alias("proposed"),
            seg_change.alias("_change"),
            seg_reason.alias("_seg_reason"),
            *(r.alias(f"_score_reason_{i}") for i, r in enumerate(reason_cols)),
        )
        proposed, change = pl.col("proposed"), pl.col("_change")
        since_increase = (as_of_lit - pl.col("last_increase_on")).dt.total_days()
        cooling = pl.col("last_increase_on").is_not_null() & (since_increase < g.increase_cooling_off_days)
        r = self.rounding
        up_target = pl.min_horizontal(limit * (1 + change), limit * (1 + g.max_increase_fraction), pl.lit(g.max_limit))
        up_limit = (up_target / r).round(9).floor() * r
        down_limit = pl.max_horizontal((limit * (1 - change) / r).round(9).floor() * r, outstanding)
        frozen = status == "frozen"
        blocked = (
            pl.when(skipped | frozen)
            .then(pl.lit(None, dtype=pl.String))
            .when(proposed.is_in(["increase", "decrease"]) & cooling)
            .then(pl.lit("increase_cooling_off"))
            .when((proposed == "increase") & (up_limit <= limit))
            .then(pl.lit("max_limit"))
            .when((proposed == "decrease") & (pl.col("decreases_in_window").fill_null(0) >= g.max_decreases))
            .then(pl.lit("max_decreases"))
            .when((proposed == "decrease") & (down_limit >= limit))
            .then(pl.lit("outstanding_floor"))
            .otherwise(pl.lit(None, dtype=pl.String))
        )
        frame = frame.with_columns(blocked.alias("blocked_by"))
        action = (
            pl.when(skipped)
            .then(pl.lit("skip"))
            .when(frozen)
            .then(pl.when(proposed.is_in(["freeze", "close"])).then(proposed).otherwise(pl.lit("unfreeze")))
            .when(pl.col("blocked_by").is_not_null())
            .then(pl.lit("keep"))
            .otherwise(proposed)
        )
        frame = frame.with_columns(action.alias("action"))
        act = pl.col("action")
        adverse_reasons = pl.concat_list(
            [pl.col("_seg_reason"), *(pl.col(f"_score_reason_{i}") for i in range(len(reason_cols)))]
        )
        reasons = (
            pl.when(act == "unfreeze")
            .then(pl.concat_list([pl.lit("LINE_REVIEW_CLEARED")]))
            .when(act.is_in(list(ADVERSE)))
            .then(adverse_reasons.list.drop_nulls().list.unique(maintain_order=True))
            .when(act == "increase")
            .then(pl.concat_list([pl.col("_seg_reason")]))
            .otherwise(pl.lit([], dtype=pl.List(pl.String)))
        )
        return frame.select(
            "line_id",
            "customer_id",
            "status",
            "limit",
            "outstanding",
            pl.when(skipped).then(None).otherwise(pl.col("behaviour_score")).alias("behaviour_score"),
            pl.when(skipped).then(None).otherwise(pl.col("segment")).alias("segment"),
            pl.when(skipped).then(None).otherwise(proposed).alias("proposed"),
            act,
            "blocked_by",
            pl.when(act == "increase")
            .then(up_limit)
            .when(act == "decrease")
            .then(down_limit)
            .otherwise(limit)
            .alias("new_limit"),
            pl.when(act == "freeze")
            .then(pl.lit("frozen"))
            .when(act == "close")
            .then(pl.lit("closed"))
            .when(act == "unfreeze")
            .then(pl.lit("active"))
            .otherwise(status)
            .alias("new_status"),
            pl.when(act == "freeze")
            .then(as_of_lit + pl.duration(days=g.freeze_review_days))
            .when(act.is_in(["unfreeze", "close"]))
            .then(pl.lit(None, dtype=pl.Date))
            .otherwise(due)
            .alias("review_due_on"),
            pl.when(act == "decrease")
            .then(as_of_lit + pl.duration(days=g.decrease_notice_days))
            .otherwise(pl.lit(None, dtype=pl.Date))
            .alias("effective_on"),
            (act.is_in(list(ADVERSE)) & ~pl.col("ever_restricted").fill_null(False)).alias("first_time"),
            reasons.alias("reasons"),
        )


def check_line_table(frame: pl.DataFrame, strategy: LineStrategy) -> pl.DataFrame:
    """A table of lines read from a file, checked column by column before a review reads it: a missing column
    or one whose values are not of the column's type is refused by name (not as a failure deep in a query)."""
    wanted: dict[str, Any] = dict(LINE_COLUMNS)
    kinds = {FeatureType.NUMBER: pl.Float64, FeatureType.STRING: pl.String, FeatureType.BOOL: pl.Boolean}
    for name in strategy.inputs:
        feature = strategy.features.get(name)
        if name not in DERIVED and feature is not None:
            wanted.setdefault(name, kinds[feature.type])
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise FengkongError("missing_column", f"the line table lacks column(s): {', '.join(missing)}", missing[0], 422)
    casts = []
    for name, dtype in wanted.items():
        try:
            casts.append(frame[name].cast(dtype, strict=True))
        except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError):
            raise FengkongError(
                "invalid_value", f"column {name}: not every value is a {_KIND_NAMES.get(dtype, str(dtype))}", name, 422
            ) from None
    return frame.with_columns(casts)


_KIND_NAMES: dict[Any, str] = {
    pl.String: "string",
    pl.Float64: "number",
    pl.Int64: "whole number",
    pl.Date: "date (YYYY-MM-DD)",
    pl.Boolean: "boolean",
}


def _round_down(amount: float, step: float) -> float:
    """Down to a multiple of ``step``; the quotient is first rounded to 9 places so that 11,000 × 0.7
    (7,699.999… in floating point) is 7,700, not 7,600. The columnar path does the same."""
    return math.floor(round(amount / step, 9)) * step


def _utilisation(outstanding: pl.Expr, limit: pl.Expr) -> pl.Expr:
    return pl.when(limit > 0).then(outstanding / limit).otherwise(0.0)


def _derived_row(line: Mapping[str, Any]) -> dict[str, Any]:
    limit, outstanding = float(line["limit"]), float(line["outstanding"])
    return {
        "line_limit": limit,
        "line_outstanding": outstanding,
        "line_utilisation": outstanding / limit if limit > 0 else 0.0,
    }


def _score_reason_exprs(card: Scorecard, points: list[pl.Expr]) -> list[pl.Expr]:
    """The reason codes of the characteristics that lost most points, ties broken by scorecard order.

    Matches ``Scorecard.reasons_from``: rank each characteristic by (lost points descending, position), keep the
    top ones with lost points above zero.
    """
    lost = [pl.lit(m) - p for m, p in zip(card.max_points(), points, strict=True)]
    codes = card.reasons()
    n = len(lost)
    out: list[pl.Expr] = []
    for rank in range(min(MAX_SCORE_REASONS, n)):
        # characteristic i holds rank k when exactly k others come before it
        chosen: Any = pl.lit(None, dtype=pl.String)
        for i in reversed(range(n)):
            before = pl.sum_horizontal(
                [
                    ((lost[j] > lost[i]) | ((lost[j] == lost[i]) & pl.lit(j < i))).cast(pl.Int32)
                    for j in range(n)
                    if j != i
                ]
            )
            chosen = pl.when((before == rank) & (lost[i] > 0)).then(pl.lit(codes[i])).otherwise(chosen)
        out.append(chosen)
    return out


_STRATEGIES: WeakKeyDictionary[CompiledPolicy, LineStrategy] = WeakKeyDictionary()


def line_strategy(policy: CompiledPolicy) -> LineStrategy:
    """The policy's line strategy, compiled once per policy object."""
    strategy = _STRATEGIES.get(policy)
    if strategy is None:
        spec = policy.spec.lines
        card = resolve_scorecard(spec.behaviour_scorecard) if spec.behaviour_scorecard else None
        strategy = LineStrategy(
            policy.version, spec.segments, spec.guardrails, card, policy.spec.limits.rounding, policy.features
        )
        _STRATEGIES[policy] = strategy
    return strategy
