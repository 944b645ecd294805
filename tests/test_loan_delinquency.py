"""Days past due, buckets and roll rates as of any date: month ends, leap days, cures, partial payments; the
one-loan Python path and the columnar book path give the same answers."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fengkong.loans.delinquency import bucket_of, dpd_frame, loan_dpd, loan_max_dpd, roll_rates

D = dt.date


def test_buckets_at_their_edges() -> None:
    assert [bucket_of(d) for d in (0, 1, 30, 31, 60, 61, 90, 91, 400)] == [
        "current", "M1", "M1", "M2", "M2", "M3", "M3", "M3+", "M3+",
    ]  # fmt: skip


def test_dpd_at_month_ends() -> None:
    unpaid = [(D(2026, 1, 31), None), (D(2026, 2, 28), None), (D(2026, 3, 31), None)]
    assert loan_dpd(unpaid, D(2026, 1, 31)) == 0  # due today is not past due
    assert loan_dpd(unpaid, D(2026, 2, 1)) == 1
    assert loan_dpd(unpaid, D(2026, 2, 28)) == 28
    assert loan_dpd(unpaid, D(2026, 3, 2)) == 30
    assert loan_dpd(unpaid, D(2026, 3, 3)) == 31  # M2: counted from the oldest unpaid instalment
    assert loan_dpd(unpaid, D(2026, 4, 30)) == 89


def test_dpd_on_leap_days() -> None:
    # a loan started 2027-12-31: due 2028-01-31, then 2028-02-29 (clamped to the leap month's end)
    unpaid = [(D(2028, 1, 31), None), (D(2028, 2, 29), None)]
    assert loan_dpd(unpaid, D(2028, 2, 29)) == 29
    assert loan_dpd(unpaid, D(2028, 3, 1)) == 30
    assert bucket_of(loan_dpd(unpaid, D(2028, 3, 1))) == "M1"
    assert loan_dpd(unpaid, D(2028, 3, 2)) == 31
    # paid on the leap day itself: current from that day on, history kept before it
    paid = [(D(2028, 1, 31), D(2028, 2, 29)), (D(2028, 2, 29), D(2028, 2, 29))]
    assert loan_dpd(paid, D(2028, 2, 28)) == 28
    assert loan_dpd(paid, D(2028, 2, 29)) == 0
    assert loan_max_dpd(paid, D(2028, 6, 1)) == 29


def test_a_cure_and_a_partial_payment() -> None:
    # instalment 1 paid late (cured on 3 March), instalment 2 only partly paid (no paid_on)
    rows = [(D(2026, 1, 31), D(2026, 3, 3)), (D(2026, 2, 28), None)]
    assert loan_dpd(rows, D(2026, 3, 2)) == 30
    assert loan_dpd(rows, D(2026, 3, 3)) == 3  # the cure moves DPD to the next unpaid instalment
    assert loan_max_dpd(rows, D(2026, 3, 3)) == 31
    assert loan_dpd(rows, D(2026, 5, 1)) == 62


def _frames(loans: list[dict[str, Any]], inst: list[dict[str, Any]]) -> tuple[pl.DataFrame, pl.DataFrame]:
    lf = pl.DataFrame(
        loans,
        schema={
            "loan_id": pl.String,
            "customer_id": pl.String,
            "start_date": pl.Date,
            "status": pl.String,
            "status_on": pl.Date,
        },
    )
    inf = pl.DataFrame(inst, schema={"loan_id": pl.String, "period": pl.Int32, "due_date": pl.Date, "paid_on": pl.Date})
    return lf, inf


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 400), st.lists(st.one_of(st.none(), st.integers(-5, 200)), min_size=1, max_size=8)),
        min_size=1,
        max_size=12,
    ),
    st.integers(0, 700),
)
def test_columnar_dpd_equals_the_one_loan_path(book: list[tuple[int, list[int | None]]], as_of_days: int) -> None:
    base = D(2027, 12, 31)
    as_of = base + dt.timedelta(days=as_of_days)
    loans, inst, expected = [], [], {}
    for n, (start_days, delays) in enumerate(book):
        loan_id = f"L{n}"
        start = base + dt.timedelta(days=start_days)
        pairs = []
        for period, delay in enumerate(delays, start=1):
            due = start + dt.timedelta(days=30 * period)
            paid = None if delay is None else due + dt.timedelta(days=delay)
            pairs.append((due, paid))
            inst.append({"loan_id": loan_id, "period": period, "due_date": due, "paid_on": paid})
        loans.append(
            {"loan_id": loan_id, "customer_id": "c", "start_date": start, "status": "active", "status_on": None}
        )
        if start <= as_of:
            expected[loan_id] = (loan_dpd(pairs, as_of), loan_max_dpd(pairs, as_of))
    lf, inf = _frames(loans, inst)
    got = dpd_frame(inf, lf, as_of).collect()
    assert {r["loan_id"]: (r["dpd"], r["max_dpd"]) for r in got.iter_rows(named=True)} == expected
    assert all(r["bucket"] == bucket_of(r["dpd"]) for r in got.iter_rows(named=True))


def test_roll_rates_matrix() -> None:
    loans = [
        {"loan_id": "a", "customer_id": "1", "start_date": D(2026, 1, 1), "status": "active", "status_on": None},
        {"loan_id": "b", "customer_id": "2", "start_date": D(2026, 1, 1), "status": "active", "status_on": None},
        {"loan_id": "c", "customer_id": "3", "start_date": D(2026, 1, 1), "status": "paid_off",
         "status_on": D(2026, 4, 1)},
        {"loan_id": "d", "customer_id": "4", "start_date": D(2026, 1, 1), "status": "active", "status_on": None},
        {"loan_id": "e", "customer_id": "5", "start_date": D(2026, 4, 1), "status": "active", "status_on": None},
    ]  # fmt: skip
    inst = [
        # a: current in March, misses April's instalment → M1 on 15 April
        {"loan_id": "a", "period": 1, "due_date": D(2026, 3, 1), "paid_on": D(2026, 3, 1)},
        {"loan_id": "a", "period": 2, "due_date": D(2026, 4, 1), "paid_on": None},
        # b: M1 on 15 March, still unpaid → M2 on 15 April
        {"loan_id": "b", "period": 1, "due_date": D(2026, 3, 1), "paid_on": None},
        # c: M1 on 15 March, paid off on 1 April → left the book
        {"loan_id": "c", "period": 1, "due_date": D(2026, 3, 1), "paid_on": D(2026, 4, 1)},
        # d: M1 on 15 March, cured on 20 March → current
        {"loan_id": "d", "period": 1, "due_date": D(2026, 3, 1), "paid_on": D(2026, 3, 20)},
        # e: not on book on 15 March: not in the matrix
        {"loan_id": "e", "period": 1, "due_date": D(2026, 5, 1), "paid_on": None},
    ]
    lf, inf = _frames(loans, inst)
    rates = roll_rates(inf, lf, D(2026, 3, 15), D(2026, 4, 15))
    assert rates.counts["current"] == {"current": 0, "M1": 1, "M2": 0, "M3": 0, "M3+": 0, "paid_off": 0, "closed": 0}
    assert rates.counts["M1"] == {"current": 1, "M1": 0, "M2": 1, "M3": 0, "M3+": 0, "paid_off": 1, "closed": 0}
    assert rates.rates["M1"]["M2"] == pytest.approx(1 / 3)
    assert rates.as_dict()["loans"] == 4


# ------------------------------------------------------------------------------------------ on the store


def test_stored_loan_dpd_through_a_leap_year(engine: Any) -> None:
    """A loan started 2027-12-31 (first due 2028-01-31, then 2028-02-29): missed, partly paid, cured."""
    engine.loans.clock = lambda: dt.datetime(2028, 12, 31, 4, tzinfo=dt.UTC)
    loan = engine.loans.open_loan("cust-leap", "3000", "0.12", 3, "equal_principal", D(2027, 12, 31))
    lid = loan["loan_id"]
    assert [i["due_date"] for i in loan["instalments"]] == ["2028-01-31", "2028-02-29", "2028-03-31"]
    assert engine.loans.get(lid, D(2028, 2, 29))["dpd"] == 29
    assert engine.loans.get(lid, D(2028, 3, 1))["bucket"] == "M1"
    # a partial payment on 2 March: instalment 1 (1000 + 30 interest + penalty) is not fully paid: still past due
    engine.loans.repay(lid, "leap-1", "500", D(2028, 3, 2))
    view = engine.loans.get(lid, D(2028, 3, 2))
    assert (view["dpd"], view["bucket"]) == (31, "M2")
    # paying the rest of what is due on 3 March cures instalment 1; instalment 2 (due the leap day) is 3 days late
    due = engine.loans.get(lid, D(2028, 3, 3))["outstanding"]["due_by_as_of"]
    first = engine.loans.get(lid, D(2028, 3, 3))["instalments"][0]
    owed_first = first["payment"] + first["penalty"] - first["principal_paid"] - first["interest_paid"]
    owed_first -= first["penalty_paid"]
    engine.loans.repay(lid, "leap-2", f"{owed_first:.2f}", D(2028, 3, 3))
    assert engine.loans.get(lid, D(2028, 3, 3))["dpd"] == 3
    assert engine.loans.get(lid, D(2028, 3, 2))["dpd"] == 31  # history is kept: as of the day before
    engine.loans.repay(lid, "leap-3", f"{due - owed_first:.2f}", D(2028, 3, 3))
    view = engine.loans.get(lid, D(2028, 3, 3))
    assert (view["dpd"], view["bucket"], view["max_dpd"]) == (0, "current", 32)
    table = engine.loans.dpd_table(D(2028, 3, 2))
    assert table.filter(pl.col("loan_id") == lid)["dpd"].to_list() == [31]
    summary = engine.loans.delinquency(D(2028, 3, 2))
    assert {b["bucket"]: b["loans"] for b in summary["buckets"]}["M2"] == 1
