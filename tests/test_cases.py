"""The case queue (engine.cases): sources open exactly one case each, analysts claim and resolve with a note,
four eyes hold overrides and large limits for a second analyst, resolutions flow back (override decisions, lines,
lists, victims), every step is in the audit chain, and bad input is refused with nothing changed.

Tests taking the ``engine`` fixture run on a SQLite file and on a real PostgreSQL server.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from fengkong.domain import new_id
from fengkong.errors import FengkongError
from fengkong.policy.loader import DEFAULT_POLICY_PATH, load_policy_text
from fengkong.store import audit
from fengkong.store.tables import alerts, audit_log, case_actions, cases, decisions, metadata, risk_lists

A1, A2 = "key:analyst0001", "key:analyst0002"


# ------------------------------------------------------------------------------------------ helpers


def review_app(application: dict[str, Any], customer: str = "cust-rev", app_id: str | None = None) -> dict[str, Any]:
    """An application the default policy sends to REVIEW (no device id: DEVICE_ABSENT)."""
    data = copy.deepcopy(application)
    data["customer_id"] = customer
    data["identity"].pop("device_id")
    if app_id is not None:
        data["application_id"] = app_id
    return data


def declined_app(application: dict[str, Any], customer: str = "cust-dec") -> dict[str, Any]:
    """An application the default policy declines (age 70: AGE_OUT_OF_RANGE)."""
    data = copy.deepcopy(application)
    data["customer_id"] = customer
    data["applicant"]["age"] = 70
    return data


def snapshot(engine: Any) -> dict[str, Any]:
    """Everything a refused request must leave as it was: cases, their steps, decisions, lists, lines, audit."""
    with engine.db.connect() as conn:
        out: dict[str, Any] = {
            "cases": [tuple(r) for r in conn.execute(sa.select(cases).order_by(cases.c.id))],
            "head": audit.head(conn),
        }
        for table in (case_actions, decisions, risk_lists, alerts):
            out[table.name] = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        if "credit_lines" in metadata.tables:
            lines = metadata.tables["credit_lines"]
            out["lines"] = [tuple(r) for r in conn.execute(sa.select(lines).order_by(lines.c.id))]
    return out


def refused(engine: Any, code: str, field: str | None, call: Any, *args: Any, **kwargs: Any) -> FengkongError:
    """``call`` raises the FengkongError ``code`` naming ``field``, and nothing stored changes."""
    before = snapshot(engine)
    with pytest.raises(FengkongError) as info:
        call(*args, **kwargs)
    err = info.value
    assert err.code == code, err
    assert err.field == field, err
    assert err.message and 400 <= err.status < 500
    assert snapshot(engine) == before
    return err


def store_alert(engine: Any, customer: str, action: str, *, hook: bool = True) -> str:
    """An alert as the event path (``hook``) or another service (writing the alerts table only) stores it."""
    row = {
        "id": new_id("alr"),
        "created_at": dt.datetime.now(dt.UTC),
        "customer_id": customer,
        "event_id": new_id("evt"),
        "trigger_id": "CASH_OUT_LOOP" if action == "open_case" else "EW_UTILISATION",
        "action": action,
        "reason": "CASH_OUT_SUSPECTED",
        "policy_version": engine.active_policy_version(),
        "features": {"pair_payout_sum_24h": 900.0},
        "status": "open",
    }
    if hook:
        engine._store_alerts([row], "test")
    else:
        with engine.db.begin() as conn:
            conn.execute(sa.insert(alerts).values(**row))
    return str(row["id"])


def audit_kinds(engine: Any, step_ids: list[str]) -> list[str]:
    with engine.db.connect() as conn:
        return list(
            conn.execute(
                sa.select(audit_log.c.kind).where(audit_log.c.subject_id.in_(step_ids)).order_by(audit_log.c.seq)
            ).scalars()
        )


# ------------------------------------------------------------------------------------------ sources


def test_a_review_decision_opens_one_case_and_answers_with_its_id(engine: Any, application: dict[str, Any]) -> None:
    decision = engine.decide(review_app(application, app_id="rev-1"))
    assert decision.outcome.value == "review"
    assert decision.case_id is not None and decision.response()["case_id"] == decision.case_id
    case = engine.cases.get(decision.case_id)
    assert (case["type"], case["status"], case["decision_id"]) == ("review", "open", decision.decision_id)
    assert case["evidence"]["reasons"] == ["DEVICE_NOT_VERIFIED"] and case["priority"] == 2  # a fraud-signal reason
    # the same decision never opens two cases: the retry, the hook again, the sweep
    assert engine.decide(review_app(application, app_id="rev-1")).case_id == decision.case_id
    again = engine.cases.open_for_decision(engine.get_decision(decision.decision_id))
    assert again == decision.case_id
    assert engine.cases.sweep() == {"review": 0, "alerts": 0, "complaints": 0}
    assert engine.explain(decision.decision_id)["case_id"] == decision.case_id
    # an approval opens none
    assert engine.decide(copy.deepcopy(application)).case_id is None
    assert [c["case_id"] for c in engine.cases.list()] == [decision.case_id]


def test_alerts_complaints_and_the_sweep_open_their_cases(sqlite_engine: Any, application: dict[str, Any]) -> None:
    engine = sqlite_engine
    fraud = store_alert(engine, "cust-a", "open_case")
    store_alert(engine, "cust-a", "alert")  # a plain alert opens no case
    (case,) = engine.cases.list(type="fraud_alert")
    assert (case["alert_id"], case["priority"], case["customer_id"]) == (fraud, 1, "cust-a")
    assert case["evidence"]["trigger_id"] == "CASH_OUT_LOOP"
    # a complaint event opens a complaint case, once, whatever the retries
    event = {
        "event_id": "cmp-1",
        "type": "complaint",
        "customer_id": "cust-b",
        "occurred_at": "2026-11-23T10:00:00+08:00",
        "category": "collector",
    }
    engine.ingest([event, dict(event)])
    engine.ingest([dict(event)])
    (complaint,) = engine.cases.list(type="complaint")
    assert (complaint["event_id"], complaint["priority"], complaint["evidence"]["category"]) == (
        "cmp-1",
        2,
        "collector",
    )
    # an early-warning alert written by another service (no hook), and a review decision whose case was lost
    warning = store_alert(engine, "cust-c", "early_warning", hook=False)
    decision = engine.decide(review_app(application, customer="cust-d"))
    with engine.db.begin() as conn:
        conn.execute(sa.delete(case_actions).where(case_actions.c.case_id == decision.case_id))
        conn.execute(sa.delete(cases).where(cases.c.id == decision.case_id))
    assert engine.cases.sweep() == {"review": 1, "alerts": 1, "complaints": 0}
    assert engine.cases.sweep() == {"review": 0, "alerts": 0, "complaints": 0}
    assert engine.cases.list(type="early_warning")[0]["alert_id"] == warning
    assert engine.cases.case_id_for_decision(decision.decision_id) is not None


def test_sla_from_the_policy_priorities_filters_and_overdue(sqlite_engine: Any, application: dict[str, Any]) -> None:
    engine = sqlite_engine
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["version"] = "cases-sla"
    data["cases"] = {"sla_hours": {"review": 1}}
    engine.publish_policy(load_policy_text(yaml.safe_dump(data)), actor="test", activate=True)
    review = engine.cases.get(engine.decide(review_app(application)).case_id)
    opened = dt.datetime.fromisoformat(review["created_at"].rstrip("Z"))
    assert dt.datetime.fromisoformat(review["due_at"].rstrip("Z")) - opened == dt.timedelta(hours=1)
    manual = engine.cases.open("held_drawdown", "cust-h", evidence={"amount": 5000}, note="held by hand", actor=A1)
    assert manual["priority"] == 1 and manual["created"] is True
    held_opened = dt.datetime.fromisoformat(manual["created_at"].rstrip("Z"))
    assert dt.datetime.fromisoformat(manual["due_at"].rstrip("Z")) - held_opened == dt.timedelta(hours=2)  # default
    # the queue is worked by priority first (a held drawdown is urgent), then by due time
    assert [c["type"] for c in engine.cases.list()] == ["held_drawdown", "review"]
    with engine.db.begin() as conn:
        conn.execute(
            sa.update(cases)
            .where(cases.c.id == review["case_id"])
            .values(due_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        )
    assert [c["case_id"] for c in engine.cases.list(overdue=True)] == [review["case_id"]]
    assert engine.cases.get(review["case_id"])["overdue"] is True
    assert [c["case_id"] for c in engine.cases.list(overdue=False)] == [manual["case_id"]]
    engine.cases.claim(manual["case_id"], A1)
    assert [c["case_id"] for c in engine.cases.list(assignee=A1)] == [manual["case_id"]]
    assert [c["case_id"] for c in engine.cases.list(status=["open"], customer_id=review["customer_id"])] == [
        review["case_id"]
    ]
    assert engine.cases.counts()["overdue"] == 1
    with pytest.raises(FengkongError, match="unknown case status"):
        engine.cases.list(status="closed")


# ------------------------------------------------------------------------------------------ resolution


def test_an_approved_review_opens_the_line_under_a_human_decision(engine: Any, application: dict[str, Any]) -> None:
    decision = engine.decide(review_app(application))
    case_id = decision.case_id
    with engine.db.connect() as conn:
        original = dict(
            conn.execute(sa.select(decisions).where(decisions.c.id == decision.decision_id)).mappings().one()
        )
    assert engine.cases.claim(case_id, A1)["status"] == "claimed"
    assert engine.cases.claim(case_id, A1)["status"] == "claimed"  # one's own claim again: no change
    done = engine.cases.resolve(case_id, A1, "approve", "  device id missing from an old app version; called  ")
    assert done["status"] == "resolved" and done["outcome"] == "approve"
    override_id = done["result"]["override_decision_id"]
    override = engine.explain(override_id)
    assert (override["outcome"], override["limit"], override["apr"]) == ("approve", decision.limit, decision.apr)
    line = engine.lines.get(done["result"]["line_id"])
    assert (line["status"], line["limit"], line["decision_id"]) == ("active", decision.limit, override_id)
    # the automated decision is never edited (it is hash-chained); the audit chain holds every step
    with engine.db.connect() as conn:
        assert dict(
            conn.execute(sa.select(decisions).where(decisions.c.id == decision.decision_id)).mappings().one()
        ) == (original)
    case = engine.cases.get(case_id)
    steps = case["steps"]
    assert [(s["action"], s["actor"]) for s in steps] == [("opened", "python"), ("claimed", A1), ("resolved", A1)]
    assert steps[-1]["note"] == "device id missing from an old app version; called"
    assert audit_kinds(engine, [s["step_id"] for s in steps]) == ["case_opened", "case_claimed", "case_resolved"]
    assert engine.verify_audit().ok
    assert case["replay"]["reproduced"] is True and case["decision"]["decision_id"] == decision.decision_id
    assert engine.cases.replay(override_id)["reproduced"] is None  # a person's decision is not the policy's


def test_four_eyes_for_a_limit_above_the_threshold(sqlite_engine: Any, application: dict[str, Any]) -> None:
    engine = sqlite_engine
    case_id = engine.decide(review_app(application)).case_id
    engine.cases.claim(case_id, A1)
    pending = engine.cases.resolve(case_id, A1, "approve", "income proven by payslips", limit=80_000)
    assert pending["status"] == "pending_second_approval"
    assert pending["proposal"]["by"] == A1 and "above the four-eyes limit of 50,000" in pending["proposal"]["why"]
    assert pending["result"] is None and engine.lines.for_customer("cust-rev") == []  # nothing has taken effect
    refused(engine, "four_eyes_same_analyst", "analyst", engine.cases.approve, case_id, A1, "I approve my own")
    returned = engine.cases.approve(case_id, A2, "payslips are not enough for 80k", approve=False)
    assert (returned["status"], returned["assignee"], returned["proposal"]) == ("claimed", A1, None)
    engine.cases.resolve(case_id, A1, "approve", "bank statements added", limit=60_000)
    done = engine.cases.approve(case_id, A2, "statements checked")
    assert done["status"] == "resolved" and done["result"]["decided_by"] == [A1, A2]
    assert engine.explain(done["result"]["override_decision_id"])["limit"] == 60_000
    assert engine.explain(done["result"]["override_decision_id"])["inputs"]["decided_by"] == [A1, A2]
    actions = [s["action"] for s in engine.cases.get(case_id)["steps"]]
    assert actions == ["opened", "claimed", "proposed", "returned", "proposed", "approved"]
    # a limit at the threshold needs one analyst only
    other = engine.decide(review_app(application, customer="cust-2")).case_id
    engine.cases.claim(other, A1)
    assert engine.cases.resolve(other, A1, "approve", "ok", limit=50_000)["status"] == "resolved"


def test_a_human_decline_keeps_or_names_the_reasons(sqlite_engine: Any, application: dict[str, Any]) -> None:
    engine = sqlite_engine
    case_id = engine.decide(review_app(application)).case_id
    engine.cases.claim(case_id, A1)
    refused(engine, "invalid_field", "reasons", engine.cases.resolve, case_id, A1, "decline", "n", reasons=["NOPE"])
    refused(engine, "invalid_field", "limit", engine.cases.resolve, case_id, A1, "decline", "n", limit=100)
    done = engine.cases.resolve(case_id, A1, "decline", "ring device", reasons=["IDENTITY_RISK"])
    assert engine.explain(done["result"]["override_decision_id"])["outcome"] == "decline"
    assert engine.explain(done["result"]["override_decision_id"])["reasons"][0]["code"] == "IDENTITY_RISK"
    assert "line_id" not in done["result"]


def test_fraud_confirmed_lists_identifiers_but_never_a_victims(sqlite_engine: Any, application: dict[str, Any]) -> None:
    engine = sqlite_engine
    fraudster = copy.deepcopy(application)
    fraudster["customer_id"] = "cust-fraud"
    engine.decide(fraudster)
    victim = copy.deepcopy(application)  # the fraudster used the victim's phone
    victim["customer_id"] = "cust-victim"
    victim["identity"] = {"phone": application["identity"]["phone"], "id_number": "11010519491231002X"}
    engine.decide(victim)
    engine.protect_customer("cust-victim", actor="test")
    store_alert(engine, "cust-fraud", "open_case")
    (case,) = engine.cases.list(type="fraud_alert")
    engine.cases.claim(case["case_id"], A1)
    done = engine.cases.resolve(case["case_id"], A1, "confirmed_fraud", "payouts match the ring pattern")
    with engine.db.connect() as conn:
        listed = conn.execute(sa.select(risk_lists.c.kind, risk_lists.c.source).where(risk_lists.c.list == "blacklist"))
        kinds = sorted(k for k, _ in listed)
        alert_status = conn.execute(sa.select(alerts.c.status).where(alerts.c.id == case["alert_id"])).scalar_one()
    assert kinds == ["bank_card", "customer", "device", "id_number"]  # not the phone a victim also used, never the IP
    assert done["result"]["listed"] == 4 and alert_status == "closed"
    assert engine.verify_audit().ok
    # the listed device now declines its next application (the lists reach the decision path)
    again = copy.deepcopy(application)
    again["customer_id"] = "cust-new"
    assert engine.decide(again).outcome.value == "decline"
    # a protected victim cannot be resolved as a fraudster; as a victim the customer is protected
    store_alert(engine, "cust-victim", "open_case")
    victim_case = engine.cases.list(type="fraud_alert", customer_id="cust-victim")[0]["case_id"]
    engine.cases.claim(victim_case, A1)
    refused(engine, "protected_customer", "outcome", engine.cases.resolve, victim_case, A1, "confirmed_fraud", "x")
    store_alert(engine, "cust-scammed", "open_case")
    scam_case = engine.cases.list(type="fraud_alert", customer_id="cust-scammed")[0]["case_id"]
    engine.cases.claim(scam_case, A1)
    engine.cases.resolve(scam_case, A1, "victim", "customer was coached by a fake police officer")
    assert engine._is_protected("cust-scammed")


def test_early_warning_watchlist_and_subscribers(sqlite_engine: Any) -> None:
    engine = sqlite_engine
    store_alert(engine, "cust-ew", "early_warning")
    case_id = engine.cases.list(type="early_warning")[0]["case_id"]
    engine.cases.claim(case_id, A1)
    engine.cases.resolve(case_id, A1, "watchlist", "utilisation 98% and three new lenders")
    with engine.db.connect() as conn:
        entry = conn.execute(sa.select(risk_lists.c.list, risk_lists.c.key_hash)).one()
    assert tuple(entry) == ("watchlist", "cust-ew")
    # a held drawdown is released by whoever subscribed (the drawdown service); a failing subscriber is recorded
    seen: list[dict[str, Any]] = []
    engine.cases.subscribe("held_drawdown", seen.append)
    engine.cases.subscribe("held_drawdown", lambda case: 1 / 0)
    held = engine.cases.open("held_drawdown", "cust-dd", evidence={"amount": 3000}, actor="drawdowns")
    engine.cases.claim(held["case_id"], A1)
    done = engine.cases.resolve(held["case_id"], A1, "release", "customer confirmed on a recorded call")
    assert [c["outcome"] for c in seen] == ["release"] and seen[0]["status"] == "resolved"
    steps = engine.cases.get(held["case_id"])["steps"]
    assert steps[-1]["action"] == "follow_up" and steps[-1]["details"]["effect"] == "subscriber"
    assert done["status"] == "resolved"


# ------------------------------------------------------------------------------------------ bad input


def test_bad_steps_are_refused_and_change_nothing(engine: Any, application: dict[str, Any]) -> None:
    case_id = engine.decide(review_app(application)).case_id
    refused(engine, "case_not_found", "case_id", engine.cases.claim, "cas_nope", A1)
    refused(engine, "case_not_claimed", "case_id", engine.cases.resolve, case_id, A1, "approve", "fine")
    engine.cases.claim(case_id, A1)
    refused(engine, "case_claimed_by_other", "case_id", engine.cases.claim, case_id, A2)
    refused(engine, "case_claimed_by_other", "analyst", engine.cases.resolve, case_id, A2, "approve", "mine now")
    refused(engine, "case_claimed_by_other", "analyst", engine.cases.release, case_id, A2)
    for blank in (None, "", "   \n\t"):
        refused(engine, "missing_note", "note", engine.cases.resolve, case_id, A1, "approve", blank)
    refused(engine, "invalid_field", "note", engine.cases.resolve, case_id, A1, "approve", "x" * 4001)
    refused(engine, "invalid_outcome", "outcome", engine.cases.resolve, case_id, A1, "confirmed_fraud", "wrong type")
    refused(engine, "invalid_outcome", "outcome", engine.cases.resolve, case_id, A1, "APPROVE", "case matters")
    refused(engine, "invalid_field", "limit", engine.cases.resolve, case_id, A1, "approve", "n", limit=-5)
    refused(engine, "invalid_field", "limit", engine.cases.resolve, case_id, A1, "approve", "n", limit=900_000)
    refused(engine, "invalid_field", "analyst", engine.cases.claim, case_id, "")
    refused(engine, "case_not_pending_approval", "case_id", engine.cases.approve, case_id, A2, "nothing to approve")
    # four eyes: the proposer cannot approve, and a note is needed to approve too
    engine.cases.resolve(case_id, A1, "approve", "large but fine", limit=90_000)
    refused(engine, "four_eyes_same_analyst", "analyst", engine.cases.approve, case_id, A1, "self-approval")
    refused(engine, "missing_note", "note", engine.cases.approve, case_id, A2, " ")
    refused(engine, "case_pending_approval", "case_id", engine.cases.resolve, case_id, A1, "approve", "again")
    engine.cases.approve(case_id, A2, "agreed")
    # resolved: final
    refused(engine, "case_resolved", "case_id", engine.cases.resolve, case_id, A1, "decline", "changed my mind")
    refused(engine, "case_resolved", "case_id", engine.cases.approve, case_id, A2, "again")
    refused(engine, "case_resolved", "case_id", engine.cases.claim, case_id, A2)
    # opening: unknown type, a decision of another customer, a missing decision, a bad priority
    decision_id = engine.cases.get(case_id)["decision_id"]
    refused(engine, "invalid_field", "type", engine.cases.open, "audit", "cust-rev")
    refused(
        engine, "decision_customer_mismatch", "decision_id", engine.cases.open, "review", "x", decision_id=decision_id
    )
    refused(engine, "decision_not_found", "decision_id", engine.cases.open, "review", "cust-rev", decision_id="dec_no")
    refused(engine, "invalid_field", "priority", engine.cases.open, "complaint", "cust-rev", priority=9)
    assert engine.verify_audit().ok


def test_two_analysts_racing_for_one_case_cannot_both_win(sqlite_engine: Any, application: dict[str, Any]) -> None:
    """The compare-and-set on the case's step counter: a step based on a stale read is refused."""
    engine = sqlite_engine
    case_id = engine.decide(review_app(application)).case_id
    stale = engine.cases._row(case_id)
    engine.cases.claim(case_id, A1)
    before = snapshot(engine)
    with pytest.raises(FengkongError) as info, engine.db.begin() as conn:
        engine.cases._step(conn, stale, A2, "claimed", {"status": "claimed", "assignee": A2}, dt.datetime.now(dt.UTC))
    assert info.value.code == "case_changed"
    assert snapshot(engine) == before and engine.cases.get(case_id)["assignee"] == A1


