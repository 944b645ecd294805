"""One meaning, two evaluators: property tests holding the row evaluator and the columnar evaluator to
identical answers, for the bundled policy, for generated policies and for standalone expressions.

Inputs include missing values (absent keys and None), NaN, zeros (for division), negative numbers, infinities,
ints and floats, known and unknown categorical values. Every example puts all its rows in ONE DataFrame.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import polars as pl
import yaml
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from fengkong.features.registry import EMPLOYMENT_TYPES, FEATURES, Feature, FeatureRegistry, FeatureType
from fengkong.policy import expressions as ex
from fengkong.policy.compiler import CompiledPolicy, compile_columnar, compile_row, normalize_frame, normalize_row
from fengkong.policy.loader import DEFAULT_POLICY_PATH, load_default_policy, load_policy_text
from fengkong.reasons import CATALOGUE

settings.register_profile(
    "fengkong-parity",
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
PARITY = settings.get_profile("fengkong-parity")

N, S, B = FeatureType.NUMBER, FeatureType.STRING, FeatureType.BOOL
ABSENT: Any = object()  # the key is left out of the row mapping; the table holds a null

# ---------------------------------------------------------------------------------------------- values

BOUNDARIES = [
    0,
    1,
    2,
    3,
    5,
    6,
    7,
    10,
    12,
    18,
    20,
    25,
    30,
    60,
    65,
    90,
    100,
    0.2,
    0.5,
    2.5,
    1000,
    2000,
    3000,
    5000,
    8000,
    10000,
    15000,
    20000,
    100000,
]


def numbers() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.just(math.nan),
        st.sampled_from([0, 0.0, -0.0]),
        st.sampled_from(BOUNDARIES),
        st.sampled_from(BOUNDARIES).map(lambda v: -v),
        st.sampled_from([math.inf, -math.inf, 1e308, -1e308, 5e-324, -5e-324, 2**53 + 1]),
        st.integers(-1_000, 200_000),
        st.floats(-1e6, 1e6, allow_nan=False),
        st.floats(allow_nan=True, allow_infinity=True),
    )


def values_for(feature: Feature) -> st.SearchStrategy[Any]:
    if feature.type is N:
        return numbers()
    if feature.type is B:
        return st.sampled_from([None, True, False])
    known = list(feature.values or ("red", "x", "it's"))
    return st.one_of(st.none(), st.sampled_from(known), st.sampled_from(["", "other", "Salaried", "中文", "x"]))


def rows_for(features: list[Feature], max_rows: int) -> st.SearchStrategy[list[dict[str, Any]]]:
    row = st.fixed_dictionaries({f.name: st.one_of(values_for(f), st.just(ABSENT)) for f in features})
    return st.lists(row, min_size=1, max_size=max_rows)


def mapping(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if v is not ABSENT}


def column(feature: Feature, values: list[Any]) -> pl.Series:
    """A column as an upstream table would hold it: Int64 when every number is an int, nulls as Null."""
    present = [v for v in values if v is not None]
    if not present:
        return pl.Series(feature.name, values, dtype=pl.Null)
    if feature.type is N:
        if all(type(v) is int for v in present):
            return pl.Series(feature.name, values, dtype=pl.Int64)
        return pl.Series(feature.name, [None if v is None else float(v) for v in values], dtype=pl.Float64)
    return pl.Series(feature.name, values, dtype=pl.String if feature.type is S else pl.Boolean)


def frame(features: list[Feature], rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(
        [column(f, [None if r.get(f.name, ABSENT) is ABSENT else r[f.name] for r in rows]) for f in features]
    )


def same(a: Any, b: Any) -> bool:
    """Identical values: None only with None, bools only with bools, floats exactly (NaN never)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, float) and isinstance(b, float) and a == b
    return type(a) is type(b) and a == b


DECISION_SCHEMA = {
    "outcome": pl.String,
    "reasons": pl.List(pl.String),
    "limit": pl.Float64,
    "apr": pl.Float64,
    "score": pl.Float64,
    "rule_hits": pl.List(pl.String),
}


