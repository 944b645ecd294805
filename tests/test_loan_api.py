"""The loan book through its doors: HTTP (roles checked on every route, bad input refused with the field and
nothing stored), repayment events applied to booked loans, and the CLI."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import TEST_SECRET
from fengkong.api import create_app
from fengkong.cli import app as cli_app
from fengkong.store import audit
from fengkong.store.tables import alerts, loan_repayments, loans


def _state(engine: Any) -> tuple[Any, ...]:
    with engine.db.connect() as conn:
        return (
            conn.execute(sa.select(sa.func.count()).select_from(loans)).scalar_one(),
            conn.execute(sa.select(sa.func.count()).select_from(loan_repayments)).scalar_one(),
            audit.head(conn),
        )


def test_http_doors_of_the_loan_book(engine: Any) -> None:
    engine.loans.clock = lambda: dt.datetime(2026, 5, 1, 4, tzinfo=dt.UTC)
    client = TestClient(create_app(engine), raise_server_exceptions=False)
    keys = {role: {"X-API-Key": engine.create_api_key(role)} for role in ("system", "analyst", "auditor")}
    body = {
        "loan_id": "ln-http-1",
        "customer_id": "cust-http",
        "principal": "10000.00",
        "apr": "0.12",
        "term": 12,
        "method": "equal_instalment",
        "start_date": "2026-01-31",
    }
    # roles: the core system books loans and reports repayments; analysts and auditors read
    for role in ("analyst", "auditor"):
        assert client.post("/v1/loans", json=body, headers=keys[role]).status_code == 403
    assert client.post("/v1/loans", json=body).status_code == 401
    opened = client.post("/v1/loans", json=body, headers=keys["system"])
    assert opened.status_code == 200, opened.text
    assert opened.json()["instalments"][0]["payment"] == 888.49
    assert client.post("/v1/loans", json=body, headers=keys["system"]).json()["loan_id"] == "ln-http-1"

    before = _state(engine)
    for bad, field in (
        ({**body, "loan_id": "ln-2", "apr": "12"}, "apr"),
        ({**body, "loan_id": "ln-2", "principal": "-1"}, "principal"),
        ({**body, "loan_id": "ln-2", "term": 0}, "term"),
        ({**body, "loan_id": "ln-2", "method": "balloon"}, "method"),
        ({**body, "loan_id": "ln-2", "timezone": "Nowhere/Town"}, "timezone"),
        ({**body, "loan_id": "ln-2", "start_date": "2026-02-29"}, "start_date"),  # not a leap year
        ({**body, "loan_id": "ln-2", "line_id": "line-1"}, "line_id"),  # loans on a line come from drawdowns
        ({**body, "principal": "9000.00"}, "loan_id"),  # the id exists with other terms
    ):
        refused = client.post("/v1/loans", json=bad, headers=keys["system"])
        assert refused.status_code in (409, 422), refused.text
        assert refused.json()["field"] == field
    assert _state(engine) == before

    rp = {"repayment_id": "rp-h1", "amount": "888.49", "paid_on": "2026-02-27"}
    for role in ("analyst", "auditor"):
        assert client.post("/v1/loans/ln-http-1/repayments", json=rp, headers=keys[role]).status_code == 403
    paid = client.post("/v1/loans/ln-http-1/repayments", json=rp, headers=keys["system"])
    assert paid.status_code == 200 and paid.json()["allocation"]["principal"] == 788.49
    assert client.post("/v1/loans/ln-http-1/repayments", json=rp, headers=keys["system"]).json()["replayed"] is True
    before = _state(engine)
    for bad, status, field in (
        ({**rp, "repayment_id": "rp-h2", "amount": "-5"}, 422, "amount"),
        ({**rp, "repayment_id": "rp-h2", "amount": "0"}, 422, "amount"),
        ({**rp, "amount": "1.00"}, 409, "repayment_id"),
        ({**rp, "repayment_id": "rp-h2", "mode": "later"}, 422, "mode"),
        ({**rp, "repayment_id": "rp-h2", "paid_on": "2030-01-01"}, 409, "paid_on"),  # in the future
        ({**rp, "repayment_id": "rp-h2", "amount": "20000"}, 409, "amount"),  # more than is owed
    ):
        refused = client.post("/v1/loans/ln-http-1/repayments", json=bad, headers=keys["system"])
        assert (refused.status_code, refused.json()["field"]) == (status, field), refused.text
    missing = client.post("/v1/loans/nope/repayments", json=rp, headers=keys["system"])
    assert (missing.status_code, missing.json()["code"]) == (404, "loan_not_found")
    assert _state(engine) == before

    for role in ("system", "analyst", "auditor"):
        got = client.get("/v1/loans/ln-http-1", params={"as_of": "2026-04-15"}, headers=keys[role])
        assert got.status_code == 200
        assert (got.json()["dpd"], got.json()["bucket"]) == (15, "M1")  # instalment 2, due 03-31, unpaid
    listed = client.get("/v1/customers/cust-http/loans", headers=keys["auditor"]).json()
    assert [loan["loan_id"] for loan in listed] == ["ln-http-1"]
    quote = client.get("/v1/loans/ln-http-1/payoff", params={"on": "2026-03-10"}, headers=keys["analyst"]).json()
    assert quote["amount"] == 9303.63
    summary = client.get("/v1/loans/delinquency", params={"as_of": "2026-04-15"}, headers=keys["auditor"]).json()
    assert {b["bucket"]: b["loans"] for b in summary["buckets"]}["M1"] == 1
    rolls = client.get(
        "/v1/loans/roll-rates", params={"from": "2026-03-01", "to": "2026-04-15"}, headers=keys["auditor"]
    ).json()
    assert rolls["counts"]["current"]["M1"] == 1
    bad_date = client.get(
        "/v1/loans/roll-rates", params={"from": "2026-02-30", "to": "2026-03-01"}, headers=keys["auditor"]
    )
    assert bad_date.status_code == 422 and bad_date.json()["field"] == "from"
    assert client.get("/v1/loans/nope", headers=keys["auditor"]).status_code == 404


def test_repayment_events_pay_booked_loans(engine: Any) -> None:
    engine.loans.clock = lambda: dt.datetime(2026, 5, 1, 4, tzinfo=dt.UTC)
    lid = engine.loans.open_loan("cust-ev", "3000", "0.12", 3, "equal_principal", dt.date(2026, 1, 15))["loan_id"]
    event = {"type": "repayment", "customer_id": "cust-ev", "amount": 1030.0, "loan_id": lid}
    result = engine.ingest(
        [
            {**event, "event_id": "ev-r1", "occurred_at": "2026-02-15T23:30:00+08:00"},
            {**event, "event_id": "ev-r2", "occurred_at": "2026-03-15T10:00:00+08:00", "customer_id": "cust-other"},
            {**event, "event_id": "ev-r3", "occurred_at": "2026-03-15T10:00:00+08:00", "loan_id": "elsewhere-9"},
        ]
    )
    assert len(result.accepted) == 3  # all three are stored as events
    view = engine.loans.get(lid, dt.date(2026, 2, 16))
    assert view["repayments"][0]["repayment_id"] == "ev-r1"
    assert view["repayments"][0]["paid_on"] == "2026-02-15"  # the local date in the loan's time zone
    assert view["instalments"][0]["paid_on"] == "2026-02-15" and view["dpd"] == 0
    with engine.db.connect() as conn:
        raised = conn.execute(sa.select(alerts.c.event_id, alerts.c.reason, alerts.c.features)).all()
    # another customer's repayment naming this loan is not applied: operations get an alert; a loan the book
    # does not hold (kept by the lender elsewhere) is left alone
    assert [(a.event_id, a.reason, a.features["error"]) for a in raised] == [
        ("ev-r2", "REPAYMENT_UNMATCHED", "loan_customer_mismatch")
    ]
    assert result.alerts == [engine.list_alerts()[0]["id"]]
    again = engine.ingest([{**event, "event_id": "ev-r1", "occurred_at": "2026-02-15T23:30:00+08:00"}])
    assert again.duplicates == ["ev-r1"] and len(engine.loans.get(lid)["repayments"]) == 1


def test_cli_loan_commands(engine: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("FENGKONG_SECRET_KEY", TEST_SECRET)  # the CLI's engine: no key file written anywhere
    url = engine.database_url
    runner = CliRunner()
    base = ["--database-url", url]
    opened = runner.invoke(
        cli_app,
        ["loan", "open", "cust-cli", "--principal", "1200", "--apr", "0.12", "--term", "3",
         "--method", "equal_principal", "--start", "2020-01-31", "--loan-id", "ln-cli", "--json", *base],
    )  # fmt: skip
    assert opened.exit_code == 0, opened.output
    paid = runner.invoke(
        cli_app, ["loan", "repay", "ln-cli", "--id", "r1", "--amount", "412", "--on", "2020-02-29", *base]
    )
    assert paid.exit_code == 0 and "principal 400.00" in paid.output
    shown = json.loads(
        runner.invoke(cli_app, ["loan", "show", "ln-cli", "--as-of", "2020-04-01", "--json", *base]).output
    )
    assert (shown["dpd"], shown["bucket"]) == (1, "M1")
    dpd = json.loads(
        runner.invoke(cli_app, ["loan", "dpd", "--as-of", "2020-04-01", "--loans", "--json", *base]).output
    )
    assert dpd["delinquent"][0]["loan_id"] == "ln-cli"
    rolls = runner.invoke(cli_app, ["loan", "roll-rates", "--from", "2020-03-01", "--to", "2020-04-01", *base])
    assert rolls.exit_code == 0 and "M1" in rolls.output
    queue = json.loads(
        runner.invoke(cli_app, ["collections", "queue", "--as-of", "2020-04-01", "--json", *base]).output
    )
    assert [q["loan_id"] for q in queue] == ["ln-cli"]
    bad = runner.invoke(cli_app, ["loan", "repay", "ln-cli", "--id", "r2", "--amount", "-3", *base])
    assert bad.exit_code == 1 and "amount" in bad.output