def test_an_edited_case_note_is_found_by_the_audit_check(sqlite_engine: Any, application: dict[str, Any]) -> None:
    engine = sqlite_engine
    case_id = engine.decide(review_app(application)).case_id
    engine.cases.claim(case_id, A1)
    engine.cases.resolve(case_id, A1, "decline", "device farm suspected")
    assert engine.verify_audit().ok
    with engine.db.begin() as conn:
        conn.execute(
            sa.update(case_actions)
            .where((case_actions.c.case_id == case_id) & (case_actions.c.action == "resolved"))
            .values(note="approved, all fine")
        )
    report = engine.verify_audit()
    assert not report.ok
    assert any("case_resolved" in f.problem and "edited" in f.problem for f in report.findings)


def test_replay_under_the_version_in_force_and_another(sqlite_engine: Any, application: dict[str, Any]) -> None:
    engine = sqlite_engine
    decision = engine.decide(review_app(application))
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["version"] = "strict-devices"
    for rule in data["rules"]:
        if rule["id"] == "DEVICE_ABSENT":
            rule["action"] = "decline"
    engine.publish_policy(load_policy_text(yaml.safe_dump(data)), actor="test", activate=True)
    replay = engine.cases.replay(decision.decision_id)
    assert replay["reproduced"] is True and replay["in_force"]["outcome"] == "review"
    assert (replay["decision_kind"], replay["differences"]) == ("application", [])
    assert replay["why"] == f"policy {decision.policy_version} gives the same outcome, reasons, limit and APR"
    assert replay["compared_with"]["policy_version"] == "strict-devices"
    assert replay["compared_with"]["outcome"] == "decline"
    with pytest.raises(FengkongError) as info:
        engine.cases.replay(decision.decision_id, "no-such-version")
    assert (info.value.code, info.value.field, info.value.status) == ("unknown_policy_version", "policy_version", 404)