def assert_decisions_agree(policy: CompiledPolicy, features: list[Feature], rows: list[dict[str, Any]]) -> None:
    table = frame(features, rows)
    out = policy.decide_frame(table)
    assert dict(out.schema) == DECISION_SCHEMA
    assert out.height == len(rows)
    for i, (row, got) in enumerate(zip(rows, out.iter_rows(named=True), strict=True)):
        r = policy.decide_row(mapping(row))
        expected = {
            "outcome": r.outcome.value,
            "reasons": list(r.reasons),
            "limit": r.limit,
            "apr": r.apr,
            "score": r.score,
            "rule_hits": [h.id for h in r.rule_hits],
        }
        ok = (
            got["outcome"] == expected["outcome"]
            and got["reasons"] == expected["reasons"]
            and got["rule_hits"] == expected["rule_hits"]
            and all(same(expected[k], got[k]) for k in ("limit", "apr", "score"))
        )
        assert ok, f"row {i} {mapping(row)!r}:\n  decide_row   {expected}\n  decide_frame {got}"
        # and what both say makes sense
        assert len(r.reasons) == len(set(r.reasons)) <= policy.spec.max_reasons
        if r.outcome.value == "approve":
            assert r.reasons == () and r.limit is not None and r.apr is not None
        elif r.outcome.value == "decline":
            assert r.limit is None and r.apr is None
        else:
            assert r.limit is not None and r.limit >= policy.spec.limits.min_limit


# ---------------------------------------------------------------------------------------------- default policy

DEFAULT = load_default_policy()
DEFAULT_FEATURES = [f for f in FEATURES if f.name != "score"]


def default_values(feature: Feature) -> st.SearchStrategy[Any]:
    if feature.name == "employment":
        return st.one_of(st.none(), st.sampled_from(EMPLOYMENT_TYPES), st.sampled_from(["", "salary", "SALARIED"]))
    return values_for(feature)


@settings(PARITY, max_examples=200)
@given(
    st.lists(
        st.fixed_dictionaries({f.name: st.one_of(default_values(f), st.just(ABSENT)) for f in DEFAULT_FEATURES}),
        min_size=1,
        max_size=40,
    )
)
def test_default_policy_row_and_frame_agree(rows: list[dict[str, Any]]) -> None:
    assert_decisions_agree(DEFAULT, DEFAULT_FEATURES, rows)


