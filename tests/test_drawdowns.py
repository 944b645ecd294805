"""Drawdowns on a live line: approved ones book a loan and take from the line; signals of takeover and scams hold
them for a person; bad requests are refused and change nothing."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from typing import Any

import pytest
import sqlalchemy as sa

from fengkong.errors import FengkongError
from fengkong.pii import inspect_id_number
from fengkong.store.tables import audit_log, credit_lines, decisions, events


def open_line(engine: Any, application: dict[str, Any], customer: str) -> dict[str, Any]:
    app = copy.deepcopy(application)
    app["applicant"]["age"] = inspect_id_number(app["identity"]["id_number"], dt.date.today()).age_on(dt.date.today())
    app["identity"].pop("bank_card")
    app["identity"]["id_number_hash"] = hashlib.sha256(customer.encode()).hexdigest()
    del app["identity"]["id_number"]
    app["customer_id"] = customer
    app["identity"]["device_id"] = f"dev-{customer}"
    app["identity"]["phone"] = "139" + f"{int(hashlib.sha256(customer.encode()).hexdigest(), 16) % 10**8:08d}"
    decision = engine.decide(app)
    assert decision.line_id is not None, decision
    return engine.lines.get(decision.line_id)


def pay_again(engine: Any, decision_id: str) -> str:
    """The pay-out a case resolution runs in its transaction (``pay_in``), run once more: it must pay once."""
    from fengkong.lines.drawdown import pay_in

    with engine.db.begin() as conn:
        paid = pay_in(engine, conn, engine._row(decision_id), "again", engine.loans.clock())
    return paid.loan_id


def money(engine: Any) -> tuple[Any, ...]:
    with engine.db.connect() as conn:
        return (
            tuple(conn.execute(sa.select(credit_lines.c.id, credit_lines.c.outstanding, credit_lines.c.status)).all()),
            conn.execute(sa.select(sa.func.count()).select_from(decisions)).scalar_one(),
            conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one(),
            conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one(),
        )


def ask(amount: float, **extra: Any) -> dict[str, Any]:
    return {"amount": amount, "term": 12, "destination_account": "6222000011112222", "device_id": "dev-x", **extra}


def test_an_approved_drawdown_books_the_loan_and_takes_from_the_line(engine: Any, application: dict[str, Any]) -> None:
    line = open_line(engine, application, "dd-ok")
    lid, limit = line["line_id"], line["limit"]
    first = engine.lines.drawdown(lid, ask(1000, drawdown_id="dd-1", device_id="dev-dd-ok", language="en"))
    assert (first.outcome.value, first.reasons, first.case_id) == ("approve", (), None)
    assert engine.lines.available(lid) == limit - 1000
    loan = engine.loans.get(first.loan_id)
    assert loan["line_id"] == lid and float(loan["principal"]) == 1000
    assert "approved" in first.response()["next_steps"]
    # a retry is the same decision and moves no money again
    before = money(engine)
    again = engine.lines.drawdown(lid, ask(1000, drawdown_id="dd-1", device_id="dev-dd-ok", language="en"))
    assert again.replayed and again.decision_id == first.decision_id and money(engine) == before
    with pytest.raises(FengkongError) as err:
        engine.lines.drawdown(lid, ask(2000, drawdown_id="dd-1"))
    assert (err.value.code, err.value.field) == ("conflict", "drawdown_id")
    # the drawdown is an event: velocity sees it
    with engine.db.connect() as conn:
        assert conn.execute(sa.select(events.c.type).where(events.c.event_id == first.decision_id)).scalar_one() == (
            "drawdown"
        )
    assert engine.verify_audit().ok


def test_bad_requests_change_nothing(engine: Any, application: dict[str, Any]) -> None:
    line = open_line(engine, application, "dd-bad")
    lid, limit = line["line_id"], line["limit"]
    before = money(engine)
    cases = [
        (ask(limit + 1), "insufficient_available", "amount", 409),
        (ask(-5), "invalid_field", "amount", 422),
        (ask(1000, term=7), "term_not_offered", "term", 422),
        (ask(50), "invalid_value", "amount", 422),
        ({**ask(1000), "surprise": 1}, "unknown_field", "surprise", 422),
        (
            {k: v for k, v in ask(1000).items() if k != "destination_account"},
            "missing_field",
            "destination_account",
            422,
        ),
    ]
    for body, code, field, status in cases:
        with pytest.raises(FengkongError) as err:
            engine.lines.drawdown(lid, body)
        assert (err.value.field, err.value.status) == (field, status), (body, err.value)
        assert err.value.code == code or status == 422, err.value
        assert money(engine) == before
    with pytest.raises(FengkongError) as err:
        engine.lines.drawdown("line_nope", ask(100))
    assert err.value.code == "line_not_found"
    engine.lines.act(lid, "freeze", actor="ana", note="check")
    with pytest.raises(FengkongError) as err:
        engine.lines.drawdown(lid, ask(100))
    assert (err.value.code, err.value.status) == ("line_not_active", 409)


def test_scam_and_takeover_signals_hold_the_drawdown_and_open_a_case(
    sqlite_engine: Any, application: dict[str, Any]
) -> None:
    engine = sqlite_engine
    lid = open_line(engine, application, "dd-scam")["line_id"]
    available = engine.lines.available(lid)
    before = money(engine)
    held = engine.lines.drawdown(lid, ask(500, call_in_progress=True))
    assert held.outcome.value == "review" and held.reasons == ("SCAM_VICTIM_SUSPECTED",)
    assert held.case_id is not None and held.loan_id is None
    assert engine.lines.available(lid) == available  # nothing paid out while held
    text = held.response()["next_steps"]
    assert "人工确认" in text and "挂断" in text
    case = engine.cases.get(held.case_id)
    assert case["type"] == "held_drawdown"
    assert money(engine)[0] == before[0]
    # most of the line to an account never paid before
    most = engine.lines.drawdown(lid, ask(available * 0.8, destination_account="9999888877776666"))
    assert most.outcome.value == "review" and most.reasons == ("SCAM_VICTIM_SUSPECTED",)
    with engine.db.connect() as conn:
        hits = conn.execute(sa.select(decisions.c.rule_hits).where(decisions.c.id == most.decision_id)).scalar_one()
    assert hits == ["DD_NEW_PAYEE_MOST"]

    # account takeover: a new device and a new password, then a drawdown
    lid2 = open_line(engine, application, "dd-ato")["line_id"]
    now = dt.datetime.now(dt.UTC).isoformat()
    engine.ingest(
        [
            {
                "event_id": "ato-1",
                "type": "device_bound",
                "customer_id": "dd-ato",
                "occurred_at": now,
                "device_id": "evil",
            },
            {"event_id": "ato-2", "type": "password_changed", "customer_id": "dd-ato", "occurred_at": now},
        ]
    )
    ato = engine.lines.drawdown(lid2, ask(300, device_id="evil"))
    assert ato.outcome.value == "review" and ato.reasons == ("ACCOUNT_TAKEOVER_SUSPECTED",)

    # repeated drawdowns within minutes: the fourth is held
    lid3 = open_line(engine, application, "dd-rapid")["line_id"]
    outcomes = [
        engine.lines.drawdown(lid3, ask(100, destination_account="6222000011112222")).outcome.value for _ in range(4)
    ]
    assert outcomes == ["approve", "approve", "approve", "review"]


def test_http_drawdown_door(sqlite_engine: Any, application: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    from fengkong.api import create_app

    engine = sqlite_engine
    lid = open_line(engine, application, "dd-http")["line_id"]
    client = TestClient(create_app(engine), raise_server_exceptions=False)
    system, auditor = engine.create_api_key("system"), engine.create_api_key("auditor")
    r = client.post(f"/v1/lines/{lid}/drawdowns", json=ask(200, language="en"), headers={"X-API-Key": system})
    assert r.status_code == 200, r.json()
    assert r.json()["outcome"] == "approve" and r.json()["loan_id"]
    r = client.post(f"/v1/lines/{lid}/drawdowns", json=ask(200), headers={"X-API-Key": auditor})
    assert r.status_code == 403
    r = client.post(f"/v1/lines/{lid}/drawdowns", content=b"[1]", headers={"X-API-Key": system})
    assert r.status_code == 422 and r.json()["field"] == "body"
    r = client.post(f"/v1/lines/{lid}/drawdowns", json=ask(10**8), headers={"X-API-Key": system})
    assert (r.status_code, r.json()["code"]) == (409, "insufficient_available")
    assert r.json()["message"].startswith("amount 100000000.00 is above the available ")
    r = client.post(
        f"/v1/lines/{lid}/drawdowns",
        json=ask(200, destination_account="6222-0000-1111-2222!"),
        headers={"X-API-Key": system},
    )
    assert (r.status_code, r.json()["field"]) == (422, "destination_account"), r.json()
    assert r.json()["message"].startswith("destination_account: must be 4 to 64 letters")
    assert "6222-0000" not in r.text and "pattern" not in r.text


def test_a_released_hold_pays_out_once_and_bad_destinations_are_refused(
    sqlite_engine: Any, application: dict[str, Any]
) -> None:
    engine = sqlite_engine
    lid = open_line(engine, application, "dd-release")["line_id"]
    available = engine.lines.available(lid)
    held = engine.lines.drawdown(lid, ask(700, call_in_progress=True, drawdown_id="dd-hold"))
    assert held.outcome.value == "review" and engine.lines.available(lid) == available
    # a retry of the held drawdown names the same case
    assert engine.lines.drawdown(lid, ask(700, call_in_progress=True, drawdown_id="dd-hold")).case_id == held.case_id
    engine.cases.claim(held.case_id, "ana")
    engine.cases.resolve(held.case_id, "ana", "release", "called the customer back; no scammer on the line")
    assert engine.lines.available(lid) == available - 700
    loan = engine.loans.get(f"loan-{held.decision_id}")
    assert loan["line_id"] == lid and float(loan["principal"]) == 700
    # releasing twice pays out once
    assert pay_again(engine, held.decision_id) == loan["loan_id"]
    assert engine.lines.available(lid) == available - 700
    assert engine.verify_audit().ok
    before = money(engine)
    for bad in ("   ", "账户\u0000", "ab"):
        with pytest.raises(FengkongError) as err:
            engine.lines.drawdown(lid, ask(100, destination_account=bad))
        assert err.value.field == "destination_account"
    # an account number or device id that is refused is never echoed back in the error (PII); the error states the
    # rule in words a client developer can act on, not the regular expression
    rules = {
        "destination_account": "destination_account: must be 4 to 64 letters (A-Z, a-z), digits, spaces or '-', "
        "starting with a letter or digit",
        "device_id": "device_id: must be 1 to 128 printable ASCII characters (letters, digits, punctuation, spaces), "
        "not starting with a space",
    }
    for field, bad in (
        ("destination_account", "6222000011112222!"),
        ("destination_account", "6222000011112222\n"),  # a final newline is refused too, as the schema's pattern says
        ("device_id", "phone-7731\u00e9"),
        ("device_id", " phone-7731"),
    ):
        with pytest.raises(FengkongError) as err:
            engine.lines.drawdown(lid, ask(100, **{field: bad}))
        assert (err.value.field, err.value.code, err.value.status) == (field, "invalid_field", 422)
        assert err.value.message == rules[field], err.value.message
        shown = json.dumps(err.value.as_dict(), ensure_ascii=False)
        assert bad.strip()[:-1] not in shown and "pattern" not in shown and "got" not in shown
    assert money(engine) == before


def test_decline_with_reasons_and_the_policy_decides_terms_and_rules(
    sqlite_engine: Any, application: dict[str, Any]
) -> None:
    """A decline says why in plain words and moves nothing; the terms offered and the rules come from the
    active policy, not from code: a new policy version changes them."""
    import re
    from pathlib import Path

    from fengkong.policy.loader import DEFAULT_POLICY_PATH, load_policy_text

    engine = sqlite_engine
    lid = open_line(engine, application, "dd-decline")["line_id"]
    available = engine.lines.available(lid)
    engine.add_to_list("blacklist", "payee", "6222999900001111", "mule account")
    before = money(engine)
    declined = engine.lines.drawdown(lid, ask(300, destination_account="6222999900001111", language="en"))
    body = declined.response()
    assert (body["outcome"], body["loan_id"], body["case_id"]) == ("decline", None, None)
    assert [r["code"] for r in body["reasons"]] == ["LINKED_TO_FRAUD"] and body["reasons"][0]["text"]
    assert "human review" in body["next_steps"]
    assert engine.lines.available(lid) == available
    assert money(engine)[0] == before[0] and money(engine)[3] == before[3]  # no money, no drawdown event

    text = Path(DEFAULT_POLICY_PATH).read_text(encoding="utf-8")
    text = re.sub(r'(?m)^version: *"?([^"\s]+)"?', r'version: "\1-dd"', text, count=1)
    text = text.replace("    terms: [3, 6, 12, 24]", "    terms: [6, 12]")
    text = text.replace(
        "    rules:\n      - id: DD_PROTECTED",
        "    rules:\n      - id: DD_LARGE\n        when: drawdown_amount > 3000\n        action: review\n"
        "        reason: LARGE_REQUEST_REVIEW\n"
        "      - id: DD_NEW_DEVICE\n        when: drawdown_new_device and customer_password_changes_24h >= 1\n"
        "        action: review\n        reason: ACCOUNT_TAKEOVER_SUSPECTED\n      - id: DD_PROTECTED",
    )
    engine.publish_policy(load_policy_text(text), actor="test", activate=True)
    with pytest.raises(FengkongError) as err:
        engine.lines.drawdown(lid, ask(500, term=3))
    assert (err.value.code, err.value.field) == ("term_not_offered", "term") and "6, 12" in err.value.message
    held = engine.lines.drawdown(lid, ask(3500, term=6, language="en"))
    assert (held.outcome.value, held.reasons, held.policy_version) == (
        "review",
        ("LARGE_REQUEST_REVIEW",),
        engine.policy().version,
    )
    assert "within 2 hours" in held.response()["next_steps"] and "nothing is paid out" in held.response()["next_steps"]
    assert engine.lines.drawdown(lid, ask(2500, term=6, device_id="dev-dd-decline")).outcome.value == "approve"
    assert engine.lines.available(lid) == available - 2500

    # a password change, then a drawdown from a device never seen on this customer (no binding event needed)
    now = dt.datetime.now(dt.UTC).isoformat()
    engine.ingest([{"event_id": "pw-1", "type": "password_changed", "customer_id": "dd-decline", "occurred_at": now}])
    known = engine.lines.drawdown(lid, ask(200, term=6, device_id="dev-dd-decline"))  # the device it applied from
    assert known.outcome.value == "approve"
    unseen = engine.lines.drawdown(lid, ask(200, term=6, device_id="never-seen-phone"))
    assert (unseen.outcome.value, unseen.reasons) == ("review", ("ACCOUNT_TAKEOVER_SUSPECTED",))
    with engine.db.connect() as conn:
        row = conn.execute(sa.select(decisions.c.features).where(decisions.c.id == unseen.decision_id)).scalar_one()
    assert row["drawdown_new_device"] is True