def test_a_drawdown_is_replayed_by_the_drawdown_rules_of_its_version_at_every_replay_door(
    sqlite_engine: Any, application: dict[str, Any]
) -> None:
    """``engine.cases.replay`` and ``GET /v1/decisions/{id}/replay`` replay a drawdown through the one drawdown
    replay (the drawdown rules of the version in force then, and of another version), in an application replay's
    shape: reproduced true, false, or null with why."""
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from conftest import TEST_SECRET
    from fengkong.api import create_app
    from fengkong.cli import app as cli_app
    from test_drawdowns import ask, open_line

    engine = sqlite_engine
    lid = open_line(engine, application, "dd-replay")["line_id"]
    held = engine.lines.drawdown(lid, ask(400, call_in_progress=True))
    old = engine.policy().version
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["version"] = "dd-any"  # drops the call rule; holds every drawdown above 100 for a person
    rules = [r for r in data["lines"]["drawdowns"]["rules"] if r["id"] != "DD_CALL_IN_PROGRESS"]
    rules.insert(
        0, {"id": "DD_ANY", "when": "drawdown_amount > 100", "action": "review", "reason": "LARGE_REQUEST_REVIEW"}
    )
    data["lines"]["drawdowns"]["rules"] = rules
    engine.publish_policy(load_policy_text(yaml.safe_dump(data)), actor="test", activate=True)

    replay = engine.cases.replay(held.decision_id)
    assert (replay["decision_kind"], replay["kind"], replay["policy_version"]) == ("drawdown", "drawdown", old)
    assert replay["stored"] == {
        "outcome": "review", "reasons": ["SCAM_VICTIM_SUSPECTED"], "rule_hits": ["DD_CALL_IN_PROGRESS"],
        "amount": 400.0, "term": 12, "apr": replay["stored"]["apr"], "score": None,
    }  # fmt: skip
    assert replay["in_force"] == {
        "replayable": True, "why": None, "outcome": "review", "reasons": ["SCAM_VICTIM_SUSPECTED"],
        "rule_hits": ["DD_CALL_IN_PROGRESS"],
    }  # fmt: skip
    assert (replay["reproduced"], replay["differences"]) == (True, [])
    assert replay["why"].startswith(f"the drawdown rules of policy {old}") and "same outcome" in replay["why"]
    today = replay["compared_with"]  # never the application policy: no score, no limit
    assert (today["policy_version"], today["outcome"], today["reasons"], today["rule_hits"]) == (
        "dd-any", "review", ["LARGE_REQUEST_REVIEW"], ["DD_ANY"]
    )  # fmt: skip
    assert engine.cases.replay(held.decision_id, old)["compared_with"] is None
    refused(engine, "unknown_policy_version", "policy_version", engine.cases.replay, held.decision_id, "nope")

    client = TestClient(create_app(engine), raise_server_exceptions=False)
    key = engine.create_api_key("analyst")
    r = client.get(f"/v1/decisions/{held.decision_id}/replay", headers={"X-API-Key": key})
    assert r.status_code == 200, r.json()
    assert r.json() == replay
    r = client.get(f"/v1/decisions/{held.decision_id}/replay?policy_version=nope", headers={"X-API-Key": key})
    assert (r.status_code, r.json()["field"]) == (404, "policy_version")
    env = {"FENGKONG_DATABASE_URL": str(engine.db.url), "FENGKONG_SECRET_KEY": TEST_SECRET, "COLUMNS": "300"}
    shown = CliRunner().invoke(cli_app, ["cases", "show", held.case_id], env=env, catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert f"replay under {old}: reproduced=True (the drawdown rules of policy {old}" in shown.output

    # a person's decision: null, with why; the replay shows what the drawdown rules said
    engine.cases.claim(held.case_id, A1)
    override_id = engine.cases.resolve(held.case_id, A1, "decline", "no answer on the number on file")["result"][
        "override_decision_id"
    ]
    by_person = engine.cases.replay(override_id)
    assert (by_person["kind"], by_person["decision_kind"], by_person["reproduced"]) == ("override", "drawdown", None)
    assert by_person["stored"]["outcome"] == "decline" and by_person["in_force"]["outcome"] == "review"
    assert f"a person made this decision (case {held.case_id})" in by_person["why"]

    # a record that no longer matches its rules: false, with the differences; one lacking a feature: null, why
    with engine.db.begin() as conn:
        features = conn.execute(sa.select(decisions.c.features).where(decisions.c.id == held.decision_id)).scalar_one()
        edited = {**features, "drawdown_call_in_progress": False}
        conn.execute(sa.update(decisions).where(decisions.c.id == held.decision_id).values(features=edited))
    tampered = engine.cases.replay(held.decision_id)
    assert tampered["reproduced"] is False and tampered["in_force"]["outcome"] == "approve"
    assert tampered["differences"][0] == "outcome approve, stored review" and "investigate" in tampered["why"]
    with engine.db.begin() as conn:
        gone = {k: v for k, v in edited.items() if k != "customer_drawdowns_1h"}
        conn.execute(sa.update(decisions).where(decisions.c.id == held.decision_id).values(features=gone))
    lacking = engine.cases.replay(held.decision_id)
    assert (lacking["reproduced"], lacking["in_force"]["replayable"]) == (None, False)
    assert lacking["why"].startswith("not replayable") and "customer_drawdowns_1h" in lacking["why"]


def test_a_batch_of_cases_opens_in_one_go_in_order_once_per_source(engine: Any) -> None:
    first = engine.cases.open("complaint", "cust-m1", event_id="evt-m1", evidence={"category": "service"}, actor=A1)
    chain = audit_kinds_count(engine)
    answers = engine.cases.open_many(
        [
            {"type": "complaint", "customer_id": "cust-m2", "event_id": "evt-m2", "priority": 1},
            {"type": "complaint", "customer_id": "cust-m1", "event_id": "evt-m1"},  # already open
            {"type": "complaint", "customer_id": "cust-m2", "event_id": "evt-m2"},  # named twice in the batch
            {"type": "held_drawdown", "customer_id": "cust-m3", "evidence": {"amount": 8000}},  # manual: always new
        ],
        actor="system",
    )
    assert [a["created"] for a in answers] == [True, False, False, True]
    assert answers[1]["case_id"] == first["case_id"] and answers[2]["case_id"] == answers[0]["case_id"]
    assert [a["customer_id"] for a in answers] == ["cust-m2", "cust-m1", "cust-m2", "cust-m3"]
    # what the batch answers is what is stored, and each new case's opening step is in the audit chain
    for answer in (answers[0], answers[3]):
        stored = engine.cases.get(answer["case_id"])
        assert {k: stored[k] for k in ("type", "priority", "due_at", "source", "created_at")} == {
            k: answer[k] for k in ("type", "priority", "due_at", "source", "created_at")
        }
    assert audit_kinds_count(engine) == chain + 2
    assert engine.verify_audit().ok
    # a bad request refuses the whole batch, naming the field, and opens nothing
    before = len(engine.cases.list(limit=500))
    with pytest.raises(FengkongError) as bad:
        engine.cases.open_many(
            [
                {"type": "complaint", "customer_id": "cust-m4", "event_id": "evt-m4"},
                {"type": "complaint", "customer_id": "cust-m5", "event_id": "evt-m5", "priority": 9},
            ]
        )
    assert bad.value.field == "priority"
    with pytest.raises(FengkongError) as unknown:  # a misspelt field is named, not ignored
        engine.cases.open_many([{"type": "complaint", "customer_id": "cust-m4", "evnt_id": "evt-m4"}])
    assert (unknown.value.code, unknown.value.field) == ("unknown_field", "evnt_id")
    with pytest.raises(FengkongError) as foreign:  # an alert of another customer
        alert = store_alert(engine, "cust-m6", "alert")
        engine.cases.open_many([{"type": "fraud_alert", "customer_id": "cust-m7", "alert_id": alert}])
    assert foreign.value.code == "alert_customer_mismatch"
    assert len(engine.cases.list(limit=500)) == before


def audit_kinds_count(engine: Any) -> int:
    with engine.db.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one())


