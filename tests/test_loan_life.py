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


def test_a_loan_life_in_the_simulated_world(engine: Any) -> None:
    """A customer of the synthetic world (``fengkong.simulate``), replayed through the engine with everyone else,
    draws down through the HTTP door at the world's time; the clock moves on with no repayment: the first payment
    is missed (early warning), the loan rolls current → M1 → M2, the line review freezes the line and collections
    work the loan within the hard limits; a repayment event cures it, the next review restores the line, a
    prepayment pays the loan off, and the line lends again."""
    from fastapi.testclient import TestClient

    from fengkong.api import create_app
    from fengkong.simulate.evaluate import replay
    from fengkong.simulate.world import WorldConfig, generate

    world = generate(
        WorldConfig(
            customers=30, seed=3, ring=0, multi_head=0, cash_out=0, takeover=0, scam_victim=0,
            days=14, end="2026-01-15T00:00:00+08:00",
        )
    )  # fmt: skip
    moment = {"now": dt.datetime(2026, 1, 15, 2, tzinfo=dt.UTC)}  # 10:00 in Shanghai, the day the world ends
    engine.loans.clock = lambda: moment["now"]
    result = replay(world, engine)
    assert result.rejected_events == 0 and result.rejected_applications == 0
    flagged = {a["customer_id"] for a in engine.list_alerts(limit=10_000)}
    customer = next(c for c, outcome in sorted(result.outcomes.items()) if outcome == "approve" and c not in flagged)
    line_id = engine.lines.for_customer(customer)[0]["line_id"]
    limit = engine.lines.get(line_id)["limit"]
    application = next(a for a in world.applications if a["customer_id"] == customer)

    client = TestClient(create_app(engine), raise_server_exceptions=False)
    system = {"X-API-Key": engine.create_api_key("system")}
    analyst = {"X-API-Key": engine.create_api_key("analyst")}
    amount = round(limit * 0.5)
    body = {
        "drawdown_id": f"dd-{customer}",
        "amount": amount,
        "term": 6,
        "method": "equal_principal",
        "destination_account": application["identity"]["bank_card"],
        "device_id": application["identity"]["device_id"],
    }
    r = client.post(f"/v1/lines/{line_id}/drawdowns", json=body, headers=system)
    assert r.status_code == 200 and r.json()["outcome"] == "approve", r.text
    loan_id = r.json()["loan_id"]
    loan = client.get(f"/v1/loans/{loan_id}", headers=analyst).json()
    assert (loan["start_date"], loan["instalments"][0]["due_date"]) == ("2026-01-15", "2026-02-15")
    assert engine.lines.get(line_id)["available"] == pytest.approx(limit - amount)

    # no repayment: the first instalment is missed; the daily scan raises the early warning and opens a case
    moment["now"] = dt.datetime(2026, 3, 10, 2, tzinfo=dt.UTC)
    scan = engine.loans.early_warning(D(2026, 3, 10))
    assert [(a["customer_id"], a["trigger_id"]) for a in scan["alerts"]] == [(customer, "EW_FIRST_PAYMENT")]
    assert [c["type"] for c in engine.cases.list(customer_id=customer)] == ["early_warning"]
    rolled = client.get("/v1/loans/roll-rates", params={"from": "2026-02-10", "to": "2026-03-10"}, headers=analyst)
    assert rolled.json()["counts"]["current"]["M1"] == 1
    # the line review reads the loan book: 23 days past due freezes the line, with its reason
    engine.lines.review(D(2026, 3, 10), apply=True, actor="review")
    line = engine.lines.get(line_id)
    assert line["status"] == "frozen" and "LINE_DELINQUENT" in [x["code"] for x in line["reasons"]]
    refused = client.post(f"/v1/lines/{line_id}/drawdowns", json={**body, "drawdown_id": "dd-2"}, headers=system)
    assert (refused.status_code, refused.json()["code"]) == (409, "line_not_active")

    # collections: the loan is queued (M1: SMS and app only), contacts go through the hard limits
    queue = client.get("/v1/collections/queue", params={"as_of": "2026-03-10"}, headers=analyst).json()
    assert [(q["loan_id"], q["bucket"], q["channels"]) for q in queue] == [(loan_id, "M1", ["sms", "app"])]
    contact = {"loan_id": loan_id, "channel": "sms", "party": "customer"}
    assert client.post("/v1/collections/contacts", json=contact, headers=analyst).json()["allowed"] is True
    call = client.post("/v1/collections/contacts", json={**contact, "channel": "call"}, headers=analyst).json()
    assert call["refusal"] == "not_in_strategy"
    moment["now"] = dt.datetime(2026, 3, 10, 15, tzinfo=dt.UTC)  # 23:00 in Shanghai
    late = client.post("/v1/collections/contacts", json=contact, headers=analyst).json()
    assert late["refusal"] == "quiet_hours"

    # still nothing paid: M1 rolls to M2
    moment["now"] = dt.datetime(2026, 4, 20, 2, tzinfo=dt.UTC)
    rolled = client.get("/v1/loans/roll-rates", params={"from": "2026-03-10", "to": "2026-04-16"}, headers=analyst)
    assert rolled.json()["counts"]["M1"]["M2"] == 1
    monthly = client.get("/v1/loans/roll-rates/monthly", params={"to": "2026-04-15", "months": 3}, headers=analyst)
    assert [(m["from"], m["forward"]) for m in monthly.json()] == [
        ("2026-01-15", {"current->M1": 0.0, "M1->M2": None, "M2->M3": None, "M3->M3+": None}),  # due 02-15: not late
        ("2026-02-15", {"current->M1": 1.0, "M1->M2": None, "M2->M3": None, "M3->M3+": None}),
        ("2026-03-15", {"current->M1": None, "M1->M2": 1.0, "M2->M3": None, "M3->M3+": None}),
    ]
    view = client.get(f"/v1/loans/{loan_id}", params={"as_of": "2026-04-20"}, headers=analyst).json()
    assert (view["dpd"], view["bucket"]) == (64, "M3")
    assert view["outstanding"]["penalty"] > 0

    # the customer repays everything due (penalty, interest, principal) through the events door: cured
    due = view["outstanding"]["due_by_as_of"]
    paid = client.post(
        "/v1/events",
        json={
            "type": "repayment",
            "event_id": f"rp-{customer}",
            "customer_id": customer,
            "occurred_at": "2026-04-20T09:30:00+08:00",
            "amount": due,
            "loan_id": loan_id,
        },
        headers=system,
    )
    assert paid.status_code == 200, paid.text
    cured = client.get(f"/v1/loans/{loan_id}", params={"as_of": "2026-04-20"}, headers=analyst).json()
    assert (cured["dpd"], cured["bucket"], cured["max_dpd"]) == (0, "current", 64)
    assert cured["paid"]["penalty"] == view["outstanding"]["penalty"]
    assert [i["state"] for i in cured["instalments"]] == ["paid"] * 3 + ["upcoming"] * 3
    assert engine.lines.get(line_id)["outstanding"] == pytest.approx(cured["outstanding"]["principal"])
    assert client.get("/v1/collections/queue", params={"as_of": "2026-04-20"}, headers=analyst).json() == []

    # the frozen line's review date has come and no freeze condition holds: the line is restored
    engine.lines.review(D(2026, 4, 20), apply=True, actor="review")
    line = engine.lines.get(line_id)
    assert line["status"] == "active" and line["history"][-1]["action"] == "unfreeze"
    assert line["history"][-1]["reasons"] == ["LINE_REVIEW_CLEARED"] and line["history"][-1]["notice"]

    # a prepayment of the payoff quote pays the loan off; the line lends again
    moment["now"] = dt.datetime(2026, 5, 5, 2, tzinfo=dt.UTC)
    quote = client.get(f"/v1/loans/{loan_id}/payoff", params={"on": "2026-05-05"}, headers=analyst).json()
    done = client.post(
        f"/v1/loans/{loan_id}/repayments",
        json={"repayment_id": f"payoff-{customer}", "amount": f"{quote['amount']:.2f}", "mode": "prepayment"},
        headers=system,
    )
    assert done.status_code == 200 and done.json()["loan"]["status"] == "paid_off", done.text
    assert engine.lines.get(line_id)["outstanding"] == pytest.approx(0.0)
    rolled = client.get("/v1/loans/roll-rates", params={"from": "2026-04-16", "to": "2026-05-05"}, headers=analyst)
    assert rolled.json()["counts"]["M2"]["paid_off"] == 1
    again = client.post(
        f"/v1/lines/{line_id}/drawdowns", json={**body, "drawdown_id": "dd-3", "amount": 500}, headers=system
    )
    assert again.json()["outcome"] == "approve", again.text
    assert engine.verify_audit().ok
