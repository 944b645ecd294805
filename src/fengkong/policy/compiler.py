"""The policy compiler: one meaning, two evaluators.

``CompiledPolicy.decide_row`` decides one application from a mapping of features (microseconds);
``CompiledPolicy.decide_frame`` decides a whole polars table with the same semantics (simulation, review).
Both are built here, next to each other, from the same tree; a property test holds them to identical answers.

Decision semantics, in order:
1. hard rules fire when their condition is definitely true (missing counts as not true);
2. the score is compared with the cut-offs: below ``decline_below`` declines, below ``review_below`` reviews;
3. the outcome is the strictest of rules and score; an approve or review whose table limit is under
   ``min_limit`` becomes a decline (INSUFFICIENT_CREDIT_CAPACITY);
4. reasons: the fired rules whose action equals the outcome, in policy order, then the score reasons if the
   score alone would have given the same outcome; duplicates dropped, at most ``max_reasons``;
5. limit and APR come from the tables by score band (and income band) unless the outcome is decline.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from fengkong.domain import Outcome
from fengkong.features.registry import FeatureRegistry, FeatureType
from fengkong.models.base import ScoreModel
from fengkong.models.scorecard import CharacteristicScore
from fengkong.policy import expressions as ex
from fengkong.policy.schema import PolicySpec, TriggerSpec

RowFn = Callable[[Mapping[str, Any]], Any]

CAPACITY_REASON = "INSUFFICIENT_CREDIT_CAPACITY"

# ---------------------------------------------------------------------------------------------- row


def compile_row(node: ex.Node) -> RowFn:
    """Compile an expression tree into nested closures over a feature mapping (no eval)."""
    match node:
        case ex.Const(value=value):
            return lambda _r: value
        case ex.Ref(name=name):
            return lambda r: r.get(name)
        case ex.Neg(operand=operand):
            f = compile_row(operand)

            def neg(r: Mapping[str, Any]) -> Any:
                v = f(r)
                return None if v is None else -v

            return neg
        case ex.Arith(op=op, left=left, right=right):
            return _row_arith(op, compile_row(left), compile_row(right))
        case ex.Compare(op=op, left=left, right=right):
            return _row_compare(op, compile_row(left), compile_row(right))
        case ex.Logic(op="and", operands=operands):
            fs = [compile_row(o) for o in operands]

            def and_(r: Mapping[str, Any]) -> Any:
                result: bool | None = True
                for f in fs:
                    v = f(r)
                    if v is False:
                        return False
                    if v is None:
                        result = None
                return result

            return and_
        case ex.Logic(op="or", operands=operands):
            fs = [compile_row(o) for o in operands]

            def or_(r: Mapping[str, Any]) -> Any:
                result: bool | None = False
                for f in fs:
                    v = f(r)
                    if v is True:
                        return True
                    if v is None:
                        result = None
                return result

            return or_
        case ex.Not(operand=operand):
            f = compile_row(operand)

            def not_(r: Mapping[str, Any]) -> Any:
                v = f(r)
                return None if v is None else not v

            return not_
        case ex.InList(operand=operand, values=values, negated=negated):
            f = compile_row(operand)
            members = frozenset(values)

            def in_(r: Mapping[str, Any]) -> Any:
                v = f(r)
                return None if v is None else ((v in members) != negated)

            return in_
        case ex.IsMissing(operand=operand, negated=negated):
            f = compile_row(operand)
            return lambda r: (f(r) is None) != negated
        case ex.Call(func=func, args=args):
            fs = [compile_row(a) for a in args]
            return _row_call(func, fs)
    raise AssertionError(f"unhandled node {node!r}")  # pragma: no cover


def _clean(v: float) -> float | None:
    return None if v != v else v  # NaN (inf - inf, 0 * inf) is missing


def _row_arith(op: str, f: RowFn, g: RowFn) -> RowFn:
    def arith(r: Mapping[str, Any]) -> Any:
        a, b = f(r), g(r)
        if a is None or b is None:
            return None
        if op == "+":
            return _clean(a + b)
        if op == "-":
            return _clean(a - b)
        if op == "*":
            return _clean(a * b)
        return None if b == 0 else _clean(a / b)

    return arith


_ROW_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _row_compare(op: str, f: RowFn, g: RowFn) -> RowFn:
    cmp = _ROW_COMPARE[op]

    def compare(r: Mapping[str, Any]) -> Any:
        a, b = f(r), g(r)
        return None if a is None or b is None else cmp(a, b)

    return compare


def _row_call(func: str, fs: list[RowFn]) -> RowFn:
    if func == "coalesce":

        def coalesce(r: Mapping[str, Any]) -> Any:
            for f in fs:
                v = f(r)
                if v is not None:
                    return v
            return None

        return coalesce
    if func == "abs":
        f0 = fs[0]
        return lambda r: None if (v := f0(r)) is None else abs(v)
    pick = min if func == "min" else max

    def extreme(r: Mapping[str, Any]) -> Any:
        values = [f(r) for f in fs]
        return None if any(v is None for v in values) else pick(values)

    return extreme


# ---------------------------------------------------------------------------------------------- columnar


def compile_columnar(node: ex.Node) -> pl.Expr:
    """Compile an expression tree into a polars expression with the row evaluator's semantics."""
    match node:
        case ex.Const(value=value):
            if isinstance(value, bool):
                return pl.lit(value, dtype=pl.Boolean)
            if isinstance(value, float):
                return pl.lit(value, dtype=pl.Float64)
            return pl.lit(value, dtype=pl.String)
        case ex.Ref(name=name):
            return pl.col(name)
        case ex.Neg(operand=operand):
            return -compile_columnar(operand)
        case ex.Arith(op=op, left=left, right=right):
            a, b = compile_columnar(left), compile_columnar(right)
            if op == "+":
                out = a + b
            elif op == "-":
                out = a - b
            elif op == "*":
                out = a * b
            else:
                b = _full_length(b)  # always: polars also folds e.g. coalesce(13, x) to a scalar
                out = pl.when(b == 0).then(pl.lit(None, dtype=pl.Float64)).otherwise(a / b)
            return out.fill_nan(None)
        case ex.Compare(op=op, left=left, right=right):
            a, b = compile_columnar(left), compile_columnar(right)
            return {"==": a.eq, "!=": a.ne, "<": a.lt, "<=": a.le, ">": a.gt, ">=": a.ge}[op](b)
        case ex.Logic(op=op, operands=operands):
            exprs = [compile_columnar(o) for o in operands]
            out = exprs[0]
            for e in exprs[1:]:
                out = (out & e) if op == "and" else (out | e)  # polars & and | are Kleene, as in the row path
            return out
        case ex.Not(operand=operand):
            return ~compile_columnar(operand)
        case ex.InList(operand=operand, values=values, negated=negated):
            e = compile_columnar(operand)
            dtype = pl.Float64 if isinstance(values[0], float) and not isinstance(values[0], bool) else None
            member = e.is_in(pl.lit(pl.Series(list(values), dtype=dtype)).implode() if dtype else list(values))
            out = ~member if negated else member
            return pl.when(e.is_null()).then(pl.lit(None, dtype=pl.Boolean)).otherwise(out)
        case ex.IsMissing(operand=operand, negated=negated):
            e = compile_columnar(operand)
            return e.is_not_null() if negated else e.is_null()
        case ex.Call(func=func, args=args):
            exprs = [compile_columnar(a) for a in args]
            if func == "coalesce":
                return pl.coalesce(exprs)
            if func == "abs":
                return exprs[0].abs()
            any_null = exprs[0].is_null()
            for e in exprs[1:]:
                any_null = any_null | e.is_null()
            pick = pl.min_horizontal(exprs) if func == "min" else pl.max_horizontal(exprs)
            return pl.when(any_null).then(pl.lit(None, dtype=pl.Float64)).otherwise(pick)
    raise AssertionError(f"unhandled node {node!r}")  # pragma: no cover