# A realistic region of the input space, so that approvals, reviews, score declines and capacity declines
# all occur (fully random rows are mostly declined by some rule): each feature mostly takes a good value.
def mostly(good: Any, *others: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from([good] * (2 * len(others) + 2) + list(others))


PLAUSIBLE = {
    "age": st.one_of(st.integers(22, 60), st.integers(22, 60), st.integers(16, 70)),
    "monthly_income": st.sampled_from([None, 1500, 2500, 3500, 6000, 7000, 9000, 12000, 20000, 150000]),
    "employment": mostly("salaried", None, "self_employed", "freelance", "retired", "student", "unemployed"),
    "employment_months": st.sampled_from([None, 0, 3, 12, 30, 80]),
    "requested_amount": st.sampled_from([None, 5000, 50000]),
    "request_to_income": mostly(2, None, 0.5, 10, 12.5),
    "id_number_valid": mostly(True, None, False),
    "id_age_gap": mostly(0, None, 1, 2),
    "has_device_id": mostly(True, None, False),
    "bureau_inquiries_7d": mostly(0, None, 1, 3, 6),
    "bureau_inquiries_30d": st.sampled_from([None, 0, 1, 2, 4, 7, 12]),
    "bureau_inquiries_90d": st.sampled_from([None, 0, 5, 12, 22, 30]),
    "bureau_active_loans": st.sampled_from([None, 0, 1, 3, 5, 8, 10]),
    "bureau_total_debt": st.sampled_from([None, 0, 10000.5]),
    "bureau_worst_dpd": mostly(0, None, 10, 30, 45, 89, 90),
    "bureau_hit": st.sampled_from([None, True, False]),
    "debt_to_income": st.sampled_from([None, 0.0, 0.1, 0.3, 0.6, 1.5, 2.2, 2.6]),
}


@settings(PARITY, max_examples=80)
@given(st.lists(st.fixed_dictionaries(PLAUSIBLE), min_size=1, max_size=60))
def test_default_policy_agrees_on_plausible_applications(rows: list[dict[str, Any]]) -> None:
    assert_decisions_agree(DEFAULT, DEFAULT_FEATURES, rows)


def test_plausible_applications_reach_every_outcome() -> None:
    """A guard on the strategy above: it reaches approve, review, score decline and a score review's offer."""
    base = {
        "age": 30,
        "monthly_income": 12000,
        "employment": "salaried",
        "employment_months": 30,
        "id_number_valid": True,
        "has_device_id": True,
        "bureau_inquiries_7d": 0,
        "bureau_inquiries_30d": 1,
        "bureau_inquiries_90d": 5,
        "bureau_active_loans": 1,
        "bureau_worst_dpd": 0,
        "debt_to_income": 0.3,
    }
    assert DEFAULT.decide_row(base).outcome.value == "approve"
    assert DEFAULT.decide_row({**base, "id_age_gap": 2}).outcome.value == "review"
    thin = {
        **base,
        "monthly_income": 2500,
        "employment": "freelance",
        "employment_months": 3,
        "bureau_inquiries_30d": 4,
        "bureau_active_loans": 5,
        "debt_to_income": 1.5,
        "bureau_worst_dpd": 10,
    }
    assert DEFAULT.decide_row(thin).reasons[0].startswith("SCORE_")
    offer = DEFAULT.decide_row({**thin, "monthly_income": 6000})  # score 560-599: review with a small offer
    assert (offer.outcome.value, offer.limit) == ("review", 2000.0)


# ---------------------------------------------------------------------------------------------- generated

COLOURS = ("red", "green", "blue")
GEN = FeatureRegistry(
    (
        Feature("monthly_income", N, "income", "gen"),
        Feature("n1", N, "a number", "gen"),
        Feature("n2", N, "a number", "gen"),
        Feature("n3", N, "a number", "gen"),
        Feature("cat", S, "a category", "gen", COLOURS),
        Feature("txt", S, "free text", "gen"),
        Feature("b1", B, "a flag", "gen"),
        Feature("b2", B, "a flag", "gen"),
        Feature("score", N, "the policy's score", "gen"),
    )
)
GEN_INPUTS = [f for f in GEN if f.name != "score"]
NUM_REFS = ["monthly_income", "n1", "n2", "n3"]
STRINGS = ["red", "green", "blue", "purple", "", "x", "it's", 'say "hi"', "back\\slash", "中文"]


def num_literal(v: float) -> str:
    return "1e999" if v == math.inf else repr(v)


def str_literal(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def paren(draw: st.DrawFn, text: str) -> str:
    return f"({text})" if draw(st.booleans()) else text


NUM_LITERALS = st.one_of(
    st.sampled_from([0.0, 1.0, 2.0, 0.5, 3.0, 7.0, 10.0, 49.0, 100.0, 2000.0, 5000.0, 0.1, 1e-3, 1e300, math.inf]),
    st.floats(0, 1e6, allow_nan=False),
    st.integers(0, 10**6).map(float),
).map(num_literal)


def num_exprs(refs: list[str]) -> st.SearchStrategy[str]:
    leaf = st.one_of(NUM_LITERALS, st.sampled_from(refs))

    @st.composite
    def arith(draw: st.DrawFn, sub: st.SearchStrategy[str]) -> str:
        a, b = draw(sub), draw(sub)
        return paren(draw, f"{a} {draw(st.sampled_from('+-*/'))} {b}")  # precedence may regroup: still numbers

    def extend(sub: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            arith(sub),
            arith(sub),
            sub.map(lambda a: f"-{a}"),
            sub.map(lambda a: f"abs({a})"),
            st.builds(
                lambda f, xs: f"{f}({', '.join(xs)})",
                st.sampled_from(["min", "max", "coalesce"]),
                st.lists(sub, min_size=2, max_size=3),
            ),
        )

    return st.recursive(leaf, extend, max_leaves=6)


STR_EXPRS = st.recursive(
    st.one_of(st.sampled_from(STRINGS).map(str_literal), st.sampled_from(["cat", "txt"])),
    lambda sub: st.lists(sub, min_size=2, max_size=3).map(lambda xs: f"coalesce({', '.join(xs)})"),
    max_leaves=3,
)


@st.composite
def str_comparison(draw: st.DrawFn) -> str:
    left, right = draw(STR_EXPRS), draw(STR_EXPRS)
    # a bare categorical feature may only be compared with one of its values (checked at load time)
    if left == "cat" and right.startswith("'"):
        right = str_literal(draw(st.sampled_from(COLOURS)))
    if right == "cat" and left.startswith("'"):
        left = str_literal(draw(st.sampled_from(COLOURS)))
    return f"({left} {draw(st.sampled_from(['==', '!=']))} {right})"


@st.composite
def in_list(draw: st.DrawFn, nums: st.SearchStrategy[str]) -> str:
    op = draw(st.sampled_from(["in", "not in"]))
    kind = draw(st.sampled_from(["num", "str", "bool"]))
    if kind == "num":
        values = draw(st.lists(st.sampled_from([0.0, 1.0, 2.0, 0.5, 10.0, 1e300, math.inf]), min_size=1, max_size=4))
        items = [("-" if draw(st.booleans()) else "") + num_literal(v) for v in values]
        return f"({draw(nums)} {op} [{', '.join(items)}])"
    if kind == "str":
        operand = draw(STR_EXPRS)
        pool = COLOURS if operand == "cat" else STRINGS
        values = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4))
        return f"({operand} {op} [{', '.join(str_literal(v) for v in values)}])"
    values = draw(st.lists(st.sampled_from(["true", "false"]), min_size=1, max_size=2))
    return f"({draw(st.sampled_from(['b1', 'b2', 'true']))} {op} [{', '.join(values)}])"


