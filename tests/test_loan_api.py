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
    assert "real date YYYY-MM-DD" in bad_date.json()["message"]  # a rule a person can act on, not a regex
    bad_months = client.get(
        "/v1/loans/roll-rates/monthly", params={"to": "2026-04-15", "months": 0}, headers=keys["auditor"]
    )
    assert (bad_months.status_code, bad_months.json()["field"]) == (422, "months")
    series = client.get(
        "/v1/loans/roll-rates/monthly", params={"to": "2026-04-15", "months": 2}, headers=keys["auditor"]
    )
    assert [m["forward"]["current->M1"] for m in series.json()] == [0.0, 1.0]  # instalment 2, due 03-31, missed
    negative = client.post(
        "/v1/loans/ln-http-1/repayments", json={**rp, "repayment_id": "rp-h3", "amount": "-5"}, headers=keys["system"]
    ).json()
    assert (
        negative["message"] == "amount: must be an amount above 0 with at most two decimals, e.g. \"888.49\" (got '-5')"
    )
    rate = client.post("/v1/loans", json={**body, "loan_id": "ln-3", "apr": "12"}, headers=keys["system"]).json()
    assert rate["field"] == "apr" and "0.12 is 12 %" in rate["message"]
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
    series = runner.invoke(cli_app, ["loan", "roll-rates", "--to", "2020-04-30", "--months", "3", "--json", *base])
    assert [(r["from"], r["forward"]["current->M1"]) for r in json.loads(series.output)] == [
        ("2020-01-30", None),  # not on book yet (opened 31 January)
        ("2020-02-29", 0.0),  # instalment 1 paid on its due day
        ("2020-03-30", 1.0),  # instalment 2 (due 03-31) never paid: M1 by 30 April
    ]
    both = runner.invoke(cli_app, ["loan", "roll-rates", "--to", "2020-04-30", "--from", "2020-03-01",
                                   "--months", "2", *base])  # fmt: skip
    assert both.exit_code == 1 and "--from or --months" in both.output
    queue = json.loads(
        runner.invoke(cli_app, ["collections", "queue", "--as-of", "2020-04-01", "--json", *base]).output
    )
    assert [q["loan_id"] for q in queue] == ["ln-cli"]
    bad = runner.invoke(cli_app, ["loan", "repay", "ln-cli", "--id", "r2", "--amount", "-3", *base])
    assert bad.exit_code == 1 and "amount" in bad.output