def _full_length(divisor: pl.Expr) -> pl.Expr:
    """A divisor as a full column. polars divides a column by a scalar (a constant, or anything its optimizer
    folds to one) as a multiplication by the reciprocal, which is not IEEE division (``49 * (1/49)`` is
    0.9999999999999999) and would part from the row evaluator by an ulp; a full-length divisor keeps polars
    on exact element-wise division."""
    return divisor + pl.int_range(pl.len()).cast(pl.Float64) * 0.0


# ---------------------------------------------------------------------------------------------- policies


@dataclass(frozen=True, slots=True)
class RuleResult:
    id: str
    action: Outcome
    reason: str


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """What the policy decided for one application, with everything needed to explain it."""

    outcome: Outcome
    reasons: tuple[str, ...]
    limit: float | None
    apr: float | None
    score: float
    rule_hits: tuple[RuleResult, ...]
    score_outcome: Outcome
    score_lines: tuple[CharacteristicScore, ...]
    score_reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Rule:
    id: str
    action: Outcome
    reason: str
    row: RowFn
    column: pl.Expr


class CompiledPolicy:
    """A validated policy, ready to decide rows or tables. Build it with ``fengkong.policy.loader``."""

    def __init__(
        self,
        spec: PolicySpec,
        trees: Sequence[ex.Node],
        scorecard: ScoreModel,
        features: FeatureRegistry,
        source_text: str,
        content_hash: str,
        trigger_trees: Sequence[ex.Node] = (),
    ) -> None:
        self.spec = spec
        self.scorecard = scorecard
        self.features = features
        self.source_text = source_text
        self.content_hash = content_hash
        self._rules = tuple(
            _Rule(r.id, Outcome(r.action), r.reason, compile_row(t), compile_columnar(t))
            for r, t in zip(spec.rules, trees, strict=True)
        )
        self._triggers = tuple((t, compile_row(tree)) for t, tree in zip(spec.triggers, trigger_trees, strict=True))
        self._woken: dict[str, list[tuple[TriggerSpec, Callable[[Mapping[str, Any]], Any]]]] = {}
        for t, fn in self._triggers:
            for event_type in t.events:
                self._woken.setdefault(event_type, []).append((t, fn))
        # per event type: the features its triggers read, so an event computes only those
        self._trigger_inputs: dict[str, frozenset[str]] = {}
        for t, tree in zip(spec.triggers, trigger_trees, strict=True):
            for event_type in t.events:
                refs_t = frozenset(ex.references(tree))
                self._trigger_inputs[event_type] = self._trigger_inputs.get(event_type, frozenset()) | refs_t
        refs: set[str] = set(scorecard.features) | {"monthly_income"}
        for tree in trees:
            refs |= ex.references(tree)
        self.inputs = sorted(refs - {"score"})
        self._limit_flat = [v for row in spec.limits.table for v in row]

    def trigger_inputs(self, event_type: str) -> frozenset[str]:
        """The features the triggers woken by this event type read (empty: no trigger wakes)."""
        return self._trigger_inputs.get(event_type, frozenset())

    def wakes(self, event_type: str) -> bool:
        """Whether any trigger listens to this event type (asked for every ingested event)."""
        return event_type in self._woken

    def triggers_for(self, event_type: str) -> list[TriggerSpec]:
        return [t for t, _ in self._woken.get(event_type, ())]

    def fire_triggers(self, event_type: str, features: Mapping[str, Any]) -> list[TriggerSpec]:
        """The triggers woken by this event type whose condition is definitely true on these features."""
        woken = self._woken.get(event_type)
        if not woken:
            return []
        row = normalize_row(features, self.features)
        return [t for t, fn in woken if fn(row) is True]

    @property
    def version(self) -> str:
        return self.spec.version

    @property
    def name(self) -> str:
        return self.spec.policy

    @property
    def model_version(self) -> str:
        return self.scorecard.version_label

    # ------------------------------------------------------------------------------------------ row

    def decide_row(self, features: Mapping[str, Any]) -> PolicyResult:
        row = normalize_row(features, self.features)
        spec = self.spec
        score, lines = self.scorecard.score_row(row)
        row["score"] = score
        hits = tuple(RuleResult(r.id, r.action, r.reason) for r in self._rules if r.row(row) is True)
        rule_outcome = Outcome.strictest(*(h.action for h in hits))
        if score < spec.score.decline_below:
            score_outcome = Outcome.DECLINE
        elif score < spec.score.review_below:
            score_outcome = Outcome.REVIEW
        else:
            score_outcome = Outcome.APPROVE
        outcome = Outcome.strictest(rule_outcome, score_outcome)

        income = row.get("monthly_income")
        limit = self._limit_row(score, income)
        capacity_decline = outcome is not Outcome.DECLINE and limit < spec.limits.min_limit
        if capacity_decline:
            outcome = Outcome.DECLINE

        score_reasons = tuple(self.scorecard.reasons_from(lines, spec.score.max_reasons))
        codes: list[str] = []
        if outcome is not Outcome.APPROVE:
            codes.extend(h.reason for h in hits if h.action is outcome)
            if score_outcome is outcome:
                codes.extend(score_reasons)
            if capacity_decline:
                codes.append(CAPACITY_REASON)
        reasons = tuple(dict.fromkeys(codes))[: spec.max_reasons]

        declined = outcome is Outcome.DECLINE
        apr = spec.pricing.apr[bisect_right(spec.pricing.score_edges, score)]
        return PolicyResult(
            outcome=outcome,
            reasons=reasons,
            limit=None if declined else limit,
            apr=None if declined else apr,
            score=score,
            rule_hits=hits,
            score_outcome=score_outcome,
            score_lines=tuple(lines),
            score_reasons=score_reasons,
        )

    def _limit_row(self, score: float, income: float | None) -> float:
        limits = self.spec.limits
        i_band = 0 if income is None else bisect_right(limits.income_edges, income)
        value = limits.table[bisect_right(limits.score_edges, score)][i_band]
        if limits.income_multiple_cap is not None and income is not None:
            value = min(value, income * limits.income_multiple_cap)
        units = value / limits.rounding
        if math.isfinite(units):  # an infinite income cap (e.g. a -inf income) stays infinite, as in polars
            units = float(math.floor(units))
        return units * limits.rounding

    # ------------------------------------------------------------------------------------------ columnar

    def decide_frame(self, frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
        """Decide every row of a feature table. Returns outcome, reasons, limit, apr, score and rule_hits."""
        return self.decide_lazy(frame.lazy()).collect()

    def decide_lazy(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        spec = self.spec
        lf = normalize_frame(frame, self.features, self.inputs)
        lf, points = self.scorecard.points_columns(lf)  # a scorecard's bins, or a GBDT's TreeSHAP points
        score_expr: pl.Expr = pl.lit(self.scorecard.base_points, dtype=pl.Float64)
        for p in points:
            score_expr = score_expr + p
        lost_names = [f"__lost{i}" for i in range(len(points))]
        lf = lf.with_columns(
            [
                (pl.lit(m, dtype=pl.Float64) - p).alias(n)
                for p, m, n in zip(points, self.scorecard.max_points(), lost_names, strict=True)
            ]
            + [score_expr.alias("score")]
        )
        fired_names = [f"__fired{i}" for i in range(len(self._rules))]
        lf = lf.with_columns(
            [r.column.fill_null(False).alias(n) for r, n in zip(self._rules, fired_names, strict=True)]
        )

        def any_fired(action: Outcome) -> pl.Expr:
            cols = [pl.col(n) for r, n in zip(self._rules, fired_names, strict=True) if r.action is action]
            return pl.any_horizontal(cols) if cols else pl.lit(False)

        score = pl.col("score")
        score_outcome = (
            pl.when(score < spec.score.decline_below)
            .then(pl.lit(Outcome.DECLINE.value))
            .when(score < spec.score.review_below)
            .then(pl.lit(Outcome.REVIEW.value))
            .otherwise(pl.lit(Outcome.APPROVE.value))
        )
        pre_outcome = (
            pl.when(any_fired(Outcome.DECLINE) | (pl.col("__score_outcome") == Outcome.DECLINE.value))
            .then(pl.lit(Outcome.DECLINE.value))
            .when(any_fired(Outcome.REVIEW) | (pl.col("__score_outcome") == Outcome.REVIEW.value))
            .then(pl.lit(Outcome.REVIEW.value))
            .otherwise(pl.lit(Outcome.APPROVE.value))
        )
        lf = lf.with_columns(score_outcome.alias("__score_outcome"), self._limit_expr().alias("__limit"))
        lf = lf.with_columns(pre_outcome.alias("__pre"))
        capacity = (pl.col("__pre") != Outcome.DECLINE.value) & (pl.col("__limit") < spec.limits.min_limit)
        lf = lf.with_columns(capacity.alias("__capacity"))
        lf = lf.with_columns(
            pl.when(pl.col("__capacity"))
            .then(pl.lit(Outcome.DECLINE.value))
            .otherwise(pl.col("__pre"))
            .alias("outcome")
        )

        # The reasons and rule hits of a row depend only on a few flags and indices. Rather than build a list of
        # strings per row (slow: ~20 mostly-null string columns concatenated), pack those flags into integer
        # words, build each distinct list once in Python with the row evaluator's own rules, and map back.
        outcome = pl.col("outcome")
        use_score = (pl.col("__score_outcome") == outcome) & (outcome != Outcome.APPROVE.value)
        reason_fields: list[tuple[pl.Expr, int]] = [
            ((pl.col(n) & (outcome == r.action.value)).cast(pl.Int64), 1)
            for r, n in zip(self._rules, fired_names, strict=True)
        ]
        reason_fields += [(use_score.cast(pl.Int64), 1), (pl.col("__capacity").cast(pl.Int64), 1)]
        width = (len(self.scorecard.reasons()) + 1).bit_length()
        reason_fields += [(idx, width) for idx in self._score_reason_index_exprs(lost_names)]
        hit_fields = [(pl.col(n).cast(pl.Int64), 1) for n in fired_names]
        reasons = _lookup(reason_fields, self._reasons_from_fields)
        hits = _lookup(hit_fields, lambda values: [r.id for r, v in zip(self._rules, values, strict=True) if v])
        declined = outcome == Outcome.DECLINE.value
        apr = self._band_lookup(score, spec.pricing.score_edges, spec.pricing.apr)
        return lf.select(
            outcome,
            reasons.alias("reasons"),
            pl.when(declined).then(pl.lit(None, dtype=pl.Float64)).otherwise(pl.col("__limit")).alias("limit"),
            pl.when(declined).then(pl.lit(None, dtype=pl.Float64)).otherwise(apr).alias("apr"),
            score,
            hits.alias("rule_hits"),
        )

    def _reasons_from_fields(self, values: Sequence[int]) -> list[str]:
        """The reasons of a row from its packed fields: the same ordering rules as ``decide_row``."""
        n_rules = len(self._rules)
        codes = [r.reason for r, v in zip(self._rules, values[:n_rules], strict=True) if v]
        use_score, capacity = values[n_rules], values[n_rules + 1]
        if use_score:
            characteristics = self.scorecard.reasons()
            codes.extend(characteristics[i - 1] for i in values[n_rules + 2 :] if i)
        if capacity:
            codes.append(CAPACITY_REASON)
        return list(dict.fromkeys(codes))[: self.spec.max_reasons]

    def _score_reason_index_exprs(self, lost_names: list[str]) -> list[pl.Expr]:
        """1 + the index of the k-th score-reason characteristic per row (0: none), as Int64."""
        n = len(lost_names)
        lost = [pl.col(name) for name in lost_names]
        ranks = []
        for i in range(n):
            ahead = [(lost[j] > lost[i]) if j > i else (lost[j] >= lost[i]) for j in range(n) if j != i]
            ranks.append(pl.sum_horizontal([a.cast(pl.Int32) for a in ahead]) if ahead else pl.lit(0))
        return [
            pl.coalesce(
                [pl.when((ranks[i] == k) & (lost[i] > 0)).then(pl.lit(i + 1, dtype=pl.Int64)) for i in range(n)]
                + [pl.lit(0, dtype=pl.Int64)]
            )
            for k in range(self.spec.score.max_reasons)
        ]

    @staticmethod
    def _band(expr: pl.Expr, edges: Sequence[float]) -> pl.Expr:
        """bisect_right(edges, x): how many edges are ≤ x (0 when x is missing)."""
        if not edges:
            return pl.lit(0, dtype=pl.Int64)
        return pl.sum_horizontal([(expr >= e).fill_null(False).cast(pl.Int64) for e in edges])

    def _band_lookup(self, expr: pl.Expr, edges: Sequence[float], values: Sequence[float]) -> pl.Expr:
        mapping = {i: float(v) for i, v in enumerate(values)}
        return self._band(expr, edges).replace_strict(mapping, return_dtype=pl.Float64)

    def _limit_expr(self) -> pl.Expr:
        limits = self.spec.limits
        income = pl.col("monthly_income")
        cols = len(limits.income_edges) + 1
        flat = self._band(pl.col("score"), limits.score_edges) * cols + self._band(income, limits.income_edges)
        value = flat.replace_strict({i: float(v) for i, v in enumerate(self._limit_flat)}, return_dtype=pl.Float64)
        if limits.income_multiple_cap is not None:
            value = pl.min_horizontal(value, income * limits.income_multiple_cap)  # ignores a missing income
        return (value / _full_length(pl.lit(limits.rounding, dtype=pl.Float64))).floor() * limits.rounding


_WORD_BITS = 62


def _lookup(fields: Sequence[tuple[pl.Expr, int]], build: Callable[[Sequence[int]], list[str]]) -> pl.Expr:
    """A List(String) column computed by ``build`` once per distinct combination of small integer fields.

    The fields are packed into as few Int64 words as fit (62 bits each); the words of each batch are
    deduplicated, ``build`` runs once per distinct combination, and a join maps the lists back in order.
    """
    words: list[pl.Expr] = []
    layout: list[list[tuple[int, int]]] = []  # per word: (shift, width) of each field in it
    current: pl.Expr | None = None
    used = 0
    for expr, width in fields:
        if current is None or used + width > _WORD_BITS:
            if current is not None:
                words.append(current)
            current, used = pl.lit(0, dtype=pl.Int64), 0
            layout.append([])
        current = current + expr * (1 << used)
        layout[-1].append((used, width))
        used += width
    if current is None:
        return pl.lit([], dtype=pl.List(pl.String))
    words.append(current)
    names = [f"w{i}" for i in range(len(words))]

    def decode(word_values: Sequence[int]) -> list[str]:
        values = [
            (word >> shift) & ((1 << width) - 1)
            for word, spots in zip(word_values, layout, strict=True)
            for shift, width in spots
        ]
        return build(values)

    def apply(batch: pl.Series) -> pl.Series:
        frame = batch.struct.unnest()
        distinct = frame.unique()
        lists = [decode(row) for row in distinct.iter_rows()]
        table = distinct.with_columns(pl.Series("__out", lists, dtype=pl.List(pl.String)))
        return frame.join(table, on=names, how="left", maintain_order="left", nulls_equal=True)["__out"]

    struct = pl.struct([w.alias(n) for w, n in zip(words, names, strict=True)])
    return struct.map_batches(apply, return_dtype=pl.List(pl.String))


def normalize_row(features: Mapping[str, Any], registry: FeatureRegistry) -> dict[str, Any]:
    """Numbers become floats and NaN becomes missing, exactly as ``normalize_frame`` does for columns."""
    row = dict(features)
    types = registry.types
    for name, value in row.items():
        if value is None:
            continue
        kind = types.get(name)
        if kind is FeatureType.NUMBER:
            if type(value) is float:  # the common case, already a float: only NaN changes
                if value != value:
                    row[name] = None
                continue
            if isinstance(value, bool):
                raise TypeError(f"feature {name!r} is a number, got a boolean")
            number = float(value)
            row[name] = None if number != number else number
        elif kind is FeatureType.BOOL and not isinstance(value, bool):
            row[name] = bool(value)  # 1 or numpy.bool_ as the columnar cast to Boolean reads them
    return row


def normalize_frame(frame: pl.LazyFrame, registry: FeatureRegistry, needed: Sequence[str]) -> pl.LazyFrame:
    schema = frame.collect_schema()
    absent = [n for n in needed if n not in schema]
    if absent:
        raise ValueError(f"the table lacks feature column(s) the policy reads: {', '.join(absent)}")
    casts = []
    for name in needed:
        feature = registry.get(name)
        if feature is None:
            continue
        if feature.type is FeatureType.NUMBER:
            casts.append(pl.col(name).cast(pl.Float64).fill_nan(None))
        elif feature.type is FeatureType.STRING:
            casts.append(pl.col(name).cast(pl.String))
        else:
            casts.append(pl.col(name).cast(pl.Boolean))
    return frame.with_columns(casts)