def bool_exprs(num_refs: list[str]) -> st.SearchStrategy[str]:
    nums = num_exprs(num_refs)
    any_expr = st.one_of(nums, STR_EXPRS, st.sampled_from(["b1", "b2"]))
    base = st.one_of(
        st.sampled_from(["true", "false", "b1", "b2"]),
        st.builds(lambda a, op, b: f"({a} {op} {b})", nums, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), nums),
        st.builds(lambda a, op, b: f"({a} {op} {b})", nums, st.sampled_from(["<", ">="]), nums),
        str_comparison(),
        in_list(nums),
        st.builds(lambda a, neg: f"({a} is {'not ' if neg else ''}missing)", any_expr, st.booleans()),
    )

    def extend(sub: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            sub.map(lambda a: f"(not {a})"),
            st.builds(lambda xs: f"({' and '.join(xs)})", st.lists(sub, min_size=2, max_size=3)),
            st.builds(lambda xs: f"({' or '.join(xs)})", st.lists(sub, min_size=2, max_size=3)),
            st.builds(lambda a, op, b: f"({a} {op} {b})", sub, st.sampled_from(["==", "!="]), sub),
            st.builds(lambda a, b: f"coalesce({a}, {b})", sub, sub),
        )

    return st.recursive(base, extend, max_leaves=6)


RULE_EXPRS = bool_exprs([*NUM_REFS, "score"])  # rules may read the policy's own score

POINTS = st.sampled_from([0, 5, 10, 12.5, 20, 35, 50, 80, -5])
EDGES = st.one_of(st.sampled_from([0, 0.5, 1, 2, 3, 10, 1000, 2000, 5000, 10000, 20000]), st.floats(-1e4, 1e5))
VOCAB = ["red", "green", "blue", "purple", "x", "", "it's"]


