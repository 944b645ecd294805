"""A loan's whole life across the engine: approved line → drawdown → missed payments → bucket rolls → line frozen
by review → repayment (an event) → cured, line available again → paid off."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from fengkong.errors import FengkongError

D = dt.date


def test_a_loan_from_drawdown_to_recovery(engine: Any, application: dict[str, Any]) -> None:
    engine.loans.clock = lambda: dt.datetime(2026, 12, 31, 4, tzinfo=dt.UTC)
    decision = engine.decide({**application, "customer_id": "cust-life"})
    assert decision.outcome.value == "approve"
    lines = engine.lines.for_customer("cust-life") or [engine.lines.open_from_decision(decision.decision_id, "python")]
    line_id = lines[0]["line_id"]
    limit = engine.lines.get(line_id)["limit"]

    # drawdown: the line's balance and the loan commit together
    with engine.db.begin() as conn:
        engine.lines.on_drawdown(conn, line_id, 3000.0, dt.datetime(2026, 1, 10, 2, tzinfo=dt.UTC))
        loan_id = engine.loans.open_loan_in(
            conn, "cust-life", "3000", "0.18", 3, "equal_principal", D(2026, 1, 10), line_id=line_id
        )
    assert engine.lines.get(line_id)["available"] == pytest.approx(limit - 3000)

    # missed payments: the bucket rolls current → M1 → M2
    assert engine.loans.roll_rates(D(2026, 2, 1), D(2026, 3, 1)).counts["current"]["M1"] == 1
    assert engine.loans.roll_rates(D(2026, 3, 1), D(2026, 4, 1)).counts["M1"]["M2"] == 1
    assert [q["loan_id"] for q in engine.loans.queue(D(2026, 3, 1))] == [loan_id]
    delinquency = engine.loans.line_delinquency(D(2026, 3, 1)).row(0, named=True)
    assert (delinquency["line_id"], delinquency["line_days_past_due"]) == (line_id, 19.0)

    # the line review reads the loan book and freezes the line (19 days past due)
    engine.lines.review(D(2026, 3, 1), apply=True, actor="test")
    frozen = engine.lines.get(line_id)
    assert frozen["status"] == "frozen"
    assert "LINE_DELINQUENT" in [r["code"] for r in frozen["reasons"]]
    with engine.db.begin() as conn, pytest.raises(FengkongError) as caught:
        engine.lines.on_drawdown(conn, line_id, 100.0, dt.datetime(2026, 3, 2, tzinfo=dt.UTC))
    assert caught.value.code == "line_not_active"

    # the customer repays what is due, through the events door: the loan cures, the line gets its principal back
    due = engine.loans.get(loan_id, D(2026, 3, 5))["outstanding"]["due_by_as_of"]
    engine.ingest(
        [
            {
                "type": "repayment",
                "event_id": "life-rp-1",
                "customer_id": "cust-life",
                "occurred_at": "2026-03-05T12:00:00+08:00",
                "amount": due,
                "loan_id": loan_id,
            }
        ]
    )
    cured = engine.loans.get(loan_id, D(2026, 3, 5))
    assert (cured["dpd"], cured["bucket"], cured["max_dpd"]) == (0, "current", 23)
    assert engine.lines.get(line_id)["outstanding"] == pytest.approx(2000.0)  # the first instalment's principal is back
    assert engine.loans.queue(D(2026, 3, 5)) == []

    # paid off with the last instalment: the whole line is available again
    last = engine.loans.payoff_quote(loan_id, D(2026, 4, 10))["amount"]
    engine.loans.repay(loan_id, "life-rp-2", f"{last:.2f}", D(2026, 4, 10), "prepayment")
    done = engine.loans.get(loan_id, D(2026, 4, 10))
    assert done["status"] == "paid_off"
    assert engine.lines.get(line_id)["outstanding"] == pytest.approx(0.0)
    assert engine.loans.roll_rates(D(2026, 3, 1), D(2026, 4, 30)).counts["M1"]["paid_off"] == 1
    assert engine.verify_audit().ok
