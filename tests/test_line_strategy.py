"""The line strategy as a pure function: columnar and row evaluators agree, guardrails hold, reports count right."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fengkong.lines.review import summarise
from fengkong.lines.strategy import LINE_COLUMNS, LineStrategy, _round_down, line_strategy
from fengkong.policy.errors import PolicyError
from fengkong.policy.loader import DEFAULT_POLICY_PATH, load_default_policy, load_policy_text
from fengkong.simulate.portfolio import portfolio_frame

AS_OF = dt.date(2026, 11, 23)
POLICY = load_default_policy()
STRATEGY = line_strategy(POLICY)
G = POLICY.spec.lines.guardrails


def line(**changes: Any) -> dict[str, Any]:
    """An active, well-behaved line; ``changes`` override columns."""
    row: dict[str, Any] = {
        "line_id": "L1",
        "customer_id": "C1",
        "status": "active",
        "limit": 10_000.0,
        "outstanding": 6_000.0,
        "review_due_on": None,
        "last_increase_on": None,
        "decreases_in_window": 0,
        "ever_restricted": False,
        "line_months_on_book": 12.0,
        "line_days_past_due": 0.0,
        "line_max_dpd_12m": 0.0,
        "line_missed_payments_12m": 0.0,
        "line_inquiries_growth": 0.0,
        "line_income_change": 0.05,
        "line_risk_events_30d": 0.0,
    }
    row.update(changes)
    return row


def both(*rows: dict[str, Any]) -> list[dict[str, Any]]:
    """Review rows with both evaluators, assert they agree, return the columnar answers."""
    frame = pl.DataFrame(
        list(rows),
        schema={**LINE_COLUMNS, **{k: pl.Float64 for k in rows[0] if k.startswith("line_") and k != "line_id"}},
    )
    columnar = STRATEGY.review_frame(frame, AS_OF).to_dicts()
    for r, c in zip(rows, columnar, strict=True):
        assert STRATEGY.review_row(r, AS_OF) == c
    return columnar


# ------------------------------------------------------------------------------------------ parity


def test_columnar_equals_row_on_a_synthetic_portfolio() -> None:
    frame = portfolio_frame(3000, seed=7, as_of=AS_OF)
    result = STRATEGY.review_frame(frame, AS_OF)
    assert result.schema == pl.Schema(
        {k: v for k, v in __import__("fengkong.lines.strategy", fromlist=["x"]).OUTPUT_SCHEMA.items()}
    )
    for row, got in zip(frame.to_dicts(), result.to_dicts(), strict=True):
        assert STRATEGY.review_row(row, AS_OF) == got
    # the portfolio exercises every kind of outcome
    assert set(result["action"]) >= {"increase", "keep", "decrease", "freeze", "unfreeze", "close", "skip"}
    assert set(result["blocked_by"].drop_nulls()) >= {"increase_cooling_off", "max_decreases"}


_num = st.one_of(st.none(), st.floats(-5, 200, allow_nan=False), st.sampled_from([0.0, 6.0, 15.0, 60.0]))


@st.composite
def lines_(draw: st.DrawFn) -> dict[str, Any]:
    limit = draw(st.sampled_from([0.0, 100.0, 1000.0, 9_950.0, 10_000.0, 180_000.0, 200_000.0]))
    return line(
        status=draw(st.sampled_from(["active", "active", "frozen", "closed"])),
        limit=limit,
        outstanding=draw(st.sampled_from([0.0, limit * 0.5, limit * 0.95, limit])),
        review_due_on=draw(st.one_of(st.none(), st.dates(AS_OF - dt.timedelta(5), AS_OF + dt.timedelta(5)))),
        last_increase_on=draw(st.one_of(st.none(), st.dates(AS_OF - dt.timedelta(200), AS_OF))),
        decreases_in_window=draw(st.integers(0, 3)),
        ever_restricted=draw(st.booleans()),
        line_months_on_book=draw(_num),
        line_days_past_due=draw(_num),
        line_max_dpd_12m=draw(_num),
        line_inquiries_growth=draw(_num),
        line_income_change=draw(st.one_of(st.none(), st.floats(-1, 1, allow_nan=False))),
        line_risk_events_30d=draw(st.one_of(st.none(), st.sampled_from([0.0, 1.0]))),
        line_utilisation=None,
    )


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(lines_(), min_size=1, max_size=8))
def test_columnar_equals_row_on_generated_lines(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        r.pop("line_utilisation")
    both(*rows)


# ------------------------------------------------------------------------------------------ meaning


def test_segments_first_match_wins_with_reasons() -> None:
    severe, late, risky, good = both(
        line(line_days_past_due=75.0),
        line(line_days_past_due=20.0),
        line(line_risk_events_30d=1.0),
        line(),
    )
    assert (severe["action"], severe["new_status"], severe["reasons"][0]) == (
        "close",
        "closed",
        "LINE_SEVERE_DELINQUENCY",
    )
    assert (late["action"], late["new_status"]) == ("freeze", "frozen")
    assert late["review_due_on"] == AS_OF + dt.timedelta(days=G.freeze_review_days)
    assert late["reasons"][0] == "LINE_DELINQUENT" and late["first_time"] is True
    assert risky["reasons"][0] == "LINE_RISK_EVENTS"
    # a good line, well used, six months or more on book: raised by 20 %, rounded down to the policy's rounding
    assert (good["action"], good["new_limit"], good["reasons"]) == ("increase", 12_000.0, ["LINE_GOOD_BEHAVIOUR"])
    assert good["first_time"] is False  # an increase is not a restriction


def test_guardrails_hold_back_changes_and_say_which() -> None:
    recent = AS_OF - dt.timedelta(days=G.increase_cooling_off_days - 1)
    cooled = AS_OF - dt.timedelta(days=G.increase_cooling_off_days)
    a, b, c, d, e = both(
        line(last_increase_on=recent),  # would be raised, but was raised recently
        line(last_increase_on=cooled),  # the cooling-off is over on its last day
        line(line_inquiries_growth=8.0, decreases_in_window=G.max_decreases),  # would be cut: too many cuts
        line(line_inquiries_growth=8.0, outstanding=9_950.0),  # cut to 7,000 but owes 9,950: floor holds
        line(limit=200_000.0, outstanding=150_000.0),  # already at the policy's maximum limit
    )
    assert (a["action"], a["blocked_by"], a["new_limit"]) == ("keep", "increase_cooling_off", 10_000.0)
    assert (b["action"], b["blocked_by"]) == ("increase", None)
    assert (c["action"], c["blocked_by"], c["reasons"]) == ("keep", "max_decreases", [])
    assert (d["action"], d["blocked_by"], d["new_limit"]) == ("decrease", None, 9_950.0)
    assert (e["action"], e["blocked_by"]) == ("keep", "max_limit")
    # the limit never drops below what is owed, even when the cut would go further
    (f,) = both(line(line_inquiries_growth=8.0, outstanding=10_000.0))
    assert (f["action"], f["blocked_by"], f["new_limit"]) == ("keep", "outstanding_floor", 10_000.0)


def test_frozen_lines_are_reviewed_by_their_date_and_closed_lines_never() -> None:
    due, not_due, still_bad, closed = both(
        line(status="frozen", review_due_on=AS_OF, ever_restricted=True),
        line(status="frozen", review_due_on=AS_OF + dt.timedelta(days=1), ever_restricted=True),
        line(status="frozen", review_due_on=AS_OF, line_days_past_due=20.0, ever_restricted=True),
        line(status="closed", line_days_past_due=90.0),
    )
    assert (due["action"], due["new_status"], due["reasons"]) == ("unfreeze", "active", ["LINE_REVIEW_CLEARED"])
    assert (not_due["action"], not_due["behaviour_score"]) == ("skip", None)
    assert (still_bad["action"], still_bad["new_status"]) == ("freeze", "frozen")
    assert still_bad["first_time"] is False
    assert closed["action"] == "skip"


def test_adverse_actions_carry_the_behaviour_scores_reasons() -> None:
    (low,) = both(line(line_max_dpd_12m=40.0, line_utilisation=None, outstanding=9_900.0, line_months_on_book=2.0))
    assert low["action"] == "decrease" and low["reasons"][0] == "LINE_LOW_BEHAVIOUR_SCORE"
    assert "LINE_DELINQUENT" in low["reasons"] and len(low["reasons"]) == len(set(low["reasons"]))


def test_a_table_missing_a_column_is_refused_by_name() -> None:
    frame = portfolio_frame(10).drop("line_inquiries_growth")
    with pytest.raises(Exception) as err:
        STRATEGY.review_frame(frame, AS_OF)
    assert getattr(err.value, "field", None) == "line_inquiries_growth"


# ------------------------------------------------------------------------------------------ report


def test_report_counts_actions_exposure_and_over_restriction() -> None:
    frame = portfolio_frame(5000, seed=3, as_of=AS_OF)
    result = STRATEGY.review_frame(frame, AS_OF)
    report = summarise(result, POLICY.version, AS_OF, frame.select("line_id", pl.col("bad_next_12m").alias("bad")))
    assert sum(report.actions.values()) == 5000
    assert report.actions["freeze"] == result.filter(pl.col("action") == "freeze").height
    assert report.reasons["increase"] == {"LINE_GOOD_BEHAVIOUR": report.actions["increase"]}
    live = result.filter(pl.col("status") != "closed")
    assert report.limit_before == pytest.approx(live["limit"].sum())
    restricted = result.join(frame, on="line_id").filter(pl.col("action").is_in(["decrease", "freeze", "close"]))
    o = report.outcomes
    assert o is not None
    assert o.restricted == restricted.height
    assert o.restricted_good == restricted.filter(pl.col("bad_next_12m") == 0).height > 0
    assert o.restricted_bad + o.restricted_good == o.restricted
    assert o.bad_total == int(frame["bad_next_12m"].sum())
    # the restricted lines really are riskier than the rest: the strategy is not random
    assert o.restricted_bad / o.restricted > o.bad_total / 5000
    md = report.markdown()
    assert "later performed well" in md and f"{o.restricted_good:,}" in md


# ------------------------------------------------------------------------------------------ loading


SEG = "lines:\n  segments:\n    - {{id: A, when: {}}}\n"


def _with_lines(block: str) -> str:
    text = DEFAULT_POLICY_PATH.read_text()
    head = text[: text.index("\nlines:")]
    return head + "\n" + block


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (
            SEG.format("line_days_pst_due > 3, action: freeze, reason: LINE_DELINQUENT"),
            "line_days_past_due",
        ),
        ("lines:\n  segments:\n    - {id: A, when: line_days_past_due > 3, action: freeze, reason: NOPE}\n", "NOPE"),
        (
            SEG.format("line_days_past_due > 3, action: decrease, reason: LINE_DELINQUENT"),
            "change",
        ),
        ("lines:\n  behaviour_scorecard: missing@9\n", "missing@9"),
        (
            "lines:\n  drawdowns:\n    rules:\n"
            "      - {id: D, when: drawdown_amt > 3, action: review, reason: SCAM_VICTIM_SUSPECTED}\n",
            "drawdown_amount",
        ),
        ("lines:\n  drawdowns: {terms: [0]}\n", "terms"),
        ("lines:\n  guardrails: {max_decreases: -1}\n", "max_decreases"),
    ],
)
def test_a_bad_line_strategy_is_refused_at_load(block: str, message: str) -> None:
    with pytest.raises(PolicyError) as err:
        load_policy_text(_with_lines(block))
    assert message in str(err.value)
    assert any(p.where.startswith("lines") for p in err.value.problems)


def test_a_policy_without_a_lines_section_keeps_every_line() -> None:
    policy = load_policy_text(_with_lines(""))
    strategy = LineStrategy(policy.version, [], policy.spec.lines.guardrails, None, 100, policy.features)
    result = strategy.review_frame(portfolio_frame(200), AS_OF)
    assert set(result["action"]) <= {"keep", "skip", "unfreeze"}


def test_policy_simulate_with_lines_compares_both_strategies(tmp_path: Any) -> None:
    import json

    from typer.testing import CliRunner

    from fengkong.cli import app
    from fengkong.simulate.history import history_frame

    lines = portfolio_frame(4000, seed=5, as_of=AS_OF)
    lines.write_parquet(tmp_path / "lines.parquet")
    history_frame(2000, seed=1).write_parquet(tmp_path / "apps.parquet")
    stricter = DEFAULT_POLICY_PATH.read_text().replace('version: "2026.11.5"', 'version: "2026.11.5-strict"')
    stricter = stricter.replace("when: behaviour_score < 560", "when: behaviour_score < 640")
    (tmp_path / "strict.yaml").write_text(stricter)
    url = f"sqlite:///{tmp_path / 'fk.db'}"
    r = CliRunner().invoke(
        app,
        [
            "policy", "simulate", str(tmp_path / "strict.yaml"), "--against", str(DEFAULT_POLICY_PATH),
            "--applications", str(tmp_path / "apps.parquet"), "--lines", str(tmp_path / "lines.parquet"),
            "--as-of", AS_OF.isoformat(), "--json", "--database-url", url,
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    cmp = json.loads(r.output)["lines"]
    cand, curr = cmp["candidate"], cmp["current"]
    # the stricter cut-off cuts more lines, and hurts more lines that later performed well
    want_c = STRATEGY.review_frame(lines, AS_OF)
    assert curr["actions"]["decrease"] == want_c.filter(pl.col("action") == "decrease").height
    assert cand["actions"]["decrease"] > curr["actions"]["decrease"]
    assert cand["outcomes"]["restricted_good"] > curr["outcomes"]["restricted_good"]
    assert cmp["lines_with_a_different_action"] > 0
    assert {k: cmp["moves"][0][k] for k in ("from", "to")} == {"from": "keep", "to": "decrease"}
    r = CliRunner().invoke(
        app,
        [
            "policy", "simulate", str(tmp_path / "strict.yaml"), "--against", str(DEFAULT_POLICY_PATH),
            "--applications", str(tmp_path / "apps.parquet"), "--lines", str(tmp_path / "nope.parquet"),
            "--database-url", url,
        ],
    )  # fmt: skip
    assert r.exit_code == 1 and "nope.parquet" in r.output


def test_limits_round_down_to_the_step_without_floating_point_drift() -> None:
    # 11,000 × 0.7 is 7,699.999… in floating point: a 30 % cut must give 7,700, not 7,600
    (cut,) = both(line(limit=11_000.0, outstanding=1_000.0, line_inquiries_growth=8.0))
    assert (cut["action"], cut["new_limit"]) == ("decrease", 7_700.0)
    steps = [(lim, c) for lim in range(100, 60_000, 100) for c in (0.1, 0.15, 0.2, 0.3, 0.4, 0.5)]
    for lim, c in steps:
        want_down = (lim * (100 - round(c * 100))) // 10_000 * 100  # exact integer arithmetic
        assert _round_down(lim * (1 - c), 100) == want_down, (lim, c)
