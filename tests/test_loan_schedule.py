"""Repayment schedules against figures computed independently here (closed formulas with exact fractions, and
figures Chinese lenders publish), plus the CLI contract `fengkong loan schedule`."""

from __future__ import annotations

import datetime as dt
import json
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fengkong.cli import app
from fengkong.errors import FengkongError
from fengkong.loans.schedule import add_months, build_schedule

D = Decimal


def cents(x: Fraction | float) -> Decimal:
    """Round an exact value half-up to 0.01, independently of the code under test."""
    return (D(Fraction(x).numerator) / D(Fraction(x).denominator)).quantize(D("0.01"), rounding=ROUND_HALF_UP)


def annuity(p: Fraction, apr: Fraction, n: int) -> Fraction:
    """numpy_financial.pmt, written out: P·r / (1 − (1+r)^−n), exactly."""
    r = apr / 12
    return p * r / (1 - (1 + r) ** -n)


# ------------------------------------------------------------------------------------------ equal instalment


def test_equal_instalment_10000_at_12_percent_over_12_months_is_888_49() -> None:
    rows = build_schedule("10000", "0.12", 12, "equal_instalment", dt.date(2026, 1, 15))
    assert [r.payment for r in rows[:11]] == [D("888.49")] * 11
    assert rows[0].interest == D("100.00") and rows[0].principal == D("788.49")
    assert rows[-1].balance == 0
    assert sum(r.principal for r in rows) == D("10000.00")  # exactly, the last absorbing the rounding
    assert rows[-1].payment == D("888.47")  # the last instalment carries the rounding difference
    assert sum(r.interest for r in rows) == D("661.86")


def test_equal_instalment_one_million_at_4_9_percent_over_30_years_is_5307_27() -> None:
    # the figure every Chinese mortgage calculator gives for 100万 at the 4.9 % benchmark rate over 30 years
    rows = build_schedule("1000000", "0.049", 360, "equal_instalment", dt.date(2026, 3, 1))
    assert rows[0].payment == D("5307.27")
    assert rows[0].interest == D("4083.33")
    assert sum(r.principal for r in rows) == D("1000000.00")
    # each month's rounding (payment and interest, at most a fen) compounds at the loan's rate until the end
    r = 0.049 / 12
    bound = 0.01 * ((1 + r) ** 360 - 1) / r
    assert abs(float(rows[-1].payment) - 5307.27) < bound


@pytest.mark.parametrize(
    ("principal", "apr", "term"),
    [("50000", "0.108", 24), ("3000", "0.18", 6), ("7777.77", "0.2399", 36), ("100", "0.036", 1)],
)
def test_equal_instalment_matches_the_closed_formula(principal: str, apr: str, term: int) -> None:
    rows = build_schedule(principal, apr, term, "equal_instalment", dt.date(2026, 5, 20))
    payment = cents(annuity(Fraction(principal), Fraction(apr), term))
    assert all(r.payment == payment for r in rows[:-1])
    balance = Fraction(principal)
    for r in rows:  # each month's interest is the month's rate on the balance before it, rounded half-up
        assert r.interest == cents(balance * Fraction(apr) / 12)
        balance -= Fraction(r.principal)
    assert balance == 0


def test_zero_apr_splits_the_principal_and_the_last_takes_the_cent() -> None:
    rows = build_schedule("1000", "0", 3, "equal_instalment", dt.date(2026, 1, 1))
    assert [r.payment for r in rows] == [D("333.33"), D("333.33"), D("333.34")]
    assert all(r.interest == 0 for r in rows)


# ------------------------------------------------------------------------------------------ equal principal


def test_equal_principal_known_figures() -> None:
    # 100万, 4.9 %, 30 years, 等额本金: first month 2777.78 + 4083.33 = 6861.11, then 11.34 less each month
    rows = build_schedule("1000000", "0.049", 360, "equal_principal", dt.date(2026, 3, 1))
    assert rows[0].payment == D("6861.11")
    assert rows[1].payment == D("6849.77")
    assert sum(r.principal for r in rows) == D("1000000.00")
    assert rows[-1].principal == D("1000000.00") - 359 * D("2777.78")  # the last absorbs the rounding
    exact_interest = Fraction(1_000_000) * Fraction("0.049") / 12 * Fraction(361, 2)  # P·r·(n+1)/2
    assert abs(Fraction(sum(r.interest for r in rows)) - exact_interest) < Fraction(360, 100)


def test_equal_principal_small_case_exactly() -> None:
    rows = build_schedule("120000", "0.06", 12, "equal_principal", dt.date(2026, 1, 10))
    assert [r.principal for r in rows] == [D("10000.00")] * 12
    assert [r.interest for r in rows] == [D(600 - 50 * i) for i in range(12)]
    assert sum(r.interest for r in rows) == D("3900.00")  # P·r·(n+1)/2


# ------------------------------------------------------------------------------------------ interest only


def test_interest_only_then_principal() -> None:
    rows = build_schedule("10000", "0.12", 6, "interest_only", dt.date(2026, 1, 10))
    assert [r.payment for r in rows] == [D("100.00")] * 5 + [D("10100.00")]
    assert [r.balance for r in rows] == [D("10000.00")] * 5 + [D("0.00")]


# ------------------------------------------------------------------------------------------ due dates