@st.composite
def scorecards(draw: st.DrawFn) -> dict[str, Any]:
    chars = []
    features = draw(st.lists(st.sampled_from(["monthly_income", "n1", "n2", "cat", "txt"]), min_size=1, max_size=5))
    for i, feature in enumerate(features):
        if GEN.get(feature).type is N:  # type: ignore[union-attr]
            uppers = sorted(set(draw(st.lists(EDGES, min_size=1, max_size=4))))
            bins: list[dict[str, Any]] = [{"upper": u, "points": draw(POINTS)} for u in uppers]
        else:
            vocab = draw(st.permutations(VOCAB))
            cuts = sorted(set(draw(st.lists(st.integers(1, len(vocab)), min_size=1, max_size=3))))
            groups = [vocab[a:b] for a, b in zip([0, *cuts], cuts, strict=False)]
            bins = [{"values": g, "points": draw(POINTS)} for g in groups]
        bins.append({"points": draw(POINTS)})
        chars.append(
            {
                "name": f"c{i}",
                "feature": feature,
                "reason": draw(st.sampled_from(REASONS)),
                "bins": bins,
                "missing_points": draw(POINTS),
            }
        )
    base = draw(st.sampled_from([300, 400, 512.5]))
    return {"name": "gen", "version": "1", "kind": "points_scorecard", "base_points": base, "characteristics": chars}


REASONS = sorted(CATALOGUE)
LIMITS = st.sampled_from([0, 49, 500, 999.99, 1000, 2500, 4998, 5000, 8000, 12345.6, 20000, 50000])


def increasing(values: st.SearchStrategy[float], max_size: int) -> st.SearchStrategy[list[float]]:
    return st.lists(values, max_size=max_size).map(lambda xs: sorted(set(xs)))


@st.composite
def policies(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    card = draw(scorecards())
    lo = float(card["base_points"])
    hi = lo + 80 * len(card["characteristics"])
    scores = st.one_of(
        st.floats(lo - 40, hi + 40),
        st.sampled_from([lo - 100, lo, hi, lo + 100]),
        st.sampled_from([-math.inf, math.inf]),  # a kill switch, or no cut-off at all
    )
    decline_below, review_below = sorted([draw(scores), draw(scores)])
    score_edges = draw(increasing(scores, 4))
    income_edges = draw(increasing(st.sampled_from([-100, 0, 1000, 5000, 10000, 20000]), 3))
    pricing_edges = draw(increasing(scores, 3))
    rules = [
        {
            "id": f"R{i}",
            "when": draw(RULE_EXPRS),
            "action": draw(st.sampled_from(["decline", "review"])),
            "reason": draw(st.sampled_from(REASONS)),
        }
        for i in range(draw(st.sampled_from([0, 1, 1, 2, 3, 6])))
    ]
    doc = {
        "policy": "generated",
        "version": "1",
        "max_reasons": draw(st.integers(1, 8)),
        "rules": rules,
        "score": {
            "scorecard": "gen@1",
            "decline_below": decline_below,
            "review_below": review_below,
            "max_reasons": draw(st.integers(0, 4)),
        },
        "limits": {
            "score_edges": score_edges,
            "income_edges": income_edges,
            "table": [[draw(LIMITS) for _ in range(len(income_edges) + 1)] for _ in range(len(score_edges) + 1)],
            "income_multiple_cap": draw(st.sampled_from([None, 0.5, 3, 5, 0.3333, math.inf])),
            "min_limit": draw(st.sampled_from([0, 1000, 2000])),
            "rounding": draw(st.sampled_from([1, 100, 0.5, 250, 0.3, 3, 49])),
        },
        "pricing": {
            "score_edges": pricing_edges,
            "apr": [draw(st.sampled_from([0.05, 0.1, 0.18, 0.2399, 0.24])) for _ in range(len(pricing_edges) + 1)],
            "max_apr": 0.24,
        },
    }
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), card


def load_generated(text: str, card: dict[str, Any]) -> CompiledPolicy:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "gen@1.json").write_text(json.dumps(card), encoding="utf-8")
        return load_policy_text(text, source="generated.yaml", features=GEN, model_dirs=[Path(folder)])


