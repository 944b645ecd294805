"""Undoing a decrease (``reverse``): the limit it took given back whatever the increase guardrails say, never above
what the line had before it, a decrease still under notice withdrawn, only by a person, recorded, audited and
refused cleanly; and amounts in messages written plainly (never ``1e+06``)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fengkong.api import create_app
from fengkong.cli import app as cli_app
from fengkong.errors import FengkongError
from fengkong.store.tables import audit_log, credit_lines, line_actions
from test_lines import approved, snapshot, today
from test_lines_lifecycle import CJK, _backdate, _publish

ANA = "ana"


def cut(engine: Any, line_id: str, new_limit: float, **kw: Any) -> str:
    """A decrease by an analyst; its action id."""
    done = engine.lines.act(line_id, "decrease", actor=ANA, new_limit=new_limit, note=kw.pop("note", "cut"), **kw)
    action_id: str = done["history"][-1]["action_id"]
    return action_id


def line_state(engine: Any, line_id: str) -> tuple[Any, ...]:
    """The stored line and its history, read without settling anything (``get`` settles a due notice)."""
    with engine.db.connect() as conn:
        line = tuple(conn.execute(sa.select(credit_lines).where(credit_lines.c.id == line_id)).one())
        history = conn.execute(
            sa.select(line_actions).where(line_actions.c.line_id == line_id).order_by(line_actions.c.seq)
        ).all()
        entries = conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one()
    return line, [tuple(h) for h in history], entries


def refused(engine: Any, code: str, field: str, call: Any, *args: Any, **kwargs: Any) -> FengkongError:
    before = snapshot(engine)
    with pytest.raises(FengkongError) as info:
        call(*args, **kwargs)
    assert (info.value.code, info.value.field) == (code, field), info.value
    assert snapshot(engine) == before
    return info.value


def test_a_reversal_gives_back_what_a_decrease_took_past_the_increase_guardrails(
    engine: Any, application: dict[str, Any]
) -> None:
    line = approved(engine, application, "c-rev")
    lid, limit = line["line_id"], line["limit"]
    low = round(limit * 0.4)  # a cut of more than a third: raising it back is more than one increase may add
    first = cut(engine, lid, low, reasons=["LINE_HIGH_UTILISATION"])
    with pytest.raises(FengkongError) as err:
        engine.lines.act(lid, "increase", actor=ANA, new_limit=limit, note="raise back")
    assert err.value.message.startswith("max_increase_fraction:")
    done = engine.lines.reverse(lid, first, actor=ANA, note="the cut was a mistake", case_id="cas_test")
    last = done["history"][-1]
    assert (done["limit"], done["available"], done["status"]) == (limit, limit, "active")
    assert (last["action"], last["limit_before"], last["limit_after"]) == ("reverse", low, limit)
    assert (last["actor_kind"], last["actor"], last["note"]) == ("analyst", ANA, "the cut was a mistake")
    assert last["reasons"] == ["LINE_ANALYST_DECISION"]
    assert last["evidence"] == {
        "case_id": "cas_test",
        "reverses": first,
        "given_back": limit - low,
        "cancels_notice": False,
    }
    assert f"{limit:,.0f}" in last["notice"]["en"] and f"{low:,.0f}" in last["notice"]["en"]
    assert last["notice"]["en"].startswith("After a human review, your credit limit has been restored")
    assert CJK.search(last["notice"]["zh"]) and "恢复" in last["notice"]["zh"] and not CJK.search(last["notice"]["en"])
    assert done["reasons"] == []  # the decrease's reasons no longer explain the line
    with engine.db.connect() as conn:
        row = conn.execute(sa.select(credit_lines).where(credit_lines.c.id == lid)).one()
        audited = conn.execute(sa.select(audit_log.c.kind).where(audit_log.c.subject_id == last["action_id"])).all()
    assert row.last_increase_on is None  # not an increase: no cooling-off starts
    assert [a.kind for a in audited] == ["line_action"]
    assert engine.verify_audit().ok
    # an increase right after is allowed (no cooling-off); the undone decrease still counts in the window
    engine.lines.act(lid, "decrease", actor=ANA, new_limit=limit - 1000, note="second cut")
    with pytest.raises(FengkongError) as err:
        engine.lines.act(lid, "decrease", actor=ANA, new_limit=limit - 2000, note="third cut")
    assert err.value.message.startswith("max_decreases:")


def test_each_reversal_gives_back_only_its_own_cut_in_either_order(
    sqlite_engine: Any, application: dict[str, Any]
) -> None:
    engine = sqlite_engine
    for order in ("first-then-second", "second-then-first"):
        line = approved(engine, application, f"c-rev-{order}")
        lid, limit = line["line_id"], line["limit"]
        a = cut(engine, lid, limit - 5_000)
        b = cut(engine, lid, limit - 15_000)
        if order == "first-then-second":
            # the first cut took 5,000: that and no more comes back (the second cut stays taken)
            assert engine.lines.reverse(lid, a, actor=ANA, note="a")["limit"] == limit - 10_000
            assert engine.lines.reverse(lid, b, actor=ANA, note="b")["limit"] == limit
        else:
            # the second cut took 10,000 from limit − 5,000: back to that, never above it
            assert engine.lines.reverse(lid, b, actor=ANA, note="b")["limit"] == limit - 5_000
            assert engine.lines.reverse(lid, a, actor=ANA, note="a")["limit"] == limit
    # a person who raised the limit since leaves less to give back, and never more than the line had before
    line = approved(engine, application, "c-rev-raised")
    lid, limit = line["line_id"], line["limit"]
    a = cut(engine, lid, limit - 10_000)
    engine.lines.act(lid, "increase", actor=ANA, new_limit=limit - 4_000, note="partly back")
    preview = engine.lines.reversal(a)
    assert (preview["limit_now"], preview["limit_after"], preview["given_back"]) == (limit - 4_000, limit, 4_000)
    assert engine.lines.reverse(lid, a, actor=ANA, note="rest")["limit"] == limit
    line = approved(engine, application, "c-rev-raised-all")
    lid, limit = line["line_id"], line["limit"]
    b = cut(engine, lid, limit - 3_000)
    engine.lines.act(lid, "increase", actor=ANA, new_limit=limit, note="all back")
    err = refused(engine, "nothing_to_reverse", "reverses", engine.lines.reverse, lid, b, actor=ANA, note="x")
    assert f"has a limit of {limit:.2f}" in err.message


def test_a_reversal_is_exempt_from_the_maximum_limit_it_had_before(
    sqlite_engine: Any, application: dict[str, Any], tmp_path: Path
) -> None:
    """The policy's maximum limit fell after the cut: giving the old limit back is still allowed (no new credit),
    while an increase to it is refused."""
    engine = sqlite_engine
    line = approved(engine, application, "c-rev-max")
    lid, limit = line["line_id"], line["limit"]
    a = cut(engine, lid, limit - 2_000)
    _publish(engine, tmp_path, "2026.11.5-lowmax", max_limit=int(limit) - 1_000)
    with pytest.raises(FengkongError) as err:
        engine.lines.act(lid, "increase", actor=ANA, new_limit=limit - 500, note="more")
    assert err.value.message.startswith("max_limit:")
    assert engine.lines.reverse(lid, a, actor=ANA, note="undo")["limit"] == limit


def test_a_decrease_under_notice_is_withdrawn_and_one_in_effect_given_back(
    sqlite_engine: Any, application: dict[str, Any], tmp_path: Path
) -> None:
    engine = sqlite_engine
    _publish(engine, tmp_path, "2026.11.5-rev-notice", decrease_notice_days=30)
    # still under notice: withdrawn, the limit never moves, the day passes without effect
    line = approved(engine, application, "c-rev-pending")
    lid, limit = line["line_id"], line["limit"]
    a = cut(engine, lid, limit - 10_000)
    announced = engine.lines.get(lid)["pending_effective_on"]
    done = engine.lines.reverse(lid, a, actor=ANA, note="withdrawn")
    last = done["history"][-1]
    assert (done["limit"], done["pending_limit"], done["pending_effective_on"]) == (limit, None, None)
    assert (last["limit_before"], last["limit_after"], last["effective_on"]) == (limit, limit, None)
    assert last["evidence"]["cancels_notice"] is True and last["evidence"]["given_back"] == 0
    assert f"announced for {announced} is cancelled" in last["notice"]["en"] and "已取消" in last["notice"]["zh"]
    assert engine.lines.settle_pending(today() + dt.timedelta(days=40), line_id=lid) == 0
    assert engine.lines.get(lid)["limit"] == limit

    # its day has come (unsettled yet): it is settled first, then what it took is given back
    line = approved(engine, application, "c-rev-due")
    lid, limit = line["line_id"], line["limit"]
    a = cut(engine, lid, limit - 10_000)
    _backdate(engine, lid, pending_effective_on=today())
    before = line_state(engine, lid)
    # the preview plans on the decrease in effect (what reverse will do) but settles nothing
    preview = engine.lines.reversal(a)
    assert (preview["limit_after"], preview["given_back"], preview["cancels_notice"]) == (limit, 10_000, False)
    assert line_state(engine, lid) == before
    # a refused reversal leaves the decrease unsettled too: settling and reversing are one transaction
    refused(engine, "invalid_transition", "action", engine.lines.reverse, lid, a, actor="bot", actor_kind="system",
            reasons=["LINE_APPEAL_UPHELD"])  # fmt: skip
    opened = line["history"][0]["action_id"]
    refused(engine, "invalid_value", "reverses", engine.lines.reverse, lid, opened, actor=ANA, note="n")
    assert line_state(engine, lid) == before
    done = engine.lines.reverse(lid, a, actor=ANA, note="too late to withdraw")
    assert [h["action"] for h in done["history"]][-3:] == ["decrease", "decrease_effective", "reverse"]
    assert (done["limit"], done["history"][-1]["evidence"]["given_back"]) == (limit, 10_000)

    # a notice ended by a later decrease never took effect: nothing to undo; the later one is withdrawn
    line = approved(engine, application, "c-rev-superseded")
    lid, limit = line["line_id"], line["limit"]
    a = cut(engine, lid, limit - 5_000)
    b = cut(engine, lid, limit - 12_000)
    err = refused(engine, "nothing_to_reverse", "reverses", engine.lines.reverse, lid, a, actor=ANA, note="a")
    assert f"decrease {b}" in err.message and "never took effect" in err.message
    done = engine.lines.reverse(lid, b, actor=ANA, note="b")
    assert (done["limit"], done["pending_limit"]) == (limit, None)


def test_a_frozen_line_keeps_its_freeze_when_a_decrease_is_undone(
    sqlite_engine: Any, application: dict[str, Any]
) -> None:
    engine = sqlite_engine
    line = approved(engine, application, "c-rev-frozen")
    lid, limit = line["line_id"], line["limit"]
    a = cut(engine, lid, limit - 8_000)
    frozen = engine.lines.act(lid, "freeze", actor=ANA, note="alerts", reasons=["LINE_RISK_EVENTS"], review_days=10)
    done = engine.lines.reverse(lid, a, actor=ANA, note="the cut was wrong, the freeze is not")
    assert (done["status"], done["limit"], done["available"]) == ("frozen", limit, 0.0)
    assert done["review_due_on"] == frozen["review_due_on"]
    assert [r["code"] for r in done["reasons"]] == ["LINE_RISK_EVENTS"]


def test_bad_reversals_are_refused_and_change_nothing(sqlite_engine: Any, application: dict[str, Any]) -> None:
    engine = sqlite_engine
    line = approved(engine, application, "c-rev-bad")
    other = approved(engine, application, "c-rev-bad-other")
    lid, limit = line["line_id"], line["limit"]
    opened = line["history"][0]["action_id"]
    a = cut(engine, lid, limit - 3_000)
    elsewhere = cut(engine, other["line_id"], other["limit"] - 3_000)
    act = engine.lines.act
    refused(engine, "invalid_value", "reverses", act, lid, "reverse", actor=ANA, note="which?")
    refused(engine, "invalid_value", "reverses", act, lid, "freeze", actor=ANA, note="n", reverses=a)
    refused(engine, "invalid_value", "new_limit", act, lid, "reverse", actor=ANA, note="n", reverses=a, new_limit=1)
    refused(engine, "line_action_not_found", "reverses", engine.lines.reverse, lid, "lact_nope", actor=ANA, note="n")
    refused(engine, "line_action_not_found", "reverses", engine.lines.reversal, "lact_nope")
    err = refused(engine, "invalid_value", "reverses", engine.lines.reverse, lid, opened, actor=ANA, note="n")
    assert "only a decrease can be reversed" in err.message
    err = refused(engine, "invalid_value", "reverses", engine.lines.reverse, lid, elsewhere, actor=ANA, note="n")
    assert f"is on line {other['line_id']}" in err.message
    refused(engine, "missing_field", "note", engine.lines.reverse, lid, a, actor=ANA)
    for kind in ("review", "trigger", "system", "decision"):
        err = refused(
            engine, "invalid_transition", "action", act, lid, "reverse", actor="bot", actor_kind=kind,
            reasons=["LINE_APPEAL_UPHELD"], reverses=a,
        )  # fmt: skip
        assert "only a person" in err.message
    # a preview writes nothing and says what the reversal would do
    before = snapshot(engine)
    assert engine.lines.reversal(a)["limit_after"] == limit
    assert snapshot(engine) == before
    # a freeze is undone with restore, not reverse; a closed line is given back nothing
    freeze = act(lid, "freeze", actor=ANA, note="f", reasons=["LINE_RISK_EVENTS"])["history"][-1]["action_id"]
    err = refused(engine, "invalid_value", "reverses", engine.lines.reverse, lid, freeze, actor=ANA, note="n")
    assert "undone with restore" in err.message
    act(lid, "close", actor=ANA, note="closed", reasons=["LINE_CUSTOMER_REQUEST"])
    err = refused(engine, "invalid_transition", "action", engine.lines.reverse, lid, a, actor=ANA, note="n")
    assert "cannot reverse a line that is closed" in err.message
    assert engine.verify_audit().ok


def test_http_and_cli_reverse_a_decrease(sqlite_engine: Any, application: dict[str, Any]) -> None:
    engine = sqlite_engine
    line = approved(engine, application, "c-rev-http")
    lid, limit = line["line_id"], line["limit"]
    a = cut(engine, lid, round(limit * 0.4))
    client = TestClient(create_app(engine), raise_server_exceptions=False)
    analyst = {"X-API-Key": engine.create_api_key("analyst")}
    system = {"X-API-Key": engine.create_api_key("system")}
    body = {"action": "reverse", "reverses": a, "note": "appeal upheld by phone", "reasons": ["LINE_APPEAL_UPHELD"]}
    assert client.post(f"/v1/lines/{lid}/actions", json=body, headers=system).status_code == 403
    before = snapshot(engine)
    for bad, field in (
        ({k: v for k, v in body.items() if k != "reverses"}, "reverses"),
        ({**body, "new_limit": limit}, "new_limit"),
        ({**body, "reverses": "no spaces allowed"}, "reverses"),
        ({**body, "note": ""}, "note"),
    ):
        r = client.post(f"/v1/lines/{lid}/actions", json=bad, headers=analyst)
        assert r.status_code == 422 and field in json.dumps(r.json()), r.json()
    r = client.post(f"/v1/lines/{lid}/actions", json={**body, "reverses": "lact_nope"}, headers=analyst)
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (404, "line_action_not_found", "reverses")
    assert snapshot(engine) == before
    r = client.post(f"/v1/lines/{lid}/actions", json=body, headers=analyst)
    assert r.status_code == 200 and r.json()["limit"] == limit
    assert r.json()["history"][-1]["actor"].startswith("key:")
    r = client.post(f"/v1/lines/{lid}/actions", json=body, headers=analyst)
    assert (r.status_code, r.json()["code"]) == (409, "already_reversed")

    other = approved(engine, application, "c-rev-cli")
    b = cut(engine, other["line_id"], other["limit"] - 4_000)
    url = engine.database_url
    runner = CliRunner()
    args = ["lines", "act", other["line_id"], "reverse", "--note", "undo", "--json", "--database-url", url]
    r = runner.invoke(cli_app, args)
    assert r.exit_code == 1 and json.loads(r.output)["field"] == "reverses"
    r = runner.invoke(cli_app, [*args, "--reverses", b])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["limit"] == other["limit"]


def test_amounts_in_messages_are_written_plainly(sqlite_engine: Any, application: dict[str, Any]) -> None:
    engine = sqlite_engine
    line = approved(engine, application, "c-plain")
    lid, limit = line["line_id"], line["limit"]
    with pytest.raises(FengkongError) as err, engine.db.begin() as conn:
        engine.lines.on_drawdown(conn, lid, 1_000_000, dt.datetime.now(dt.UTC))
    assert err.value.message == f"amount 1000000.00 is above the available {limit:.2f}"
    with pytest.raises(FengkongError) as err:
        engine.lines.act(lid, "increase", actor=ANA, new_limit=1_000_000, note="big")
    assert err.value.message == "max_limit: 1000000.00 is above the policy's maximum limit 200000.00"
    with pytest.raises(FengkongError) as err:
        engine.lines.act(lid, "decrease", actor=ANA, new_limit=1_000_000, note="up?")
    assert err.value.message == f"a decrease needs new_limit below the limit {limit:.2f}"