def test_held_and_declined_drawdowns_are_shown_and_appealed_as_drawdowns(
    sqlite_engine: Any, application: dict[str, Any]
) -> None:
    """A drawdown decision is not an application: its case shows the drawdown rules, it is replayed by the drawdown
    rules of its own version (never the application policy), and an appeal upheld opens no new credit line."""
    from test_drawdowns import ask, open_line

    engine = sqlite_engine
    line = open_line(engine, application, "dd-case")
    held = engine.lines.drawdown(line["line_id"], ask(500, call_in_progress=True, language="en"))
    case = engine.cases.get(held.case_id)
    assert (case["type"], case["decision_kind"]) == ("held_drawdown", "drawdown")
    replay = case["replay"]
    assert replay == engine.cases.replay(held.decision_id)
    assert (replay["decision_kind"], replay["reproduced"], replay["in_force"]["rule_hits"]) == (
        "drawdown", True, ["DD_CALL_IN_PROGRESS"]
    )  # fmt: skip
    assert replay["in_force"]["outcome"] == "review" and replay["stored"]["score"] is None
    # a person is deciding the held drawdown now: an appeal waits for that answer
    refused(
        engine, "decision_under_review", "decision_id", engine.cases.appeal, "dd-case",
        decision_id=held.decision_id, message="let it through",
    )  # fmt: skip
    view = engine.cases.customer_view(held.decision_id, "dd-case", "en")
    assert view["under_review"] is True and "drawdown of CNY 500" in view["headline"]

    engine.add_to_list("blacklist", "payee", "6222999900001111", "mule account")
    declined = engine.lines.drawdown(line["line_id"], ask(300, destination_account="6222999900001111"))
    assert declined.outcome.value == "decline"
    lines_before = [entry["line_id"] for entry in engine.lines.for_customer("dd-case")]
    filed = engine.cases.appeal("dd-case", decision_id=declined.decision_id, message="it is my own card")
    engine.cases.claim(filed["case_id"], A1)
    pending = engine.cases.resolve(filed["case_id"], A1, "upheld", "card is the customer's own; list entry wrong")
    assert pending["status"] == "pending_second_approval"  # it overrides an automated decline
    done = engine.cases.approve(filed["case_id"], A2, "agree")
    assert [entry["line_id"] for entry in engine.lines.for_customer("dd-case")] == lines_before  # no new line
    # paid out with the resolution, through the drawdowns' pay-out (tests/test_drawdown_appeals.py): no follow-up
    assert "follow_ups" not in done and done["result"]["loan_id"] == f"loan-{declined.decision_id}"
    assert engine.cases.get(filed["case_id"])["steps"][-1]["action"] == "approved"
    status = engine.cases.appeal_status(filed["case_id"], "dd-case", "en")
    assert status["message"].endswith("is approved and has been paid to the account you named.")
    assert "credit line of" not in status["message"]
    assert engine.verify_audit().ok