@settings(PARITY, max_examples=250)
@given(policies(), rows_for(GEN_INPUTS, max_rows=30))
def test_generated_policies_row_and_frame_agree(policy: tuple[str, dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    text, card = policy
    note(text)
    note(json.dumps(card))
    compiled = load_generated(text, card)  # a generated policy is always valid
    assert_decisions_agree(compiled, GEN_INPUTS, rows)


# ---------------------------------------------------------------------------------------------- expressions

TYPED_EXPRS = st.one_of(
    bool_exprs(NUM_REFS).map(lambda t: (t, B)),
    num_exprs(NUM_REFS).map(lambda t: (t, N)),
    STR_EXPRS.map(lambda t: (t, S)),
)
DTYPE = {N: pl.Float64, S: pl.String, B: pl.Boolean}
PYTYPE = {N: float, S: str, B: bool}
EXPR_INPUTS = [f for f in GEN_INPUTS if f.name != "score"]


@settings(PARITY, max_examples=600)
@given(TYPED_EXPRS, rows_for(EXPR_INPUTS, max_rows=25))
def test_expression_row_and_columnar_agree(expr: tuple[str, FeatureType], rows: list[dict[str, Any]]) -> None:
    text, kind = expr
    tree = ex.parse(text)
    assert ex.check(tree, GEN) is kind
    names = [f.name for f in EXPR_INPUTS]
    # Lazily, as decide_frame does: polars 2.1's eager path mis-sizes some constant-folded expressions, e.g.
    # ``pl.DataFrame({"x": [1.0, None]}).with_columns(pl.lit(0.0) == pl.coalesce([pl.lit(1.0), pl.col("x")]))``
    # raises "length 1 doesn't match the DataFrame height of 2". with_columns broadcasts constant expressions.
    lazy = normalize_frame(frame(EXPR_INPUTS, rows).lazy(), GEN, names)
    column_values = lazy.with_columns(compile_columnar(tree).alias("__value")).collect()["__value"]
    assert column_values.dtype == DTYPE[kind], (text, column_values.dtype)
    row_fn = compile_row(tree)
    for i, (row, got) in enumerate(zip(rows, column_values.to_list(), strict=True)):
        expected = row_fn(normalize_row(mapping(row), GEN))
        assert same(expected, got), f"{text!r} on row {i} {mapping(row)!r}: row {expected!r}, columnar {got!r}"
        assert expected is None or type(expected) is PYTYPE[kind]
        assert not (isinstance(expected, float) and math.isnan(expected))


@settings(PARITY, max_examples=100)
@given(TYPED_EXPRS)
def test_expressions_survive_a_text_round_trip(expr: tuple[str, FeatureType]) -> None:
    """Parsing is deterministic and whitespace-insensitive: padding every token changes nothing."""
    text, _ = expr
    tokens = ex.tokenize(text)
    padded = "  ".join(t.text for t in tokens if t.kind != "end")
    assert _shape(ex.parse(text)) == _shape(ex.parse(padded))


def _shape(node: ex.Node) -> Any:
    """A tree without positions."""
    if isinstance(node, ex.Const | ex.Ref):
        return (type(node).__name__, getattr(node, "value", None), getattr(node, "name", None))
    fields = []
    for name in node.__slots__:  # type: ignore[attr-defined]
        value = getattr(node, name)
        if isinstance(value, ex.Node):
            fields.append(_shape(value))
        elif isinstance(value, tuple):
            fields.append(tuple(_shape(v) if isinstance(v, ex.Node) else v for v in value))
        else:
            fields.append(value)
    return (type(node).__name__, *fields)


# ---------------------------------------------------------------------------------------------- regressions


def test_division_by_a_constant_is_ieee_division() -> None:
    """polars divides a column by a scalar as a multiplication by the reciprocal (``49 * (1/49)`` is
    0.9999999999999999); the columnar evaluator must still give exactly what ``a / b`` gives in Python."""
    import random

    rng = random.Random(7)
    xs = [49.0, 98.0, 3.0, 1.0, 0.3, -7.0, 1e308, 5e-324, *(rng.uniform(-1e6, 1e6) for _ in range(500))]
    table = pl.DataFrame({"n1": xs, "n2": [None] * len(xs)}, schema={"n1": pl.Float64, "n2": pl.Float64})
    for divisor in ("49", "3", "7", "205", "0.1", "0.3", "1e-3", "(2 + 1)", "-49", "abs(-49)", "coalesce(13, n2)"):
        tree = ex.parse(f"n1 / {divisor}")
        expected = [compile_row(tree)({"n1": x, "n2": None}) for x in xs]
        eager = table.with_columns(compile_columnar(tree).alias("v"))["v"].to_list()
        lazy = table.lazy().with_columns(compile_columnar(tree).alias("v")).collect()["v"].to_list()
        assert eager == expected, divisor
        assert lazy == expected, divisor
    assert compile_row(ex.parse("n1 / 49 >= 1"))({"n1": 49.0}) is True
    assert pl.DataFrame({"n1": [49.0, 49.0]}).select(compile_columnar(ex.parse("n1 / 49 >= 1")))[:, 0].to_list() == [
        True,
        True,
    ]


def test_limit_rounding_and_a_divided_rule_agree() -> None:
    """A rounding whose reciprocal is inexact: 4998 / 49 is exactly 102, 4998 × (1/49) is just under."""
    doc = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    doc["limits"]["rounding"] = 49
    doc["limits"]["table"] = [[4998] * 4] * 5
    doc["rules"].append(
        {"id": "DEBT_49", "when": "bureau_total_debt / 49 >= 1", "action": "review", "reason": "LARGE_REQUEST_REVIEW"}
    )
    policy = load_policy_text(yaml.safe_dump(doc))
    row = {
        "age": 30,
        "monthly_income": 20000,
        "employment": "salaried",
        "employment_months": 60,
        "debt_to_income": 0.0,
        "bureau_inquiries_30d": 0,
        "bureau_inquiries_90d": 0,
        "bureau_active_loans": 0,
        "bureau_worst_dpd": 0,
        "bureau_total_debt": 49,
    }
    result = policy.decide_row(row)
    assert (result.outcome.value, result.limit, [h.id for h in result.rule_hits]) == ("review", 4998.0, ["DEBT_49"])
    assert_decisions_agree(policy, DEFAULT_FEATURES, [{f.name: row.get(f.name) for f in DEFAULT_FEATURES}] * 3)


def test_extreme_incomes_do_not_crash_the_row_evaluator() -> None:
    """A -inf (or huge negative) income made the income cap -inf and math.floor raise OverflowError."""
    rows = [
        {f.name: None for f in DEFAULT_FEATURES} | {"monthly_income": v}
        for v in (-math.inf, math.inf, -1e308, 1e308, math.nan, -0.0)
    ]
    assert_decisions_agree(DEFAULT, DEFAULT_FEATURES, rows)
    assert DEFAULT.decide_row({"monthly_income": -math.inf}).outcome.value == "decline"


def test_decide_frame_on_an_empty_table() -> None:
    out = DEFAULT.decide_frame(frame(DEFAULT_FEATURES, []))
    assert out.height == 0 and dict(out.schema) == DECISION_SCHEMA


def test_infinite_cut_offs_decline_everything_in_both_evaluators() -> None:
    """``decline_below: .inf`` is a kill switch. The columnar score used to be ``decline_below * 0 + base``,
    NaN for an infinite cut-off, so decide_frame approved what decide_row declined."""
    text = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
    text = text.replace("decline_below: 560\n  review_below: 600", "decline_below: .inf\n  review_below: .inf")
    policy = load_policy_text(text)
    assert policy.spec.score.decline_below == math.inf
    good = {
        "age": 30,
        "monthly_income": 20000,
        "employment": "salaried",
        "employment_months": 60,
        "debt_to_income": 0.0,
        "bureau_inquiries_30d": 0,
        "bureau_inquiries_90d": 0,
        "bureau_active_loans": 0,
        "bureau_worst_dpd": 0,
    }
    rows = [{f.name: good.get(f.name) for f in DEFAULT_FEATURES}, {f.name: None for f in DEFAULT_FEATURES}]
    assert_decisions_agree(policy, DEFAULT_FEATURES, rows)
    assert policy.decide_frame(frame(DEFAULT_FEATURES, rows))["outcome"].to_list() == ["decline", "decline"]
    assert policy.decide_frame(frame(DEFAULT_FEATURES, rows))["score"].to_list() == [865.0, 535.0]
