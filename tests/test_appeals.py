"""Appeals and explanations: a customer (through the lender's app) appeals their own decision or line restriction,
a person answers, an upheld appeal of a decline becomes a human approval only with a second analyst, the customer
reads what was decided and why without any fraud rule or reason code; and the HTTP and CLI doors of the queue
with their roles. Tests taking ``engine`` run on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fengkong.api import create_app
from fengkong.cli import app as cli_app
from fengkong.store.tables import decisions
from test_cases import A1, A2, declined_app, refused, review_app, snapshot


def test_an_upheld_appeal_of_a_decline_needs_two_analysts_and_overrides(
    engine: Any, application: dict[str, Any]
) -> None:
    declined = engine.decide(declined_app(application))
    assert declined.outcome.value == "decline"
    with engine.db.connect() as conn:
        original = dict(
            conn.execute(sa.select(decisions).where(decisions.c.id == declined.decision_id)).mappings().one()
        )
    filed = engine.cases.appeal(
        "cust-dec", decision_id=declined.decision_id, message="我今年40岁，年龄填错了 电话 13800138000", language="zh"
    )
    assert (filed["status"], filed["created"]) == ("received", True)
    assert "北京时间" in filed["message"] and filed["case_id"] in filed["message"]
    # asking twice is one appeal
    again = engine.cases.appeal("cust-dec", decision_id=declined.decision_id, message="again", language="en")
    assert (again["case_id"], again["created"]) == (filed["case_id"], False)
    case_id = filed["case_id"]
    case = engine.cases.get(case_id)
    assert case["type"] == "appeal" and case["priority"] == 2
    assert "13800138000" not in case["message"] and case["message"].startswith("我今年40岁")  # masked for analysts
    assert "13800138000" in engine.cases.get(case_id, reveal_pii=True)["message"]
    engine.cases.claim(case_id, A1)
    assert engine.cases.appeal_status(case_id, "cust-dec", "en")["status"] == "in_review"
    refused(engine, "missing_field", "limit", engine.cases.resolve, case_id, A1, "upheld", "age mistyped")
    pending = engine.cases.resolve(case_id, A1, "upheld", "ID card shows 1986: age mistyped", limit=8000)
    assert pending["status"] == "pending_second_approval" and "automated decline" in pending["proposal"]["why"]
    assert engine.cases.customer_view(declined.decision_id, "cust-dec", "en")["outcome"] == "decline"
    done = engine.cases.approve(case_id, A2, "ID card checked")
    override = engine.explain(done["result"]["override_decision_id"])
    assert (override["outcome"], override["limit"]) == ("approve", 8000)
    assert override["inputs"]["override_of"] == declined.decision_id
    assert engine.lines.get(done["result"]["line_id"])["limit"] == 8000
    with engine.db.connect() as conn:
        assert dict(
            conn.execute(sa.select(decisions).where(decisions.c.id == declined.decision_id)).mappings().one()
        ) == (original)
    assert engine.verify_audit().ok
    # what the customer reads now
    view = engine.cases.customer_view(declined.decision_id, "cust-dec", "en")
    assert (view["outcome"], view["decided_by"], view["limit"]) == ("approve", "person", 8000)
    assert view["headline"].startswith("After review by a person")
    assert view["appeal"]["status"] == "answered" and view["appeal"]["can_appeal"] is False
    status = engine.cases.appeal_status(case_id, "cust-dec", "zh")
    assert status["outcome"] == "upheld" and "改变" in status["message"]
    # answered: cannot be appealed twice
    refused(
        engine,
        "appeal_already_answered",
        "decision_id",
        engine.cases.appeal,
        "cust-dec",
        decision_id=declined.decision_id,
        message="once more",
    )


def test_bad_appeals_are_refused_and_change_nothing(engine: Any, application: dict[str, Any]) -> None:
    declined = engine.decide(declined_app(application))
    review = engine.decide(review_app(application))
    appeal = engine.cases.appeal
    refused(engine, "decision_not_found", "decision_id", appeal, "cust-dec", decision_id="dec_nope", message="why?")
    refused(
        engine,
        "decision_customer_mismatch",
        "decision_id",
        appeal,
        "cust-someone-else",
        decision_id=declined.decision_id,
        message="why?",
    )
    refused(engine, "invalid_field", "decision_id", appeal, "cust-dec", message="which one?")
    refused(engine, "missing_field", "message", appeal, "cust-dec", decision_id=declined.decision_id, message="  ")
    refused(
        engine,
        "invalid_field",
        "language",
        appeal,
        "cust-dec",
        decision_id=declined.decision_id,
        message="x",
        language="fr",
    )
    refused(
        engine, "decision_under_review", "decision_id", appeal, "cust-rev", decision_id=review.decision_id, message="?"
    )
    refused(
        engine, "line_action_not_found", "line_action_id", appeal, "cust-dec", line_action_id="la_nope", message="?"
    )
    # the customer view and the appeal status answer only the customer concerned
    refused(engine, "decision_customer_mismatch", "decision_id", engine.cases.customer_view, declined.decision_id, "x")
    filed = appeal("cust-dec", decision_id=declined.decision_id, message="please look again")
    refused(engine, "appeal_not_found", "case_id", engine.cases.appeal_status, filed["case_id"], "cust-other")
    refused(engine, "appeal_not_found", "case_id", engine.cases.appeal_status, review.case_id, "cust-rev")


def test_the_customer_view_states_reasons_without_fraud_rules_or_codes(
    sqlite_engine: Any, application: dict[str, Any]
) -> None:
    engine = sqlite_engine
    data = copy.deepcopy(application)
    data["customer_id"] = "cust-farm"
    data["applicant"]["age"] = 70  # an eligibility reason ...
    data["identity"].pop("device_id")  # ... and a fraud-signal one
    decision = engine.decide(data)
    for language, marker in (("en", "age"), ("zh", "年龄")):
        view = engine.cases.customer_view(decision.decision_id, "cust-farm", language)
        text = json.dumps(view, ensure_ascii=False)
        assert view["outcome"] == "decline" and view["decided_by"] == "automated"
        assert marker in text and view["next_steps"] and view["appeal"]["can_appeal"] is True
        assert "PIPL" in view["appeal"]["how"] or "个人信息保护法" in view["appeal"]["how"]
        for secret in ("AGE_OUT_OF_RANGE", "DEVICE_NOT_VERIFIED", "DEVICE_ABSENT", "ELIG_AGE", "code", "rule"):
            assert secret not in text
    # a rejected appeal tells the customer the original stands and the principal reasons again
    filed = engine.cases.appeal(
        "cust-farm", decision_id=decision.decision_id, message="I need the money", language="en"
    )
    engine.cases.claim(filed["case_id"], A1)
    engine.cases.resolve(filed["case_id"], A1, "rejected", "age 70 confirmed by ID; product is 18-65")
    status = engine.cases.appeal_status(filed["case_id"], "cust-farm", "en")
    assert status["outcome"] == "rejected" and "stands" in status["message"]
    assert any("age" in r["text"] for r in status["reasons"])
    assert "product is 18-65" not in json.dumps(status)  # the analyst's note stays internal


def test_an_upheld_appeal_of_a_line_freeze_restores_the_line(sqlite_engine: Any, application: dict[str, Any]) -> None:
    engine = sqlite_engine
    data = copy.deepcopy(application)
    data["customer_id"] = "cust-line"
    approved = engine.decide(data)
    line = engine.lines.get(approved.line_id)  # an approval opens its line
    frozen = engine.lines.act(
        line["line_id"], "freeze", actor="ops", actor_kind="analyst", reasons=["LINE_RISK_EVENTS"], note="alerts"
    )
    freeze_id = frozen["history"][-1]["action_id"]
    opened_id = frozen["history"][0]["action_id"]
    refused(
        engine,
        "invalid_field",
        "line_action_id",
        engine.cases.appeal,
        "cust-line",
        line_action_id=opened_id,
        message="?",
    )
    refused(
        engine,
        "line_action_customer_mismatch",
        "line_action_id",
        engine.cases.appeal,
        "cust-x",
        line_action_id=freeze_id,
        message="?",
    )
    filed = engine.cases.appeal("cust-line", line_action_id=freeze_id, message="my line was locked", language="en")
    case = engine.cases.get(filed["case_id"])
    assert case["line"]["status"] == "frozen" and case["line_action"]["action"] == "freeze"
    engine.cases.claim(filed["case_id"], A1)
    done = engine.cases.resolve(filed["case_id"], A1, "upheld", "alerts were the customer's new phone")
    assert done.get("follow_ups") is None
    assert engine.lines.get(line["line_id"])["status"] == "active"
    assert engine.cases.appeal_status(filed["case_id"], "cust-line", "en")["message"].endswith("restored.")


# ------------------------------------------------------------------------------------------ HTTP


class Http:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.client = TestClient(create_app(engine), raise_server_exceptions=False)
        self.keys = {
            name: engine.create_api_key(role, name=name)
            for name, role in (
                ("app", "system"),
                ("ana1", "analyst"),
                ("ana2", "analyst"),
                ("sup", "supervisor"),
                ("aud", "auditor"),
            )
        }

    def call(self, method: str, path: str, who: str, **kwargs: Any) -> Any:
        return self.client.request(method, path, headers={"X-API-Key": self.keys[who]}, **kwargs)


def test_http_queue_appeal_and_four_eyes_with_roles(engine: Any, application: dict[str, Any]) -> None:
    http = Http(engine)
    decided = http.call("POST", "/v1/applications", "app", json=declined_app(application)).json()
    review = http.call("POST", "/v1/applications", "app", json=review_app(application)).json()
    assert decided["case_id"] is None and review["case_id"].startswith("cas_")
    body = {"customer_id": "cust-dec", "decision_id": decided["decision_id"], "message": "wrong age", "language": "en"}
    assert http.call("POST", "/v1/appeals", "ana1", json=body).status_code == 403  # only the lender's app files them
    filed = http.call("POST", "/v1/appeals", "app", json=body)
    assert filed.status_code == 200, filed.text
    case_id = filed.json()["case_id"]
    wrong = http.call("POST", "/v1/appeals", "app", json={**body, "customer_id": "cust-other"})
    assert (wrong.status_code, wrong.json()["code"]) == (422, "decision_customer_mismatch")
    missing = http.call("POST", "/v1/appeals", "app", json={**body, "decision_id": "dec_none"})
    assert (missing.status_code, missing.json()["code"], missing.json()["field"]) == (
        404,
        "decision_not_found",
        "decision_id",
    )
    # roles: the app cannot read the queue; an auditor reads but does not work it
    assert http.call("GET", "/v1/cases", "app").status_code == 403
    queue = http.call("GET", "/v1/cases", "aud", params={"type": ["appeal", "review"], "status": "open"}).json()
    assert {c["case_id"] for c in queue} == {case_id, review["case_id"]}
    assert http.call("POST", f"/v1/cases/{case_id}/claim", "aud").status_code == 403
    # unmasked personal data: supervisors yes, analysts no
    assert http.call("GET", f"/v1/cases/{case_id}", "ana1", params={"reveal_pii": "true"}).status_code == 403
    shown = http.call("GET", f"/v1/cases/{case_id}", "sup", params={"reveal_pii": "true"})
    assert shown.status_code == 200 and shown.json()["message"] == "wrong age"
    # work it: claim, a resolve without a note is refused, then four eyes with two keys
    assert http.call("POST", f"/v1/cases/{case_id}/claim", "ana1").json()["assignee"].startswith("key:")
    taken = http.call("POST", f"/v1/cases/{case_id}/claim", "ana2")
    assert (taken.status_code, taken.json()["code"]) == (409, "case_claimed_by_other")
    no_note = http.call("POST", f"/v1/cases/{case_id}/resolve", "ana1", json={"outcome": "upheld"})
    assert (no_note.status_code, no_note.json()["field"]) == (422, "note")
    blank = http.call(
        "POST", f"/v1/cases/{case_id}/resolve", "ana1", json={"outcome": "upheld", "note": " ", "limit": 5000}
    )
    assert blank.status_code == 422 and blank.json()["field"] == "note"
    wrong_outcome = http.call("POST", f"/v1/cases/{case_id}/resolve", "ana1", json={"outcome": "victim", "note": "n"})
    assert (wrong_outcome.status_code, wrong_outcome.json()["code"]) == (422, "invalid_outcome")
    before = snapshot(engine)
    resolved = http.call(
        "POST", f"/v1/cases/{case_id}/resolve", "ana1", json={"outcome": "upheld", "note": "ID checked", "limit": 5000}
    )
    assert resolved.json()["status"] == "pending_second_approval"
    assert snapshot(engine)["decisions"] == before["decisions"]  # nothing takes effect yet
    self_approval = http.call("POST", f"/v1/cases/{case_id}/approve", "ana1", json={"note": "me again"})
    assert (self_approval.status_code, self_approval.json()["code"]) == (409, "four_eyes_same_analyst")
    approved = http.call("POST", f"/v1/cases/{case_id}/approve", "ana2", json={"note": "agree"})
    assert approved.status_code == 200 and approved.json()["status"] == "resolved"
    again = http.call("POST", f"/v1/cases/{case_id}/resolve", "ana1", json={"outcome": "rejected", "note": "n"})
    assert (again.status_code, again.json()["code"]) == (409, "case_resolved")
    # the customer's side, through the app's key
    view = http.call(
        "GET",
        f"/v1/decisions/{decided['decision_id']}/customer-view",
        "app",
        params={"customer_id": "cust-dec", "language": "en"},
    ).json()
    assert (view["outcome"], view["decided_by"]) == ("approve", "person")
    status = http.call("GET", f"/v1/appeals/{case_id}", "app", params={"customer_id": "cust-dec"}).json()
    assert status["status"] == "answered" and status["outcome"] == "upheld"
    replay = http.call("GET", f"/v1/decisions/{review['decision_id']}/replay", "ana1").json()
    assert replay["reproduced"] is True and replay["in_force"]["outcome"] == "review"
    detail = http.call("GET", f"/v1/cases/{review['case_id']}", "ana1").json()
    assert detail["decision"]["identity"]["phone"] != application["identity"]["phone"]  # masked
    assert detail["replay"]["policy_version"] == review["policy_version"]
    opened = http.call(
        "POST", "/v1/cases", "ana1", json={"type": "complaint", "customer_id": "cust-dec", "note": "phoned in"}
    )
    assert opened.status_code == 200 and opened.json()["created"] is True


# ------------------------------------------------------------------------------------------ CLI


@pytest.fixture
def cli(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("FENGKONG_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("FENGKONG_SECRET_KEY", "test-secret-key-0123456789abcdef-0123456789")
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(cli_app, list(args), catch_exceptions=False)

    return invoke


def test_cli_works_a_case_and_files_an_appeal(cli: Any, application: dict[str, Any], tmp_path: Any) -> None:
    path = tmp_path / "app.json"
    path.write_text(json.dumps(declined_app(application)))
    decision = json.loads(cli("decide", str(path), "--json").stdout)
    filed = cli("appeal", "file", "--customer", "cust-dec", "--decision", decision["decision_id"], "--message", "x")
    assert filed.exit_code == 0 and "received" in filed.stdout
    listed = json.loads(cli("cases", "list", "--type", "appeal", "--json").stdout)
    case_id = listed[0]["case_id"]
    assert cli("cases", "claim", case_id, "--analyst", "alice").exit_code == 0
    refusal = cli("cases", "resolve", case_id, "--analyst", "bob", "--outcome", "rejected", "--note", "n")
    assert refusal.exit_code == 1 and "case_claimed_by_other" in refusal.stderr
    blank = cli("cases", "resolve", case_id, "--analyst", "alice", "--outcome", "rejected", "--note", " ")
    assert blank.exit_code == 1 and "missing_note" in blank.stderr
    done = cli("cases", "resolve", case_id, "--analyst", "alice", "--outcome", "rejected", "--note", "age is 70")
    assert done.exit_code == 0 and "resolved" in done.stdout
    shown = cli("cases", "show", case_id)
    assert "cli:alice" in shown.stdout and "age is 70" in shown.stdout
    status = cli("appeal", "status", case_id, "--customer", "cust-dec", "--language", "en")
    assert "stands" in status.stdout
    view = cli("appeal", "view", decision["decision_id"], "--customer", "cust-dec", "--language", "en")
    assert view.exit_code == 0 and "sorry" in view.stdout
