"""Policy simulation on history (issue 8): the simulation's figures are those of re-deciding the same rows one
by one with the row evaluator, whatever the chunking; swap sets, realised outcomes and segments mean what a
credit-strategy team expects; bad input is refused with a clear error; the reports carry the figures."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from fengkong.domain import Outcome
from fengkong.models.scorecard import BUILTIN_DIR
from fengkong.policy.compiler import CompiledPolicy
from fengkong.policy.loader import DEFAULT_POLICY_PATH, load_default_policy, load_policy_text
from fengkong.policy.simulate import (
    PD_BASE_ODDS,
    SCORE_BIN,
    SimulationInputError,
    SimulationReport,
    expected_pd,
    expected_pd_expr,
    simulate,
)
from fengkong.simulate.history import history_frame

APPROVE, REVIEW, DECLINE = Outcome.APPROVE.value, Outcome.REVIEW.value, Outcome.DECLINE.value


def variant(
    version: str, change: Callable[[dict[str, Any]], None], model_dirs: tuple[Path, ...] = ()
) -> CompiledPolicy:
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["version"] = version
    change(data)
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    return load_policy_text(text, source=version, model_dirs=model_dirs)


def _stricter(data: dict[str, Any]) -> None:
    data["score"]["decline_below"] = 620
    data["score"]["review_below"] = 650


def _mixed(data: dict[str, Any]) -> None:
    """A retrained scorecard (other scores, so other PDs), stricter cut-offs and a higher minimum limit, but
    three review rules dropped and bigger top limits: a candidate with swap-ins, swap-outs, new capacity
    declines, different exposure and different expected bad rates on the same rows."""
    data["score"]["scorecard"] = "starter@2"
    data["score"]["decline_below"] = 580
    data["score"]["review_below"] = 630
    data["score"]["max_reasons"] = 1
    data["rules"] = [r for r in data["rules"] if r["id"] not in ("DEVICE_SHARED", "LARGE_REQUEST", "BUREAU_DPD_30")]
    data["limits"]["table"][-1] = [12000, 25000, 40000, 60000]
    data["limits"]["min_limit"] = 2000


@pytest.fixture(scope="module")
def current() -> CompiledPolicy:
    return load_default_policy()


@pytest.fixture(scope="module")
def stricter() -> CompiledPolicy:
    return variant("2026.11.5-strict", _stricter)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> CompiledPolicy:
    models = tmp_path_factory.mktemp("models")
    card = json.loads((BUILTIN_DIR / "starter@1.json").read_text(encoding="utf-8"))
    card["version"] = "2"
    card["base_points"] += 15
    card["characteristics"][0]["bins"][0]["points"] = -10  # the lowest incomes cost more
    (models / "starter@2.json").write_text(json.dumps(card), encoding="utf-8")
    return variant("2026.11.5-mixed", _mixed, (models,))


@pytest.fixture(scope="module")
def history() -> pl.DataFrame:
    return history_frame(4000, seed=8)


# ---------------------------------------------------------------------------------------------- the reference


def reference(
    candidate: CompiledPolicy, current: CompiledPolicy, table: pl.DataFrame, segment: str | None = None
) -> dict[str, Any]:
    """The figures the slow, obvious way: decide_row on every row, for both policies, and count in Python."""
    ref: dict[str, Any] = {
        "outcomes": (Counter(), Counter()),
        "reasons": (Counter(), Counter()),
        "hits": (Counter(), Counter()),
        "hist": (Counter(), Counter()),
        "exposure": [0.0, 0.0],
        "review_exposure": [0.0, 0.0],
        "el": [0.0, 0.0],
        "pd": [0.0, 0.0],
        "matured": [0, 0],
        "bad": [0, 0],
        "migration": Counter(),
        "swap_in": [],
        "swap_out": [],
        "swap_in_limit": 0.0,
        "swap_in_pd": 0.0,
        "swap_out_pd": 0.0,
        "swap_out_limit": 0.0,
        "swap_in_bad": [0, 0],
        "swap_out_bad": [0, 0],
        "swap_in_why": (Counter(), Counter()),  # the current policy's outcomes, reasons
        "swap_out_why": (Counter(), Counter()),  # the candidate's
        "segments": {},
    }
    for i, row in enumerate(table.to_dicts()):
        results = (current.decide_row(row), candidate.decide_row(row))
        bad = row.get("bad")
        for k, r in enumerate(results):
            o = r.outcome.value
            ref["outcomes"][k][o] += 1
            for reason in r.reasons:
                ref["reasons"][k][(reason, o)] += 1
            for hit in r.rule_hits:
                ref["hits"][k][hit.id] += 1
            ref["hist"][k][(math.floor(r.score / SCORE_BIN) * SCORE_BIN, o)] += 1
            if o == APPROVE:
                assert r.limit is not None
                ref["exposure"][k] += r.limit
                ref["pd"][k] += expected_pd(r.score)
                ref["el"][k] += expected_pd(r.score) * r.limit
                if bad is not None:
                    ref["matured"][k] += 1
                    ref["bad"][k] += bad
            elif o == REVIEW:
                assert r.limit is not None
                ref["review_exposure"][k] += r.limit
        cur, cand = results
        ref["migration"][(cur.outcome.value, cand.outcome.value)] += 1
        if cand.outcome is Outcome.APPROVE and cur.outcome is not Outcome.APPROVE:
            ref["swap_in"].append(i)
            ref["swap_in_limit"] += cand.limit or 0.0
            ref["swap_in_pd"] += expected_pd(cand.score)
            ref["swap_in_bad"][0] += bad is not None
            ref["swap_in_bad"][1] += bad or 0
            ref["swap_in_why"][0][cur.outcome.value] += 1
            ref["swap_in_why"][1].update(cur.reasons)
        if cur.outcome is Outcome.APPROVE and cand.outcome is not Outcome.APPROVE:
            ref["swap_out"].append(i)
            ref["swap_out_limit"] += cur.limit or 0.0
            ref["swap_out_pd"] += expected_pd(cur.score)
            ref["swap_out_bad"][0] += bad is not None
            ref["swap_out_bad"][1] += bad or 0
            ref["swap_out_why"][0][cand.outcome.value] += 1
            ref["swap_out_why"][1].update(cand.reasons)
        if segment is not None:
            seg = ref["segments"].setdefault(
                row[segment],
                {
                    "rows": 0,
                    "ap": [0, 0],
                    "mat": [0, 0],
                    "bad": [0, 0],
                    "pd": [0.0, 0.0],
                    "exposure": [0.0, 0.0],
                    "el": [0.0, 0.0],
                    "swap": [0, 0],
                },
            )
            seg["rows"] += 1
            seg["swap"][0] += cand.outcome is Outcome.APPROVE and cur.outcome is not Outcome.APPROVE
            seg["swap"][1] += cur.outcome is Outcome.APPROVE and cand.outcome is not Outcome.APPROVE
            for k, r in enumerate(results):
                if r.outcome is Outcome.APPROVE:
                    seg["ap"][k] += 1
                    seg["pd"][k] += expected_pd(r.score)
                    seg["exposure"][k] += r.limit or 0.0
                    seg["el"][k] += expected_pd(r.score) * (r.limit or 0.0)
                    if bad is not None:
                        seg["mat"][k] += 1
                        seg["bad"][k] += bad
    return ref


def test_figures_match_re_deciding_row_by_row(
    current: CompiledPolicy, mixed: CompiledPolicy, history: pl.DataFrame
) -> None:
    report = simulate(mixed, current, history, segment_columns=["channel"], chunk_rows=1500)
    ref = reference(mixed, current, history, segment="channel")
    assert report.chunks == 3 and report.rows == history.height

    for k, fig in enumerate((report.current, report.candidate)):
        outcomes = ref["outcomes"][k]
        assert (fig.approved, fig.reviewed, fig.declined) == (outcomes[APPROVE], outcomes[REVIEW], outcomes[DECLINE])
        assert fig.approval_rate == outcomes[APPROVE] / history.height
        reasons = {(r, o): n for r, by in fig.reasons.items() for o, n in by.items()}
        assert reasons == dict(ref["reasons"][k])
        assert fig.rule_hits == dict(ref["hits"][k])
        hist = {(s, o): n for s, by in fig.score_histogram.items() for o, n in by.items()}
        assert hist == dict(ref["hist"][k])
        assert fig.limit_exposure == ref["exposure"][k]  # whole hundreds: exact in any order
        assert fig.review_exposure == ref["review_exposure"][k]
        assert (fig.matured, fig.bad) == (ref["matured"][k], ref["bad"][k])
        assert fig.approved_pd_sum == pytest.approx(ref["pd"][k], rel=1e-12)
        assert fig.expected_loss == pytest.approx(ref["el"][k], rel=1e-12)

    assert {(a, b): n for a, by in report.migration.items() for b, n in by.items() if n} == dict(ref["migration"])
    # the candidate really differs in both directions, and in exposure (else this test would prove little)
    assert ref["swap_in"] and ref["swap_out"]
    assert report.current.limit_exposure != report.candidate.limit_exposure
    assert report.candidate.model_version == "starter@2" and report.current.model_version == "starter@1"
    assert report.swaps is not None
    assert (report.swaps["current_score"] != report.swaps["candidate_score"]).all()
    assert (report.swap_in.rows, report.swap_out.rows) == (len(ref["swap_in"]), len(ref["swap_out"]))
    assert report.swap_in.limit == ref["swap_in_limit"]
    assert report.swap_out.limit == ref["swap_out_limit"]
    assert report.swap_in.pd_sum == pytest.approx(ref["swap_in_pd"], rel=1e-12)
    assert report.swap_out.pd_sum == pytest.approx(ref["swap_out_pd"], rel=1e-12)
    assert (report.swap_in.matured, report.swap_in.bad) == tuple(ref["swap_in_bad"])
    assert (report.swap_out.matured, report.swap_out.bad) == tuple(ref["swap_out_bad"])
    # why the other policy does not approve them: its outcomes and reasons
    assert report.swap_in.other_outcomes == dict(ref["swap_in_why"][0])
    assert report.swap_in.other_reasons == dict(ref["swap_in_why"][1])
    assert report.swap_out.other_outcomes == dict(ref["swap_out_why"][0])
    assert report.swap_out.other_reasons == dict(ref["swap_out_why"][1])
    assert report.swaps is not None
    swaps = report.swaps
    assert swaps.filter(pl.col("swap") == "in")["row"].to_list() == ref["swap_in"]
    assert swaps.filter(pl.col("swap") == "out")["row"].to_list() == ref["swap_out"]

    segments = {s.value: s for s in report.segments["channel"]}
    assert set(segments) == set(ref["segments"])
    for value, seg in ref["segments"].items():
        got = segments[value]
        assert got.rows == seg["rows"]
        assert (got.approved_current, got.approved_candidate) == tuple(seg["ap"])
        assert (got.matured_current, got.matured_candidate) == tuple(seg["mat"])
        assert (got.bad_current, got.bad_candidate) == tuple(seg["bad"])
        assert (got.pd_sum_current, got.pd_sum_candidate) == pytest.approx(tuple(seg["pd"]), rel=1e-12)
        assert (got.exposure_current, got.exposure_candidate) == tuple(seg["exposure"])
        assert (got.expected_loss_current, got.expected_loss_candidate) == pytest.approx(tuple(seg["el"]), rel=1e-12)
        assert (got.swap_in, got.swap_out) == tuple(seg["swap"])


def test_identical_candidate_swaps_nothing(current: CompiledPolicy, history: pl.DataFrame) -> None:
    same = variant("2026.11.5-copy", lambda _d: None)
    report = simulate(same, current, history)
    assert report.swap_in.rows == 0 and report.swap_out.rows == 0
    assert report.swaps is not None and report.swaps.height == 0
    for a, by in report.migration.items():
        for b, n in by.items():
            assert (n == 0) if a != b else (n == report.current.__getattribute__(_count_field(a)))
    cur, cand = report.current.as_dict(), report.candidate.as_dict()
    for key in ("version", "content_hash"):
        cur.pop(key), cand.pop(key)
    assert cur == cand
    assert report.current.approved > 0


def _count_field(outcome: str) -> str:
    return {APPROVE: "approved", REVIEW: "reviewed", DECLINE: "declined"}[outcome]


def test_stricter_candidate_only_swaps_out(
    current: CompiledPolicy, stricter: CompiledPolicy, history: pl.DataFrame
) -> None:
    report = simulate(stricter, current, history)
    assert report.swap_in.rows == 0
    assert report.swap_out.rows > 0
    assert report.candidate.approved == report.current.approved - report.swap_out.rows
    cur_rate, cand_rate = report.current.approval_rate, report.candidate.approval_rate
    assert cur_rate is not None and cand_rate is not None and cand_rate < cur_rate
    # the approvals it drops all scored below its new review cut-off, so the approved are less risky
    cur_bad, cand_bad = report.current.expected_bad_rate, report.candidate.expected_bad_rate
    assert cur_bad is not None and cand_bad is not None and cand_bad < cur_bad
    assert report.swaps is not None
    assert set(report.swaps["swap"].to_list()) == {"out"}
    assert (report.swaps["current_outcome"] == APPROVE).all()
    assert (report.swaps["candidate_outcome"] != APPROVE).all()
    assert (report.swaps["candidate_score"] < 650).all()
    swap_bad = report.swap_out.expected_bad_rate
    assert swap_bad is not None and swap_bad > cur_bad  # the dropped are riskier than the average approved


def test_realised_bad_rate_counts_only_matured_rows(current: CompiledPolicy, history: pl.DataFrame) -> None:
    approved = current.decide_frame(history)["outcome"] == APPROVE
    rank = approved.cast(pl.Int64).cum_sum()  # 1, 2, ... along the approved rows
    # of the approved: 10 went bad, 30 stayed good, every other one has not matured (null); declined rows
    # carry outcomes too (bad ones), which must not count towards the approved's rate
    bad = (
        pl.when(approved & (rank <= 10))
        .then(1)
        .when(approved & (rank <= 40))
        .then(0)
        .when(~approved)
        .then(1)
        .otherwise(None)
        .cast(pl.Int8)
    )
    table = history.with_columns(pl.select(bad.alias("bad")).to_series())
    report = simulate(current, current, table)
    assert (report.current.matured, report.current.bad) == (40, 10)
    assert report.current.realised_bad_rate == 0.25
    assert report.outcomes_known == 40 + int((~approved).sum())

    # NaN and booleans read as not-matured and 0/1
    as_float = table.with_columns(pl.col("bad").cast(pl.Float64).fill_null(float("nan")))
    assert simulate(current, current, as_float).current.realised_bad_rate == 0.25
    as_bool = table.with_columns(pl.col("bad").cast(pl.Boolean))
    assert simulate(current, current, as_bool).current.realised_bad_rate == 0.25

    # no outcome column: no realised figures, and the report says so
    none = simulate(current, current, history.drop("bad"))
    assert none.outcome_column is None and none.current.realised_bad_rate is None and none.current.matured == 0
    assert "no outcome column" in none.markdown()
    other = simulate(current, current, history.rename({"bad": "default_90dpd"}), outcome_column="default_90dpd")
    assert (
        other.outcome_column == "default_90dpd"
        and other.current.matured == simulate(current, current, history).current.matured
    )


def test_bad_outcome_values_are_refused(current: CompiledPolicy, history: pl.DataFrame) -> None:
    table = history.head(500).with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(2).otherwise(pl.col("bad")).alias("bad")
    )
    with pytest.raises(SimulationInputError, match=r"'bad' must hold 1 \(went bad\), 0 \(good\) or null") as info:
        simulate(current, current, table)
    assert info.value.code == "simulation_bad_outcome" and info.value.field == "outcome_column"
    # the same check and wording of the values as the line comparison's (fengkong.policy.outcomes)
    assert info.value.message.endswith("found 1 other value(s), e.g. 2")
    with pytest.raises(SimulationInputError, match="is String"):
        simulate(current, current, history.head(10).with_columns(pl.lit("yes").alias("bad")))


def test_segments(current: CompiledPolicy, stricter: CompiledPolicy, history: pl.DataFrame) -> None:
    table = history.with_columns(
        pl.when(pl.col("region") == "west").then(None).otherwise(pl.col("region")).alias("region")
    )
    report = simulate(stricter, current, table, segment_columns=["region", "income_band"])
    assert list(report.segments) == ["region", "income_band"]
    for column, values in report.segments.items():
        assert sum(s.rows for s in values) == table.height
        assert sum(s.approved_current for s in values) == report.current.approved
        assert sum(s.approved_candidate for s in values) == report.candidate.approved
        assert sum(s.matured_candidate for s in values) == report.candidate.matured
        assert sum(s.pd_sum_candidate for s in values) == pytest.approx(report.candidate.approved_pd_sum)
        assert len({s.value for s in values}) == len(values) == table[column].n_unique()
    regions = {s.value: s for s in report.segments["region"]}
    assert None in regions and regions[None].rows == int(table["region"].is_null().sum())
    low = next(s for s in report.segments["income_band"] if s.value == "<5k")
    expect = table.filter(pl.col("income_band") == "<5k")
    assert low.rows == expect.height
    assert low.approved_current == int((current.decide_frame(expect)["outcome"] == APPROVE).sum())
    assert "(missing)" in report.markdown()

    with pytest.raises(SimulationInputError, match=r"more than 100 distinct values: monthly_income") as info:
        simulate(current, current, history, segment_columns=["monthly_income"])
    assert info.value.code == "simulation_segment_too_wide"
    with pytest.raises(SimulationInputError, match="no segment column") as info:
        simulate(current, current, history, segment_columns=["province"])
    assert info.value.field == "segment_columns"


def test_missing_feature_columns_are_named(current: CompiledPolicy, stricter: CompiledPolicy) -> None:
    table = history_frame(50, seed=1).drop("graph_hops_to_fraud", "age")
    with pytest.raises(SimulationInputError) as info:
        simulate(stricter, current, table)
    err = info.value
    assert err.code == "simulation_missing_features" and err.field == "applications"
    assert "2 feature column(s)" in err.message
    assert "age (read by current 2026.11.5, candidate 2026.11.5-strict)" in err.message
    assert "graph_hops_to_fraud" in err.message
    # a column only the candidate reads is reported as the candidate's
    only_current = variant("no-graph", lambda d: d.update(rules=[r for r in d["rules"] if "graph" not in r["when"]]))
    with pytest.raises(SimulationInputError, match=r"graph_hops_to_fraud \(read by candidate 2026.11.5\)"):
        simulate(current, only_current, history_frame(50, seed=1).drop("graph_hops_to_fraud"))
    # extra columns are ignored
    extra = history_frame(50, seed=1).with_columns(pl.lit("x").alias("unrelated"), pl.lit(1).alias("score"))
    assert simulate(current, current, extra).rows == 50


def test_chunking_gives_the_same_answer(
    current: CompiledPolicy, mixed: CompiledPolicy, history: pl.DataFrame, tmp_path: Path
) -> None:
    whole = simulate(mixed, current, history, segment_columns=["channel"], chunk_rows=1_000_000)
    seen: list[tuple[int, int]] = []
    chunked = simulate(
        mixed,
        current,
        history,
        segment_columns=["channel"],
        chunk_rows=333,
        on_progress=lambda a, b: seen.append((a, b)),
    )
    assert whole.chunks == 1 and chunked.chunks == math.ceil(history.height / 333)
    assert seen == [(min(333 * (i + 1), history.height), history.height) for i in range(chunked.chunks)]
    assert_same(whole, chunked)
    assert whole.swaps is not None and chunked.swaps is not None
    assert whole.swaps.equals(chunked.swaps)

    # a lazy table (a parquet scan) is chunked the same way
    path = tmp_path / "history.parquet"
    history.write_parquet(path)
    lazy = simulate(mixed, current, pl.scan_parquet(path), segment_columns=["channel"], chunk_rows=1000)
    assert lazy.chunks == 4
    assert_same(whole, lazy)

    one_row_chunks = simulate(mixed, current, history.head(60), chunk_rows=1)
    assert one_row_chunks.chunks == 60
    assert_same(simulate(mixed, current, history.head(60)), one_row_chunks)


def assert_same(a: SimulationReport, b: SimulationReport) -> None:
    """Equal but for timing and chunk count; float sums up to rounding in the last places."""

    def strip(d: Any) -> Any:
        if isinstance(d, dict):
            return {k: strip(v) for k, v in d.items() if k not in ("seconds", "chunks")}
        if isinstance(d, list):
            return [strip(v) for v in d]
        if isinstance(d, float):
            return pytest.approx(d, rel=1e-12)
        return d

    assert strip(b.as_dict()) == strip(a.as_dict())


def test_reports_carry_the_key_figures(
    current: CompiledPolicy, stricter: CompiledPolicy, history: pl.DataFrame
) -> None:
    report = simulate(stricter, current, history, segment_columns=["channel"])
    cur, cand = report.current, report.candidate
    assert cur.approval_rate is not None and cand.approval_rate is not None
    figures = [
        f"{100 * cur.approval_rate:.2f}%",
        f"{100 * cand.approval_rate:.2f}%",
        f"{100 * (cand.approval_rate - cur.approval_rate):+.2f} pp",
        f"{report.swap_out.rows:,}",
        f"{cur.expected_loss:,.0f}",
        f"{cand.limit_exposure:,.0f}",
        f"{100 * (cand.realised_bad_rate or 0):.2f}%",
        "2026.11.5-strict",
        "SCORE_DEBT_BURDEN",
        "partner",
    ]
    md = report.markdown()
    page = report.html()
    for text in figures:
        assert text in md, text
        assert text in page, text
    assert "| approval rate | " in md and "## Swap sets" in md and "## Segment: channel" in md
    assert "placeholder" in md

    # self-contained: inline SVG charts, no scripts, no external references
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 4  # outcome mix, two score histograms, approval by channel
    for caption in ("Outcome mix", "Score distribution, current", "Score distribution, candidate", "by channel"):
        assert caption in page
    assert not re.search(r"<script|https?://|\bsrc=|<link|@import|url\(", page)
    assert page.count("<table>") == len(report.tables())

    data = report.as_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text)["candidate"]["approved"] == cand.approved
    assert data["swap_out"]["rows"] == report.swap_out.rows and data["swap_in"]["rows"] == 0
    assert data["segments"]["channel"][0]["current"]["approved"] == report.segments["channel"][0].approved_current


def test_empty_table(current: CompiledPolicy, history: pl.DataFrame) -> None:
    report = simulate(current, current, history.head(0), segment_columns=["channel"])
    assert report.rows == 0 and report.chunks == 0
    assert report.current.approval_rate is None and report.swap_in.rows == 0
    json.dumps(report.as_dict(), allow_nan=False)
    assert "<svg" in report.html() and "| applications | 0 | 0 |" in report.markdown()


def test_swap_rows_carry_the_id_column(current: CompiledPolicy, stricter: CompiledPolicy) -> None:
    table = history_frame(1000, seed=3).with_row_index("application_id", offset=5000)
    report = simulate(stricter, current, table, id_column="application_id", chunk_rows=400)
    assert report.swaps is not None and report.swaps.height == report.swap_out.rows > 0
    assert (report.swaps["application_id"] == report.swaps["row"] + 5000).all()
    assert simulate(stricter, current, table, keep_swaps=False).swaps is None
    with pytest.raises(SimulationInputError, match="clashes with a column of the swap rows"):
        simulate(stricter, current, table.rename({"application_id": "row"}), id_column="row")


def test_expected_pd_mapping() -> None:
    assert expected_pd(600) == pytest.approx(1 / (1 + PD_BASE_ODDS))
    assert expected_pd(640) == pytest.approx(1 / 41)
    assert expected_pd(560) == pytest.approx(1 / 11)
    scores = [300.0 + 5 * i for i in range(140)]
    pds = [expected_pd(s) for s in scores]
    assert all(0 < p < 1 for p in pds)
    assert all(a > b for a, b in pairwise(pds))  # strictly decreasing in the score
    column = pl.DataFrame({"s": scores}).select(expected_pd_expr(pl.col("s"))).to_series().to_list()
    assert column == pytest.approx(pds, rel=1e-14)


# ---------------------------------------------------------------------------------------------- line review


def _line_variant(data: dict[str, Any]) -> None:
    """A candidate with a harsher line strategy: the low-behaviour cut higher, a new cut for heavy use."""
    for seg in data["lines"]["segments"]:
        if seg["id"] == "LOW_BEHAVIOUR":
            seg["when"] = "behaviour_score < 620"
    data["lines"]["segments"].insert(
        3,
        {
            "id": "HEAVY_USE",
            "when": "line_utilisation >= 0.9",
            "action": "freeze",
            "reason": "LINE_HIGH_UTILISATION",
        },
    )


def test_line_review_re_run_matches_reviewing_each_line_one_by_one(current: CompiledPolicy) -> None:
    """--lines: both policies' line strategies over the same portfolio, the figures those of review_row per line."""
    import datetime as dt

    from fengkong.lines.strategy import line_strategy
    from fengkong.simulate.portfolio import AS_OF, portfolio_frame

    candidate = variant("2026.11.5-lines", _line_variant)
    lines = portfolio_frame(1500, seed=11)
    report = simulate(candidate, current, history_frame(300, seed=2), lines=lines, as_of=AS_OF)
    assert report.lines is not None
    for role, policy in (("current", current), ("candidate", candidate)):
        strategy = line_strategy(policy)
        actions: Counter[str] = Counter()
        by_reason: Counter[tuple[str, str]] = Counter()
        for row in lines.to_dicts():
            out = strategy.review_row(row, AS_OF)
            actions[out["action"]] += 1
            by_reason.update((out["action"], r) for r in out["reasons"])
        got = report.lines[role]
        assert got["policy_version"] == policy.version
        assert {a: n for a, n in got["actions"].items() if n} == dict(actions)
        assert {(a, r): n for a, by in got["reasons"].items() for r, n in by.items()} == dict(by_reason)
    cur, cand = report.lines["current"], report.lines["candidate"]
    assert cand["actions"]["freeze"] > cur["actions"]["freeze"]  # the new heavy-use cut freezes more lines
    assert report.lines["lines_with_a_different_action"] > 0
    assert cand["outcomes"]["restricted_good"] >= cur["outcomes"]["restricted_good"]  # bad_next_12m was read

    md, page, data = report.markdown(), report.html(), report.as_dict()
    assert f"## Line review as of {AS_OF.isoformat()}" in md and "## Line actions by reason" in md
    freeze_high = cand["reasons"]["freeze"]["LINE_HIGH_UTILISATION"]
    assert f"| freeze | LINE_HIGH_UTILISATION | {cur['reasons']['freeze'].get('LINE_HIGH_UTILISATION', 0):,} |" in md
    assert f"{freeze_high:,}" in page and "Line review actions" in page
    assert page.count("<svg") == 4  # outcome mix, two score histograms and the line actions
    assert json.loads(json.dumps(data, allow_nan=False))["lines"]["candidate"]["actions"] == cand["actions"]

    # the review date matters: as of a later day more frozen lines are due for review
    later = simulate(candidate, current, history_frame(50, seed=2), lines=lines, as_of=AS_OF + dt.timedelta(days=40))
    assert later.lines is not None and later.lines["as_of"] == (AS_OF + dt.timedelta(days=40)).isoformat()


def test_a_lines_table_missing_columns_is_refused_before_any_work(current: CompiledPolicy) -> None:
    from fengkong.simulate.portfolio import portfolio_frame

    seen: list[int] = []
    lines = portfolio_frame(50).drop("outstanding", "line_days_past_due")
    with pytest.raises(SimulationInputError) as info:
        simulate(current, current, history_frame(50), lines=lines, on_progress=lambda a, _b: seen.append(a))
    assert (info.value.code, info.value.field) == ("simulation_missing_line_columns", "lines")
    assert "outstanding (read by current 2026.11.5, candidate 2026.11.5)" in info.value.message
    assert "line_days_past_due" in info.value.message
    assert seen == []  # refused before the applications were decided