def test_http_doors_of_post_loan_and_collections_work(engine: Any) -> None:
    """Close and write off by hand, the early-warning scan, the contact log, pausing and resuming contact: each
    behind its permission, bad input refused naming the field, nothing changed by a refusal."""
    engine.loans.clock = lambda: dt.datetime(2026, 7, 1, 2, tzinfo=dt.UTC)  # 10:00 in Shanghai
    client = TestClient(create_app(engine), raise_server_exceptions=False)
    keys = {role: {"X-API-Key": engine.create_api_key(role)} for role in ("system", "analyst", "auditor")}
    late = engine.loans.open_loan("cust-wo", "3000", "0.12", 3, "equal_principal", dt.date(2026, 1, 15))["loan_id"]
    fresh = engine.loans.open_loan("cust-cl", "3000", "0.12", 3, "equal_principal", dt.date(2026, 6, 20))["loan_id"]

    for role in ("system", "auditor"):  # acting on loans by hand is for analysts
        for path in (f"/v1/loans/{fresh}/close", f"/v1/loans/{late}/write-off"):
            assert client.post(path, json={"reason": "settled"}, headers=keys[role]).status_code == 403
        assert client.post("/v1/loans/early-warning", headers=keys[role]).status_code == 403
    before = _state(engine)
    for path, body, status, field in (
        (f"/v1/loans/{fresh}/close", {"reason": "not a code!"}, 422, "reason"),
        (f"/v1/loans/{fresh}/close", {"reason": "settled", "on": "2026-02-30"}, 422, "on"),
        (f"/v1/loans/{fresh}/close", {"reason": "settled", "on": "2026-07-02"}, 409, "on"),  # tomorrow
        (f"/v1/loans/{fresh}/close", {"reason": "settled", "on": "2026-06-01"}, 409, "on"),  # before it started
        (f"/v1/loans/{fresh}/write-off", {"reason": "charged_off"}, 409, "loan_id"),  # not 90 days past due
        ("/v1/loans/nope/close", {"reason": "settled"}, 404, "loan_id"),
    ):
        refused = client.post(path, json=body, headers=keys["analyst"])
        assert (refused.status_code, refused.json()["field"]) == (status, field), refused.text
    assert _state(engine) == before
    closed = client.post(f"/v1/loans/{fresh}/close", json={"reason": "cooling_off"}, headers=keys["analyst"])
    assert closed.status_code == 200 and (closed.json()["status"], closed.json()["status_on"]) == (
        "closed",
        "2026-07-01",
    )
    written = client.post(f"/v1/loans/{late}/write-off", json={"reason": "charged_off"}, headers=keys["analyst"])
    assert written.status_code == 200 and written.json()["status"] == "written_off"
    again = client.post(f"/v1/loans/{late}/close", json={"reason": "settled"}, headers=keys["analyst"])
    assert (again.status_code, again.json()["code"]) == (409, "loan_not_active")

    scan = client.post("/v1/loans/early-warning", params={"as_of": "2026-07-01"}, headers=keys["analyst"])
    assert scan.status_code == 200 and [(a["customer_id"], a["trigger_id"]) for a in scan.json()["alerts"]] == [
        ("cust-wo", "EW_FIRST_PAYMENT")
    ]

    # collections: a contact, the log, a pause (with its case) and lifting it
    contact = {"loan_id": late, "channel": "call", "party": "customer", "result": "promise_to_pay"}
    assert client.post("/v1/collections/contacts", json=contact, headers=keys["analyst"]).json()["allowed"] is True
    log = client.get("/v1/customers/cust-wo/collection-contacts", headers=keys["auditor"])
    assert log.status_code == 200
    assert [(c["channel"], c["bucket"], c["result"]) for c in log.json()] == [("call", "M3+", "promise_to_pay")]
    assert client.get("/v1/customers/cust-wo/collection-contacts").status_code == 401
    pause_path, resume_path = "/v1/customers/cust-wo/collections/pause", "/v1/customers/cust-wo/collections/resume"
    assert client.post(pause_path, json={}, headers=keys["auditor"]).status_code == 403
    bad = client.post(pause_path, json={"reason": "bad reason!"}, headers=keys["analyst"])
    assert (bad.status_code, bad.json()["field"]) == (422, "reason") and not engine.loans.paused("cust-wo")
    paused = client.post(pause_path, json={}, headers=keys["analyst"])
    assert paused.status_code == 200 and engine.cases.get(paused.json()["case_id"])["type"] == "complaint"
    refused = client.post("/v1/collections/contacts", json=contact, headers=keys["analyst"]).json()
    assert refused["refusal"] == "collections_paused"
    assert client.post(resume_path, headers=keys["auditor"]).status_code == 403
    lifted = client.post(resume_path, headers=keys["analyst"])
    assert lifted.json() == {"customer_id": "cust-wo", "lifted": 1, "paused": False}
    assert engine.verify_audit().ok


def test_cli_post_loan_and_collections_commands(sqlite_engine: Any, monkeypatch: Any) -> None:
    engine = sqlite_engine
    monkeypatch.setenv("FENGKONG_SECRET_KEY", TEST_SECRET)
    base = ["--database-url", engine.database_url]
    runner = CliRunner()
    late = engine.loans.open_loan("cust-c1", "3000", "0.12", 3, "equal_principal", dt.date(2020, 1, 15))["loan_id"]
    # the CLI reads the wall clock: this loan is years past due, so a contact is refused only by the hour
    contact = runner.invoke(cli_app, ["collections", "contact", late, "--channel", "fax", *base])
    assert contact.exit_code == 1 and "channel" in contact.output
    third = runner.invoke(
        cli_app, ["collections", "contact", late, "--channel", "sms", "--party", "third_party", *base]
    )
    assert third.exit_code == 2 and "third_party" in third.output
    log = json.loads(runner.invoke(cli_app, ["collections", "log", "cust-c1", "--json", *base]).output)
    assert [(c["party"], c["allowed"], c["refusal"]) for c in log] == [("third_party", False, "third_party")]
    refused = runner.invoke(
        cli_app, ["loan", "write-off", late, "--reason", "charged_off", "--on", "2020-03-01", *base]
    )
    assert refused.exit_code == 1 and "write_off_too_early" in refused.output
    done = runner.invoke(cli_app, ["loan", "write-off", late, "--reason", "charged_off", "--on", "2020-09-01", *base])
    assert done.exit_code == 0 and "written_off" in done.output
    assert engine.loans.get(late)["status"] == "written_off"
    closed = runner.invoke(cli_app, ["loan", "close", late, "--reason", "settled", "--json", *base])
    assert closed.exit_code == 1 and json.loads(closed.output)["code"] == "loan_not_active"