def test_due_dates_clamp_to_month_end_and_count_from_the_start() -> None:
    rows = build_schedule("1200", "0.12", 4, "equal_principal", dt.date(2026, 1, 31))
    assert [r.due_date for r in rows] == [
        dt.date(2026, 2, 28),
        dt.date(2026, 3, 31),  # not the 28th: each date is counted from the start, not the previous one
        dt.date(2026, 4, 30),
        dt.date(2026, 5, 31),
    ]
    leap = build_schedule("1200", "0.12", 2, "equal_principal", dt.date(2028, 1, 31))
    assert leap[0].due_date == dt.date(2028, 2, 29)
    assert add_months(dt.date(2028, 2, 29), 12) == dt.date(2029, 2, 28)
    assert add_months(dt.date(2026, 12, 15), 1) == dt.date(2027, 1, 15)


# ------------------------------------------------------------------------------------------ properties


@settings(max_examples=150, deadline=None)
@given(
    principal_cents=st.integers(100, 10_000_000_00),
    apr_bp=st.integers(0, 3600),
    term=st.integers(1, 360),
    method=st.sampled_from(["equal_instalment", "equal_principal", "interest_only"]),
)
def test_every_schedule_sums_exactly_and_never_goes_negative(
    principal_cents: int, apr_bp: int, term: int, method: str
) -> None:
    principal = D(principal_cents) / 100
    apr = D(apr_bp) / 10000
    rows = build_schedule(principal, apr, term, method, dt.date(2027, 1, 31))
    assert len(rows) == term
    assert sum(r.principal for r in rows) == principal
    assert all(r.principal >= 0 and r.interest >= 0 and r.payment == r.principal + r.interest for r in rows)
    assert rows[-1].balance == 0
    assert all(a.balance >= b.balance for a, b in pairwise(rows))
    balance = principal
    for r in rows:
        assert r.interest == cents(Fraction(balance) * Fraction(apr) / 12)
        balance -= r.principal
    if method == "equal_instalment" and term > 1 and rows[-2].balance > 0:
        # (a principal of a few yuan over decades can be repaid before the last month by rounding alone)
        assert len({r.payment for r in rows[:-1]}) == 1


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"apr": "12"}, "apr", "0.12"),
        ({"apr": "-0.1"}, "apr", "negative"),
        ({"apr": "abc"}, "apr", "fraction"),
        ({"principal": "-5"}, "principal", "greater than 0"),
        ({"principal": "0"}, "principal", "greater than 0"),
        ({"principal": "10.005"}, "principal", "two decimals"),
        ({"principal": "nan"}, "principal", "finite"),
        ({"term": 0}, "term", "1 to 360"),
        ({"term": 361}, "term", "1 to 360"),
        ({"method": "balloon"}, "method", "equal_instalment"),
    ],
)
def test_bad_terms_are_refused_naming_the_field(kwargs: dict[str, object], field: str, words: str) -> None:
    args: dict[str, object] = {"principal": "1000", "apr": "0.12", "term": 12, "method": "equal_instalment"}
    args.update(kwargs)
    with pytest.raises(FengkongError) as caught:
        build_schedule(args["principal"], args["apr"], args["term"], args["method"], dt.date(2026, 1, 1))  # type: ignore[arg-type]
    assert caught.value.field == field
    assert words in caught.value.message


def test_a_schedule_past_the_year_9999_is_refused() -> None:
    with pytest.raises(FengkongError) as caught:
        build_schedule("1000", "0.12", 12, "equal_instalment", dt.date(9999, 6, 1))
    assert caught.value.field == "start"


def test_apr_as_percent_text_is_read_as_the_fraction() -> None:
    a = build_schedule("10000", "12%", 12, "equal_instalment", dt.date(2026, 1, 1))
    b = build_schedule("10000", "0.12", 12, "equal_instalment", dt.date(2026, 1, 1))
    assert a == b


# ------------------------------------------------------------------------------------------ CLI contract


def test_cli_schedule_json_is_the_schedule() -> None:
    result = CliRunner().invoke(
        app,
        [
            "loan", "schedule", "--principal", "10000", "--apr", "0.12", "--term", "12",
            "--method", "equal_instalment", "--start", "2026-01-31", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    rows = data["schedule"]
    assert [r["period"] for r in rows] == list(range(1, 13))
    assert rows[0] == {
        "period": 1,
        "due_date": "2026-02-28",
        "principal": 788.49,
        "interest": 100.0,
        "payment": 888.49,
        "balance": 9211.51,
    }
    assert sum(D(str(r["principal"])) for r in rows) == D("10000")
    assert data["totals"]["interest"] == 661.86
    assert "APR / 12" in data["conventions"]["day_count"] and "HALF_UP" in data["conventions"]["rounding"]


def test_cli_schedule_table_and_refusal_of_a_percentage() -> None:
    runner = CliRunner()
    table = runner.invoke(
        app, ["loan", "schedule", "--principal", "1000", "--apr", "0.12", "--term", "3", "--method", "equal_principal"]
    )
    assert table.exit_code == 0
    assert "333.33" in table.output and "balance" in table.output
    assert "day count" in table.output and "ROUND_HALF_UP" in table.output  # the conventions, printed with it
    refused = runner.invoke(
        app, ["loan", "schedule", "--principal", "1000", "--apr", "12", "--term", "3", "--method", "equal_principal"]
    )
    assert refused.exit_code == 1
    assert "0.12" in refused.output and "fraction" in refused.output
