"""Every status transition, every guardrail, the notice of every action, and frozen lines reviewed by their date
without anyone running anything (the line scheduler, in-process and in ``fengkong serve``).

Time passing is simulated by moving stored dates back (a review date, an increase, a decrease), never by
patching the clock: the code under test reads the real date.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from fengkong.domain import Language
from fengkong.errors import FengkongError
from fengkong.policy.loader import DEFAULT_POLICY_PATH
from fengkong.reasons import reason
from fengkong.store.tables import alerts, credit_lines, line_actions, line_review_runs
from test_lines import _portfolio, approved, snapshot, today

ROOT = Path(__file__).resolve().parent.parent
CJK = re.compile(r"[\u4e00-\u9fff]")

#: The state machine, written out by hand (not read from the code): status → action → status after.
ALLOWED = {
    "active": {"increase": "active", "decrease": "active", "freeze": "frozen", "close": "closed"},
    "frozen": {"freeze": "frozen", "unfreeze": "active", "close": "closed", "restore": "active"},
    "closed": {"restore": "active"},
}
ACTIONS = ("increase", "decrease", "freeze", "unfreeze", "close", "restore")


def _args(action: str, limit: float) -> dict[str, Any]:
    if action == "increase":
        return {"new_limit": limit + 1000}
    if action == "decrease":
        return {"new_limit": limit - 1000}
    return {}


def _to(engine: Any, line_id: str, status: str) -> None:
    if status in ("frozen", "closed"):
        engine.lines.act(line_id, "freeze", actor="ana", note="set up", reasons=["LINE_RISK_EVENTS"])
    if status == "closed":
        engine.lines.act(line_id, "close", actor="ana", note="set up", reasons=["LINE_CUSTOMER_REQUEST"])


def _publish(engine: Any, tmp_path: Path, version: str, **guardrails: int) -> None:
    """Publish and activate the default policy with some guardrails changed (the policy is where they live)."""
    text = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
    text = re.sub(r'^version: ".*"$', f'version: "{version}"', text, count=1, flags=re.M)
    for name, value in guardrails.items():
        text, n = re.subn(rf"^(    {name}: )\d+", rf"\g<1>{value}", text, count=1, flags=re.M)
        assert n == 1, name
    path = tmp_path / f"{version}.yaml"
    path.write_text(text, encoding="utf-8")
    engine.publish_policy(engine.check_policy(path), actor="test", activate=True)
    assert engine.policy().version == version


def _backdate(engine: Any, line_id: str, **values: Any) -> None:
    with engine.db.begin() as conn:
        conn.execute(sa.update(credit_lines).where(credit_lines.c.id == line_id).values(**values))


# ------------------------------------------------------------------------------------------ the state machine


def test_every_transition_is_allowed_or_refused_as_the_table_says(
    sqlite_engine: Any, application: dict[str, Any]
) -> None:
    engine = sqlite_engine
    notices: dict[str, dict[str, str]] = {}
    for status, allowed in ALLOWED.items():
        probe = approved(engine, application, f"c-sm-{status}")
        _to(engine, probe["line_id"], status)
        assert engine.lines.get(probe["line_id"])["status"] == status
        for action in ACTIONS:
            if action in allowed:
                continue
            before = snapshot(engine)
            with pytest.raises(FengkongError) as err:
                engine.lines.act(probe["line_id"], action, actor="ana", note="try", **_args(action, probe["limit"]))
            assert (err.value.code, err.value.field, err.value.status) == ("invalid_transition", "action", 409)
            assert f"cannot {action} a line that is {status}" in err.value.message
            assert snapshot(engine) == before, (status, action)
        for action, after in allowed.items():
            line = approved(engine, application, f"c-sm-{status}-{action}")
            _to(engine, line["line_id"], status)
            done = engine.lines.act(
                line["line_id"], action, actor="ana", note=f"{action} it", **_args(action, line["limit"])
            )
            last = done["history"][-1]
            assert (done["status"], last["action"], last["from_status"], last["to_status"]) == (
                after,
                action,
                status,
                after,
            )
            assert (last["actor_kind"], last["actor"], last["note"]) == ("analyst", "ana", f"{action} it")
            assert done["available"] == (done["limit"] - done["outstanding"] if after == "active" else 0.0)
            notices[action] = last["notice"]
    # an automated actor never restores a line: only a person (an upheld appeal, an analyst) does
    line = approved(engine, application, "c-sm-auto")
    _to(engine, line["line_id"], "closed")
    for kind in ("review", "trigger", "system", "decision"):
        with pytest.raises(FengkongError) as err:
            engine.lines.act(line["line_id"], "restore", actor="bot", actor_kind=kind, reasons=["LINE_APPEAL_UPHELD"])
        assert err.value.code == "invalid_transition" and "person" in err.value.message
    assert engine.lines.get(line["line_id"])["status"] == "closed"

    # every action's notice is in Chinese and in English; a restriction says why and how to ask a person
    assert set(notices) == set(ACTIONS)
    for action, notice in notices.items():
        assert CJK.search(notice["zh"]) and not CJK.search(notice["en"]), action
        if action in ("decrease", "freeze", "close"):
            assert "人工复核" in notice["zh"] and "human review" in notice["en"], action
            why = reason("LINE_ANALYST_DECISION")
            assert why.customer_text(Language.ZH) in notice["zh"] and why.customer_text(Language.EN) in notice["en"]
    assert engine.verify_audit().ok


# ------------------------------------------------------------------------------------------ guardrails


def test_at_most_n_decreases_in_the_window_and_the_window_slides(
    sqlite_engine: Any, application: dict[str, Any], tmp_path: Path
) -> None:
    engine = sqlite_engine
    _publish(engine, tmp_path, "2026.11.5-d2", max_decreases=2, decrease_window_days=90)
    line = approved(engine, application, "c-window")
    lid, limit = line["line_id"], line["limit"]
    engine.lines.act(lid, "decrease", actor="ana", new_limit=limit - 1000, note="one")
    engine.lines.act(lid, "decrease", actor="ana", new_limit=limit - 2000, note="two")
    before = snapshot(engine)
    with pytest.raises(FengkongError) as err:
        engine.lines.act(lid, "decrease", actor="ana", new_limit=limit - 3000, note="three")
    assert (err.value.code, err.value.field, err.value.status) == ("guardrail", "new_limit", 409)
    assert err.value.message.startswith("max_decreases:") and "90 days" in err.value.message
    assert snapshot(engine) == before
    # the review holds the same line back for the same reason
    assert engine.lines.review().table.filter(line_id=lid)["blocked_by"].to_list() in (["max_decreases"], [None])
    # 91 days later the first two cuts are outside the window: a third is allowed
    with engine.db.begin() as conn:
        conn.execute(
            sa.update(line_actions)
            .where((line_actions.c.line_id == lid) & (line_actions.c.action == "decrease"))
            .values(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=91))
        )
    assert engine.lines.act(lid, "decrease", actor="ana", new_limit=limit - 3000, note="three")["limit"] == limit - 3000


def test_cooling_off_after_an_increase_ends_on_its_last_day(sqlite_engine: Any, application: dict[str, Any]) -> None:
    engine = sqlite_engine
    g = engine.policy().spec.lines.guardrails
    line = approved(engine, application, "c-cool")
    lid, limit = line["line_id"], line["limit"]
    engine.lines.act(lid, "increase", actor="ana", new_limit=limit + 1000, note="good payer")
    for action, new_limit in (("increase", limit + 2000), ("decrease", limit)):
        with pytest.raises(FengkongError) as err:
            engine.lines.act(lid, action, actor="ana", new_limit=new_limit, note="again")
        assert err.value.message.startswith("increase_cooling_off:")
    _backdate(engine, lid, last_increase_on=today() - dt.timedelta(days=g.increase_cooling_off_days - 1))
    with pytest.raises(FengkongError):
        engine.lines.act(lid, "increase", actor="ana", new_limit=limit + 2000, note="a day early")
    _backdate(engine, lid, last_increase_on=today() - dt.timedelta(days=g.increase_cooling_off_days))
    assert (
        engine.lines.act(lid, "increase", actor="ana", new_limit=limit + 2000, note="on time")["limit"] == limit + 2000
    )


def test_a_decrease_given_with_notice_binds_on_its_day(
    sqlite_engine: Any, application: dict[str, Any], tmp_path: Path
) -> None:
    engine = sqlite_engine
    _publish(engine, tmp_path, "2026.11.5-notice", decrease_notice_days=30)
    line = approved(engine, application, "c-notice-draw")
    lid, limit = line["line_id"], line["limit"]
    cut = engine.lines.act(lid, "decrease", actor="ana", new_limit=limit - 10_000, note="income fell")
    assert (cut["limit"], cut["available"], cut["pending_limit"]) == (limit, limit, limit - 10_000)
    notice = cut["history"][-1]["notice"]
    assert "起生效" in notice["zh"] and f"from {cut['pending_effective_on']}" in notice["en"]
    # the notice period ends today: the lower limit binds a drawdown even before anything settles it
    _backdate(engine, lid, pending_effective_on=today())
    with pytest.raises(FengkongError) as err, engine.db.begin() as conn:
        engine.lines.on_drawdown(conn, lid, limit - 5_000, dt.datetime.now(dt.UTC))
    assert (
        err.value.code == "insufficient_available" and f"above the available {limit - 10_000:.2f}" in err.value.message
    )
    assert engine.lines.available(lid) == limit - 10_000
    settled = engine.lines.get(lid)
    assert (settled["limit"], settled["pending_limit"]) == (limit - 10_000, None)
    assert settled["history"][-1]["action"] == "decrease_effective"
    assert settled["history"][-1]["actor_kind"] == "system"

    # a review's decrease under the same policy is a notice too, and the line keeps its limit meanwhile
    ids = _portfolio(engine, application, 2)
    run = engine.lines.review(apply=True)
    assert run.applied == 1
    pending = engine.lines.get(ids[0])
    assert pending["limit"] == pending["history"][0]["limit_after"] and pending["pending_limit"] < pending["limit"]
    assert pending["pending_effective_on"] == (today() + dt.timedelta(days=30)).isoformat()
    assert "起生效" in pending["history"][-1]["notice"]["zh"]


# ------------------------------------------------------------------------------------------ frozen lines come back


def _frozen_due(engine: Any, application: dict[str, Any]) -> dict[str, str]:
    """Three frozen lines: one due and now clean, one due and still risky, one not yet due."""
    ids = {name: approved(engine, application, f"c-due-{name}")["line_id"] for name in ("clean", "risky", "later")}
    for lid in ids.values():
        engine.lines.act(lid, "freeze", actor="ana", note="checking", reasons=["LINE_RISK_EVENTS"], review_days=10)
    with engine.db.begin() as conn:  # a risk alert on one customer within the last 30 days
        conn.execute(
            sa.insert(alerts).values(
                id="alr_due_1",
                created_at=dt.datetime.now(dt.UTC),
                customer_id="c-due-risky",
                event_id="ev-due-1",
                trigger_id="T1",
                action="freeze_line",
                reason="ACCOUNT_TAKEOVER_SUSPECTED",
                policy_version=engine.policy().version,
                features={},
                status="open",
            )
        )
    _backdate(engine, ids["clean"], review_due_on=today())
    _backdate(engine, ids["risky"], review_due_on=today() - dt.timedelta(days=3))  # missed: overdue
    return ids


def test_the_scheduler_reviews_frozen_lines_by_their_date(sqlite_engine: Any, application: dict[str, Any]) -> None:
    from fengkong.lines.scheduler import LineScheduler

    engine = sqlite_engine
    ids = _frozen_due(engine, application)
    later_before = engine.lines.get(ids["later"])
    assert engine.lines.due_for_review() == 2
    tick = LineScheduler(engine).tick()
    assert (tick.due, tick.applied, tick.resumed, tick.waiting_for) == (2, 2, False, None)
    clean, risky = engine.lines.get(ids["clean"]), engine.lines.get(ids["risky"])
    assert clean["status"] == "active" and clean["review_due_on"] is None
    last = clean["history"][-1]
    assert (last["action"], last["actor_kind"], last["actor"], last["reasons"]) == (
        "unfreeze",
        "review",
        tick.run_id,
        ["LINE_REVIEW_CLEARED"],
    )
    assert "恢复使用" in last["notice"]["zh"] and "available again" in last["notice"]["en"]
    # still risky: frozen again, with a new review date and the reason, never left frozen without one
    g = engine.policy().spec.lines.guardrails
    assert risky["status"] == "frozen"
    assert risky["review_due_on"] == (today() + dt.timedelta(days=g.freeze_review_days)).isoformat()
    assert risky["history"][-1]["reasons"][0] == "LINE_RISK_EVENTS"
    assert risky["history"][-1]["evidence"]["line_risk_events_30d"] == 1.0
    assert engine.lines.get(ids["later"]) == later_before  # not yet due: untouched
    run = engine.lines.get_run(tick.run_id)
    assert (run["status"], run["scope"], run["lines_acted"]) == ("completed", "due", 2)
    # the next pass finds nothing due and writes nothing (no empty runs every hour)
    before = snapshot(engine)
    assert LineScheduler(engine).tick().due == 0
    assert snapshot(engine) == before
    assert engine.verify_audit().ok


def test_the_scheduler_resumes_its_own_interrupted_run_and_waits_for_a_persons(
    sqlite_engine: Any, application: dict[str, Any]
) -> None:
    from fengkong.lines.scheduler import LineScheduler

    engine = sqlite_engine
    ids = _frozen_due(engine, application)
    cut = _portfolio(engine, application, 2)[0]  # a full review would cut this active line; a due one must not

    class Crash(Exception):
        pass

    def crash(done: int, total: int) -> None:
        raise Crash

    with pytest.raises(Crash):
        engine.lines.review(apply=True, due_only=True, chunk_size=1, on_chunk=crash)
    assert engine.lines.unfinished_run()["scope"] == "due"
    tick = LineScheduler(engine).tick()
    assert tick.resumed and tick.applied == 1 and engine.lines.unfinished_run() is None
    with engine.db.connect() as conn:
        acted = conn.execute(sa.select(line_actions.c.line_id).where(line_actions.c.actor_kind == "review")).all()
    assert sorted(r[0] for r in acted) == sorted([ids["clean"], ids["risky"]])  # each once, and nothing else
    assert engine.lines.review().table.filter(line_id=cut)["action"].to_list() == ["decrease"]
    # an interrupted full review is a person's to resume: the scheduler says so and acts on nothing
    _backdate(engine, ids["later"], review_due_on=today())
    with pytest.raises(Crash):
        engine.lines.review(apply=True, chunk_size=1, on_chunk=crash)
    before = snapshot(engine)
    waiting = LineScheduler(engine).tick()
    assert waiting.waiting_for == engine.lines.unfinished_run()["run_id"] and waiting.applied == 0
    assert snapshot(engine) == before


def test_the_scheduler_thread_unfreezes_a_due_line_by_itself(sqlite_engine: Any, application: dict[str, Any]) -> None:
    from fengkong.lines.scheduler import LineScheduler

    engine = sqlite_engine
    ids = _frozen_due(engine, application)
    scheduler = LineScheduler(engine, every=0.05).start()
    try:
        deadline = time.monotonic() + 15
        while engine.lines.get(ids["clean"])["status"] != "active":
            assert time.monotonic() < deadline, "the scheduler did not review the due line"
            time.sleep(0.05)
    finally:
        scheduler.stop()
    assert engine.lines.get(ids["later"])["status"] == "frozen"
    with pytest.raises(FengkongError) as err:
        LineScheduler(engine, every=0)
    assert err.value.field == "every"


def test_fengkong_serve_runs_the_scheduler(sqlite_url: str, application: dict[str, Any], tmp_path: Path) -> None:
    from fengkong import Engine

    engine = Engine(sqlite_url)
    try:
        ids = _frozen_due(engine, application)
    finally:
        engine.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "fengkong"), "serve", "--port", str(port), "--database-url", sqlite_url],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        status = "frozen"
        while status != "active":
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "fengkong serve did not review the due line"
            time.sleep(0.2)
            with sa.create_engine(sqlite_url).connect() as conn:
                status = conn.execute(
                    sa.select(credit_lines.c.status).where(credit_lines.c.id == ids["clean"])
                ).scalar_one()
    finally:
        server.terminate()
        server.wait(10)


# ------------------------------------------------------------------------------------------ interrupted apply


def test_an_apply_failing_mid_chunk_changes_no_line_of_that_chunk_and_resumes(
    sqlite_engine: Any, application: dict[str, Any]
) -> None:
    engine = sqlite_engine
    _portfolio(engine, application, 6)  # three lines will be cut
    plan = engine.lines.review().table.filter(action="decrease")["line_id"].to_list()
    assert len(plan) == 3
    first, second, _ = plan
    # a real failure inside the database, on the second write of the first chunk
    with engine.db.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TRIGGER boom BEFORE INSERT ON line_actions WHEN NEW.line_id = '{second}' "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    before = engine.lines.get(first)
    with pytest.raises(FengkongError) as err:
        engine.lines.review(apply=True, chunk_size=2)
    run = engine.lines.unfinished_run()
    assert run is not None and (run["status"], run["lines_acted"]) == ("running", 0)
    assert (err.value.code, err.value.field) == ("review_interrupted", "resume")
    assert f"--resume {run['run_id']}" in err.value.message and "disk full" in err.value.message
    assert engine.lines.get(first) == before  # written, then rolled back with its chunk
    with engine.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(line_actions.c.review_run_id.is_not(None))).scalar() == 0
    with engine.db.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER boom")
    done = engine.lines.review(resume=run["run_id"], chunk_size=2)
    assert (done.resumed, done.applied) == (True, 3)
    with engine.db.connect() as conn:
        acted = conn.execute(
            sa.select(line_actions.c.line_id).where(line_actions.c.review_run_id == run["run_id"])
        ).scalars()
        assert sorted(acted) == sorted(plan)
        row = conn.execute(sa.select(line_review_runs).where(line_review_runs.c.id == run["run_id"])).one()
    assert (row.status, row.lines_acted) == ("completed", 3)
    assert engine.verify_audit().ok


# ------------------------------------------------------------------------------------------ behaviour features


def test_the_review_reads_behaviour_from_the_loan_book_bureau_and_alerts(
    engine: Any, application: dict[str, Any]
) -> None:
    late = approved(engine, application, "c-feat-late")
    poorer = approved(engine, application, "c-feat-poorer")
    drawn = engine.lines.drawdown(
        late["line_id"], {"amount": 5000, "term": 6, "destination_account": "6222000011112222"}
    )
    assert drawn.outcome.value == "approve"
    with engine.db.begin() as conn:
        engine.lines.on_drawdown(conn, poorer["line_id"], poorer["limit"] * 0.8, dt.datetime.now(dt.UTC))
    opening_income = application["applicant"]["monthly_income"]
    result = engine.ingest(
        [
            {
                "event_id": "bu-poorer",
                "type": "bureau_update",
                "customer_id": "c-feat-poorer",
                "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
                "inquiries_7d": 0,
                "inquiries_30d": application["bureau"]["inquiries_30d"] + 1,
                "inquiries_90d": 3,
                "active_loans": 1,
                "total_debt": 1000.0,
                "monthly_income": opening_income * 0.5,
            }
        ]
    )
    assert len(result.accepted) == 1, result
    # nothing paid 50 days on: the first instalment is some 20 days late
    as_of = today() + dt.timedelta(days=50)
    # opened a year before the review day, late in the evening UTC (the next day in Beijing): 12 months on book
    opened = dt.datetime(as_of.year - 1, as_of.month, min(as_of.day, 28), 23, 30, tzinfo=dt.UTC)
    _backdate(engine, poorer["line_id"], opened_at=opened)
    table = engine.lines.review_table(as_of).sort("customer_id")
    got = {r["customer_id"]: r for r in table.to_dicts()}
    assert got["c-feat-late"]["line_days_past_due"] >= 15 and got["c-feat-late"]["line_missed_payments_12m"] == 1
    assert got["c-feat-late"]["outstanding"] == 5000
    assert got["c-feat-poorer"]["line_income_change"] == pytest.approx(-0.5)
    assert got["c-feat-poorer"]["line_inquiries_growth"] == 1.0
    assert got["c-feat-poorer"]["line_days_past_due"] == 0.0
    assert (got["c-feat-poorer"]["line_months_on_book"], got["c-feat-late"]["line_months_on_book"]) == (12.0, 1.0)
    assert got["c-feat-poorer"]["line_risk_events_30d"] == 0.0 and got["c-feat-late"]["decreases_in_window"] == 0
    review = engine.lines.review(as_of).table.sort("customer_id").to_dicts()
    assert (review[0]["action"], review[0]["reasons"][0]) == ("freeze", "LINE_DELINQUENT")
    assert (review[1]["action"], review[1]["reasons"][0]) == ("decrease", "LINE_INCOME_DROP")


# ------------------------------------------------------------------------------------------ HTTP


def test_http_line_view_guardrail_refusal_and_review_runs(sqlite_engine: Any, application: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    from fengkong.api import create_app

    engine = sqlite_engine
    line = approved(engine, application, "c-http-more")
    lid, limit = line["line_id"], line["limit"]
    client = TestClient(create_app(engine), raise_server_exceptions=False)
    analyst = {"X-API-Key": engine.create_api_key("analyst")}
    system = {"X-API-Key": engine.create_api_key("system")}
    with engine.db.begin() as conn:
        engine.lines.on_drawdown(conn, lid, limit * 0.6, dt.datetime.now(dt.UTC))
    before = snapshot(engine)
    body = {"action": "decrease", "new_limit": limit * 0.5, "note": "cut", "reasons": ["LINE_INCOME_DROP"]}
    r = client.post(f"/v1/lines/{lid}/actions", json=body, headers=analyst)
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (409, "guardrail", "new_limit")
    assert "outstanding_floor" in r.json()["message"]
    assert snapshot(engine) == before
    r = client.post(f"/v1/lines/{lid}/actions", json={**body, "new_limit": limit * 0.7}, headers=analyst)
    assert r.status_code == 200
    view = client.get(f"/v1/lines/{lid}?language=en", headers=system).json()
    assert (view["status"], view["limit"], view["available"]) == ("active", limit * 0.7, limit * 0.1)
    assert view["reasons"][0]["code"] == "LINE_INCOME_DROP" and view["reasons"][0]["text"]
    assert [h["action"] for h in view["history"]] == ["open", "decrease"]
    assert view["history"][1]["notice"]["zh"] and view["history"][1]["notice"]["en"]
    zh = client.get(f"/v1/lines/{lid}", headers=system).json()
    assert CJK.search(zh["reasons"][0]["text"])

    engine.lines.act(lid, "freeze", actor="ana", note="check", reasons=["LINE_RISK_EVENTS"])
    _backdate(engine, lid, review_due_on=today())
    r = client.post("/v1/line-reviews", json={"apply": True, "due_only": True}, headers=analyst)
    assert r.status_code == 200, r.json()
    out = r.json()
    assert (out["applied"], out["skipped"], out["report"]["scope"], out["report"]["lines"]) == (1, 0, "due", 1)
    run = client.get(f"/v1/line-reviews/{out['run_id']}", headers=system).json()
    assert (run["status"], run["scope"], run["lines_acted"]) == ("completed", "due", 1)
    assert client.get(f"/v1/line-reviews/{out['run_id']}").status_code == 401
    r = client.get("/v1/line-reviews/rev_nope", headers=system)
    assert (r.status_code, r.json()["code"]) == (404, "review_run_not_found")
    r = client.post("/v1/line-reviews", json={"due_only": "maybe"}, headers=analyst)
    assert r.status_code == 422 and "due_only" in json.dumps(r.json())
