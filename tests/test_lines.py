"""Live credit lines in storage: opened by approvals, acted on within guardrails, reviewed in resumable chunks."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from fengkong.errors import FengkongError
from fengkong.pii import inspect_id_number
from fengkong.store.tables import audit_log, credit_lines, line_actions, line_review_runs


def today() -> dt.date:
    """Today in UTC, read when a test needs it (a module constant goes stale when a run crosses midnight)."""
    return dt.datetime.now(dt.UTC).date()


def days_from_today(days: int, since: dt.date) -> set[str]:
    """The date ``days`` after today as an action taken since ``since`` may have seen it (midnight may pass)."""
    return {(d + dt.timedelta(days=days)).isoformat() for d in (since, today())}


def id_age(raw_id: str) -> int:
    age = inspect_id_number(raw_id, dt.date.today()).age_on(dt.date.today())
    assert age is not None
    return age


def approved(engine: Any, application: dict[str, Any], customer: str, **changes: Any) -> dict[str, Any]:
    app = copy.deepcopy(application)
    app["applicant"]["age"] = id_age(app["identity"]["id_number"])
    # one person each: no identifier shared with the other test customers (shared ones link them as a ring)
    app["identity"].pop("bank_card")
    app["identity"]["id_number_hash"] = hashlib.sha256(customer.encode()).hexdigest()
    del app["identity"]["id_number"]
    app["customer_id"] = customer
    app["identity"]["device_id"] = f"dev-{customer}"
    app["identity"]["phone"] = "138" + f"{abs(hash(customer)) % 10**8:08d}"
    for key, value in changes.items():
        app["applicant"][key] = value
    decision = engine.decide(app)
    assert decision.outcome.value == "approve" and decision.line_id is not None, decision
    return engine.lines.get(decision.line_id)


def snapshot(engine: Any) -> dict[str, Any]:
    with engine.db.connect() as conn:
        return {
            "lines": [tuple(r) for r in conn.execute(sa.select(credit_lines).order_by(credit_lines.c.id))],
            "actions": conn.execute(sa.select(sa.func.count()).select_from(line_actions)).scalar_one(),
            "audit": conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one(),
            "runs": conn.execute(sa.select(sa.func.count()).select_from(line_review_runs)).scalar_one(),
        }


def test_an_approval_opens_a_line_with_its_history(engine: Any, application: dict[str, Any]) -> None:
    line = approved(engine, application, "c-open")
    decision = engine.get_decision(line["decision_id"])
    assert (line["status"], line["limit"], line["available"], line["outstanding"]) == (
        "active",
        decision.limit,
        decision.limit,
        0.0,
    )
    assert line["apr"] == decision.apr and line["policy_version"] == decision.policy_version
    (opened,) = line["history"]
    assert (opened["action"], opened["actor_kind"], opened["to_status"]) == ("open", "decision", "active")
    assert opened["evidence"] == {"decision_id": decision.decision_id}
    assert "已开通" in opened["notice"]["zh"] and "open" in opened["notice"]["en"]
    assert engine.get_decision(decision.decision_id).line_id == line["line_id"]
    assert [x["line_id"] for x in engine.lines.for_customer("c-open")] == [line["line_id"]]
    assert engine.verify_audit().ok


def test_actions_follow_the_state_machine_with_reasons_and_notices(engine: Any, application: dict[str, Any]) -> None:
    line = approved(engine, application, "c-act")
    lid, limit = line["line_id"], line["limit"]
    day0 = today()
    frozen = engine.lines.act(lid, "freeze", actor="ana", reasons=["LINE_RISK_EVENTS"], note="call back", review_days=7)
    assert (frozen["status"], frozen["available"]) == ("frozen", 0.0)
    assert frozen["review_due_on"] in days_from_today(7, day0)
    assert [r["code"] for r in frozen["reasons"]] == ["LINE_RISK_EVENTS"]
    last = frozen["history"][-1]
    assert (last["action"], last["from_status"], last["to_status"], last["actor"], last["note"]) == (
        "freeze",
        "active",
        "frozen",
        "ana",
        "call back",
    )
    assert "暂停服务" in last["notice"]["zh"] and "paused" in last["notice"]["en"]
    assert "人工复核" in last["notice"]["zh"] and "human review" in last["notice"]["en"]
    # the customer's notice never names the fraud signal behind a risk freeze
    assert "alert" not in last["notice"]["en"].lower()

    before = snapshot(engine)
    for action, kwargs, code in [
        ("increase", {"new_limit": limit + 100}, "invalid_transition"),  # not on a frozen line
        ("unfreeze", {"actor_kind": "system", "reasons": ["LINE_REVIEW_CLEARED"]}, None),
    ]:
        if code:
            with pytest.raises(FengkongError) as err:
                engine.lines.act(lid, action, actor="ana", note="n", **kwargs)
            assert (err.value.code, err.value.field, err.value.status) == (code, "action", 409)
            assert snapshot(engine) == before
        else:
            assert engine.lines.act(lid, action, actor="sys", **kwargs)["status"] == "active"
    closed = engine.lines.act(lid, "close", actor="ana", note="customer asked", reasons=["LINE_CUSTOMER_REQUEST"])
    assert closed["status"] == "closed"
    before = snapshot(engine)
    with pytest.raises(FengkongError) as err:
        engine.lines.act(lid, "unfreeze", actor="ana", note="n")
    assert err.value.code == "invalid_transition"
    with pytest.raises(FengkongError) as err:
        engine.lines.act(lid, "restore", actor="bot", actor_kind="review", reasons=["LINE_APPEAL_UPHELD"])
    assert err.value.code == "invalid_transition" and "person" in err.value.message
    assert snapshot(engine) == before
    # only a person restores a closed line: an upheld appeal
    restored = engine.lines.restore(lid, actor="case-1")
    assert restored["status"] == "active" and restored["history"][-1]["reasons"] == ["LINE_APPEAL_UPHELD"]
    assert [h["seq"] for h in restored["history"]] == list(range(1, 6))
    assert engine.verify_audit().ok


def test_guardrails_and_bad_input_change_nothing(engine: Any, application: dict[str, Any]) -> None:
    line = approved(engine, application, "c-guard")
    lid, limit = line["line_id"], line["limit"]
    g = engine.policy().spec.lines.guardrails
    with engine.db.begin() as conn:
        engine.lines.on_drawdown(conn, lid, limit * 0.6, dt.datetime.now(dt.UTC))
    before = snapshot(engine)
    cases = [
        ({"action": "decrease", "new_limit": limit * 0.5}, "guardrail", "outstanding_floor"),
        ({"action": "increase", "new_limit": limit * (1 + g.max_increase_fraction) + 100}, "guardrail", "max_increase"),
        ({"action": "increase", "new_limit": g.max_limit + 100}, "guardrail", "max_limit"),
        ({"action": "increase", "new_limit": limit - 100}, "invalid_value", "above the limit"),
        ({"action": "increase"}, "invalid_value", "needs new_limit"),
        ({"action": "freeze", "new_limit": 5.0}, "invalid_value", "takes no new_limit"),
        ({"action": "explode"}, "invalid_value", "unknown action"),
        ({"action": "freeze", "reasons": ["NOT_A_CODE"]}, "invalid_value", "NOT_A_CODE"),
        ({"action": "freeze", "note": "  "}, "missing_field", "note"),
        ({"action": "freeze", "review_days": 0}, "invalid_value", "review_days"),
    ]
    for kwargs, code, text in cases:
        kwargs.setdefault("note", "why")
        action = kwargs.pop("action")
        with pytest.raises(FengkongError) as err:
            engine.lines.act(lid, action, actor="ana", **kwargs)
        assert err.value.code == code and text in err.value.message, (kwargs, err.value)
        assert snapshot(engine) == before
    with pytest.raises(FengkongError) as err:
        engine.lines.act("line_nope", "freeze", actor="ana", note="n")
    assert (err.value.code, err.value.status) == ("line_not_found", 404)

    raised = engine.lines.act(lid, "increase", actor="ana", new_limit=limit + 1000, note="good payer")
    assert raised["limit"] == limit + 1000
    # cooling-off: no change of limit soon after an increase, in either direction
    with pytest.raises(FengkongError) as err:
        engine.lines.act(lid, "decrease", actor="ana", new_limit=limit, note="n")
    assert err.value.code == "guardrail" and "increase_cooling_off" in err.value.message


def test_drawdowns_take_from_the_line_and_repayments_give_back(engine: Any, application: dict[str, Any]) -> None:
    line = approved(engine, application, "c-money")
    lid, limit = line["line_id"], line["limit"]
    now = dt.datetime.now(dt.UTC)
    with engine.db.begin() as conn:
        engine.lines.on_drawdown(conn, lid, limit - 100, now)
    assert engine.lines.available(lid) == 100
    before = snapshot(engine)
    for amount, code in ((101.0, "insufficient_available"), (0.0, "invalid_value"), (-5.0, "invalid_value")):
        with pytest.raises(FengkongError) as err, engine.db.begin() as conn:
            engine.lines.on_drawdown(conn, lid, amount, now)
        assert err.value.code == code
    assert snapshot(engine) == before
    with engine.db.begin() as conn:
        engine.lines.on_principal_repaid(conn, lid, 400, now)
    assert engine.lines.available(lid) == 500
    engine.lines.act(lid, "freeze", actor="ana", note="n")
    with pytest.raises(FengkongError) as err, engine.db.begin() as conn:
        engine.lines.on_drawdown(conn, lid, 10, now)
    assert err.value.code == "line_not_active"


def test_a_freeze_line_trigger_freezes_the_customers_lines(engine: Any, application: dict[str, Any]) -> None:
    line = approved(engine, application, "c-trig")
    policy = engine.policy()
    alert = {
        "id": "alr_1",
        "created_at": dt.datetime.now(dt.UTC),
        "customer_id": "c-trig",
        "event_id": "ev-1",
        "trigger_id": "TAKEOVER",
        "action": "freeze_line",
        "reason": "ACCOUNT_TAKEOVER_SUSPECTED",
        "policy_version": policy.version,
        "features": {"customer_new_device_24h": 1},
        "status": "open",
    }
    engine._store_alerts([alert], "test")
    after = engine.lines.get(line["line_id"])
    assert after["status"] == "frozen"
    last = after["history"][-1]
    assert (last["actor_kind"], last["actor"], last["reasons"]) == (
        "trigger",
        "TAKEOVER",
        ["ACCOUNT_TAKEOVER_SUSPECTED"],
    )
    assert last["evidence"]["alert_id"] == "alr_1"
    assert engine.verify_audit().ok


def _portfolio(engine: Any, application: dict[str, Any], n: int) -> list[str]:
    ids = [approved(engine, application, f"c-rev-{i}")["line_id"] for i in range(n)]
    now = dt.datetime.now(dt.UTC)
    # half the customers start borrowing from many lenders: the strategy cuts their lines
    events = [
        {
            "event_id": f"bu-{i}",
            "type": "bureau_update",
            "customer_id": f"c-rev-{i}",
            "occurred_at": now.isoformat(),
            "inquiries_7d": 5,
            "inquiries_30d": 12,
            "inquiries_90d": 14,
            "active_loans": 6,
            "total_debt": 90000.0,
        }
        for i in range(0, n, 2)
    ]
    result = engine.ingest(events)
    assert len(result.accepted) == len(events), result
    return ids


def test_review_dry_run_writes_nothing_and_apply_is_resumable(engine: Any, application: dict[str, Any]) -> None:
    ids = _portfolio(engine, application, 6)
    before = snapshot(engine)
    dry = engine.lines.review()
    assert snapshot(engine) == before
    assert dry.report.lines == 6 and dry.report.actions["decrease"] == 3
    assert dry.report.reasons["decrease"]["LINE_MULTI_HEAD_GROWTH"] == 3
    assert dry.report.first_time == 3 and dry.report.limit_after < dry.report.limit_before

    class Stop(Exception):
        pass

    def stop_after_first(done: int, total: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        engine.lines.review(apply=True, chunk_size=2, on_chunk=stop_after_first)
    with engine.db.connect() as conn:
        (run_id, status, acted) = conn.execute(
            sa.select(line_review_runs.c.id, line_review_runs.c.status, line_review_runs.c.lines_acted)
        ).one()
    assert (status, acted) == ("running", 2)
    # a new run is refused while one is unfinished, and names it
    with pytest.raises(FengkongError) as err:
        engine.lines.review(apply=True)
    assert err.value.code == "conflict" and run_id in err.value.message
    resumed = engine.lines.review(resume=run_id, chunk_size=2)
    assert resumed.resumed and resumed.applied == 1
    with engine.db.connect() as conn:
        acted_lines = (
            conn.execute(sa.select(line_actions.c.line_id).where(line_actions.c.review_run_id == run_id))
            .scalars()
            .all()
        )
        assert conn.execute(sa.select(line_review_runs.c.status)).scalar_one() == "completed"
    assert len(acted_lines) == len(set(acted_lines)) == 3  # every cut line acted on exactly once
    for lid in acted_lines:
        line = engine.lines.get(lid)
        last = line["history"][-1]
        assert (last["action"], last["actor_kind"], last["review_run_id"]) == ("decrease", "review", run_id)
        assert last["evidence"]["line_inquiries_growth"] > 0 and last["evidence"]["segment"] == "MULTI_HEAD_GROWTH"
        assert line["limit"] < line["history"][0]["limit_after"]
    with pytest.raises(FengkongError) as err:
        engine.lines.review(resume=run_id)
    assert err.value.code == "conflict"
    assert set(acted_lines) <= set(ids)
    # the guardrail counts decreases in the window from the stored history: a second cut is allowed, a third not
    second = engine.lines.review(apply=True)
    assert second.applied == 3 and second.report.actions["decrease"] == 3
    third = engine.lines.review()
    assert third.report.actions["decrease"] == 0 and third.report.blocked == {"max_decreases": 3}
    assert engine.verify_audit().ok


def test_a_decrease_with_notice_takes_effect_on_its_day(engine: Any, application: dict[str, Any]) -> None:
    line = approved(engine, application, "c-notice")
    lid, limit = line["line_id"], line["limit"]
    engine.policy().spec.lines.guardrails.decrease_notice_days = 30  # the lender's notice rule
    day0 = today()
    try:
        cut = engine.lines.act(lid, "decrease", actor="ana", new_limit=limit - 500, note="n")
    finally:
        engine.policy().spec.lines.guardrails.decrease_notice_days = 0
    assert cut["limit"] == limit and cut["pending_limit"] == limit - 500
    assert cut["pending_effective_on"] in days_from_today(30, day0)
    assert "生效" in cut["history"][-1]["notice"]["zh"]
    effective = dt.date.fromisoformat(cut["pending_effective_on"])
    assert engine.lines.settle_pending(effective - dt.timedelta(days=1)) == 0
    assert engine.lines.settle_pending(effective) == 1
    done = engine.lines.get(lid)
    assert (done["limit"], done["pending_limit"], done["history"][-1]["action"]) == (
        limit - 500,
        None,
        "decrease_effective",
    )


def test_cli_review_and_show(sqlite_engine: Any, application: dict[str, Any]) -> None:
    from fengkong.cli import app

    line = approved(sqlite_engine, application, "c-cli")
    url = sqlite_engine.database_url
    runner = CliRunner()
    r = runner.invoke(app, ["lines", "review", "--json", "--database-url", url])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["lines"] == 1 and json.loads(r.output)["run_id"] is None
    r = runner.invoke(app, ["lines", "show", line["line_id"], "--json", "--database-url", url])
    assert r.exit_code == 0 and json.loads(r.output)["status"] == "active"
    r = runner.invoke(app, ["lines", "act", line["line_id"], "freeze", "--note", "check", "--database-url", url])
    assert r.exit_code == 0 and "frozen" in r.output
    r = runner.invoke(app, ["lines", "review", "--as-of", "2026-13-01", "--database-url", url])
    assert r.exit_code == 1 and "is not a date" in r.output
    r = runner.invoke(app, ["lines", "show", "line_missing", "--database-url", url])
    assert r.exit_code == 1


def test_http_lines_doors_and_roles(sqlite_engine: Any, application: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    from fengkong.api import create_app

    engine = sqlite_engine
    line = approved(engine, application, "c-http")
    lid = line["line_id"]
    keys = {role: engine.create_api_key(role) for role in ("system", "analyst", "auditor", "admin")}
    client = TestClient(create_app(engine), raise_server_exceptions=False)

    def h(role: str) -> dict[str, str]:
        return {"X-API-Key": keys[role]}

    r = client.get(f"/v1/lines/{lid}?language=en", headers=h("system"))
    assert r.status_code == 200 and r.json()["status"] == "active" and r.json()["available"] == line["limit"]
    assert client.get("/v1/customers/c-http/lines", headers=h("auditor")).json()[0]["line_id"] == lid
    assert client.get("/v1/lines/line_nope", headers=h("analyst")).json()["code"] == "line_not_found"
    body = {"action": "freeze", "note": "customer reported a lost phone", "reasons": ["LINE_RISK_EVENTS"]}
    for role in ("system", "auditor"):  # may read lines, may not act on them
        assert client.post(f"/v1/lines/{lid}/actions", json=body, headers=h(role)).status_code == 403
    assert client.post(f"/v1/lines/{lid}/actions", json=body).status_code == 401
    before = snapshot(engine)
    for bad, field in (({**body, "note": ""}, "note"), ({**body, "action": "nuke"}, "action"), ({**body, "x": 1}, "x")):
        r = client.post(f"/v1/lines/{lid}/actions", json=bad, headers=h("analyst"))
        assert r.status_code == 422 and field in json.dumps(r.json()), r.json()
    assert snapshot(engine) == before
    r = client.post(f"/v1/lines/{lid}/actions", json=body, headers=h("analyst"))
    assert r.status_code == 200 and r.json()["status"] == "frozen"
    assert r.json()["history"][-1]["actor"].startswith("key:")
    r = client.post(f"/v1/lines/{lid}/actions", json={**body, "action": "unfreeze"}, headers=h("analyst"))
    assert r.status_code == 200
    r = client.post(f"/v1/lines/{lid}/actions", json={**body, "action": "unfreeze"}, headers=h("analyst"))
    assert (r.status_code, r.json()["code"]) == (409, "invalid_transition")
    r = client.post("/v1/line-reviews", json={}, headers=h("analyst"))
    assert r.status_code == 200 and r.json()["run_id"] is None and r.json()["report"]["lines"] == 1
    assert client.post("/v1/line-reviews", json={}, headers=h("system")).status_code == 403
    r = client.post("/v1/line-reviews", json={"apply": True, "as_of": "2026-02-30"}, headers=h("analyst"))
    assert r.status_code == 422
    r = client.post("/v1/line-reviews", json={"apply": True}, headers=h("admin"))
    assert r.status_code == 200 and r.json()["run_id"].startswith("rev_")


def test_an_applied_review_never_acts_on_a_line_that_moved_since_the_plan(
    sqlite_engine: Any, application: dict[str, Any]
) -> None:
    engine = sqlite_engine
    ids = _portfolio(engine, application, 4)  # customers 0 and 2 will be cut by 30 %
    cut_a, cut_b = ids[0], ids[2]
    limit_b = engine.lines.get(cut_b)["limit"]

    def between_chunks(done: int, total: int) -> None:
        if done == 1:  # the second customer draws almost all of the line after the plan was made
            with engine.db.begin() as conn:
                engine.lines.on_drawdown(conn, cut_b, limit_b * 0.9, dt.datetime.now(dt.UTC))
            engine.lines.act(ids[1], "freeze", actor="ana", note="moved after the plan")

    run = engine.lines.review(apply=True, chunk_size=1, on_chunk=between_chunks)
    b = engine.lines.get(cut_b)
    assert b["limit"] >= b["outstanding"]  # the cut never goes below what is owed now
    assert b["limit"] == limit_b * 0.9 or b["limit"] == limit_b
    assert engine.lines.get(cut_a)["limit"] < engine.lines.get(cut_a)["history"][0]["limit_after"]
    assert run.applied + run.skipped == 2
    # a review is applied as of today only; other dates are dry runs
    with pytest.raises(FengkongError) as err:
        engine.lines.review(today() + dt.timedelta(days=200), apply=True)
    assert (err.value.code, err.value.field) == ("invalid_value", "as_of")
    assert engine.lines.review(today() + dt.timedelta(days=200)).run_id is None
    # a line is opened from an application decision only, and its note is part of the audited action
    drawdown = engine.lines.drawdown(cut_a, {"amount": 100, "term": 12, "destination_account": "6222000011112222"})
    with pytest.raises(FengkongError) as err:
        engine.lines.open_from_decision(drawdown.decision_id, "ana", note="n")
    assert err.value.field == "decision_id"
    assert engine.verify_audit().ok


def test_a_decrease_in_effect_at_once_says_so(sqlite_engine: Any, application: dict[str, Any]) -> None:
    line = approved(sqlite_engine, application, "c-now")
    cut = sqlite_engine.lines.act(line["line_id"], "decrease", actor="ana", new_limit=line["limit"] - 500, note="n")
    notice = cut["history"][-1]["notice"]
    assert "已由" in notice["zh"] and notice["en"].startswith("Your credit limit has been changed from")
