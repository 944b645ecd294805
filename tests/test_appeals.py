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
from fengkong.errors import FengkongError
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


def test_an_analyst_who_made_a_persons_decision_on_it_never_decides_the_appeal(
    sqlite_engine: Any, application: dict[str, Any]
) -> None:
    """Four eyes are two people independent of what is appealed: whoever made a person's decision on the appealed
    decision (here a review of the declined application, while the customer's appeal waits) can neither resolve
    nor approve the appeal; refused naming the field, nothing changed."""
    engine = sqlite_engine
    a3, a4 = "key:analyst0003", "key:analyst0004"
    declined = engine.decide(declined_app(application, "cust-ind"))
    filed = engine.cases.appeal("cust-ind", decision_id=declined.decision_id, message="my age is 40", language="en")
    case_id = filed["case_id"]
    engine.cases.claim(case_id, A2)
    pending = engine.cases.resolve(case_id, A2, "upheld", "ID card shows 1986", limit=8000)
    assert pending["status"] == "pending_second_approval"
    # meanwhile A1 reviews the same decision and declines it: A1 is no longer independent of it
    review = engine.cases.open("review", "cust-ind", decision_id=declined.decision_id, actor="system")
    engine.cases.claim(review["case_id"], A1)
    person = engine.cases.resolve(review["case_id"], A1, "decline", "age 70 on the bureau file")
    person_id = person["result"]["override_decision_id"]
    err = refused(engine, "analyst_not_independent", "analyst", engine.cases.approve, case_id, A1, "agree")
    assert err.message.startswith(f"analyst: {A1} made the person's decision {person_id} (decline)")
    assert "another analyst must take it" in err.message
    # the proposer too: A2 then declines it on another review; a third analyst cannot let A2's proposal through,
    # but can send it back
    second = engine.cases.open(
        "review", "cust-ind", decision_id=declined.decision_id, source="review:manual:second-look", actor="system"
    )
    engine.cases.claim(second["case_id"], A2)
    engine.cases.resolve(second["case_id"], A2, "decline", "agree with the bureau file")
    err = refused(engine, "analyst_not_independent", "case_id", engine.cases.approve, case_id, a3, "agree")
    assert err.message.startswith(f"{A2} proposed this resolution but made the person's decision")
    returned = engine.cases.approve(case_id, a3, "A2 decided it on review; another analyst must", approve=False)
    assert (returned["status"], returned["assignee"]) == ("claimed", A2)
    refused(engine, "analyst_not_independent", "analyst", engine.cases.resolve, case_id, A2, "rejected", "stands")
    engine.cases.release(case_id, A2)
    refused(engine, "analyst_not_independent", "analyst", engine.cases.claim, case_id, A1)
    engine.cases.claim(case_id, a3)
    engine.cases.resolve(case_id, a3, "upheld", "ID card shows 1986", limit=8000)
    done = engine.cases.approve(case_id, a4, "agree")
    assert done["status"] == "resolved" and done["result"]["decided_by"] == [a3, a4]
    assert engine.verify_audit().ok


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
    # the person who froze the line does not decide the appeal against it
    err = refused(engine, "analyst_not_independent", "analyst", engine.cases.claim, filed["case_id"], "ops")
    assert f"made the line freeze {freeze_id} appealed" in err.message
    engine.cases.claim(filed["case_id"], A1)
    done = engine.cases.resolve(filed["case_id"], A1, "upheld", "alerts were the customer's new phone")
    assert done.get("follow_ups") is None
    assert engine.lines.get(line["line_id"])["status"] == "active"
    assert engine.cases.appeal_status(filed["case_id"], "cust-line", "en")["message"].endswith("restored.")


def approved_line(engine: Any, application: dict[str, Any], customer: str) -> dict[str, Any]:
    data = copy.deepcopy(application)
    data["customer_id"] = customer
    decision = engine.decide(data)
    assert decision.outcome.value == "approve" and decision.limit == 35_000
    line: dict[str, Any] = engine.lines.get(decision.line_id)
    line["decision_id"] = decision.decision_id
    return line


def test_an_automated_decrease_upheld_on_appeal_needs_four_eyes_and_raises_the_line_back(
    engine: Any, application: dict[str, Any]
) -> None:
    line = approved_line(engine, application, "cust-cut")
    cut = engine.lines.act(
        line["line_id"], "decrease", actor="EW_RULE", actor_kind="trigger", reasons=["LINE_HIGH_UTILISATION"],
        new_limit=30_000,
    )  # fmt: skip
    cut_id = cut["history"][-1]["action_id"]
    # the customer's view of the change: what was done, why in plain words, what they can do, how to appeal
    view = engine.cases.line_action_view(cut_id, "cust-cut", "en")
    assert (view["action"], view["decided_by"], view["limit_before"], view["limit_after"]) == (
        "decrease",
        "automated",
        35_000,
        30_000,
    )
    assert "30,000" in view["headline"] and view["reasons"] and view["appeal"]["can_appeal"] is True
    assert cut_id in view["appeal"]["how"] and "PIPL" in view["appeal"]["how"]
    assert "LINE_HIGH_UTILISATION" not in json.dumps(view) and "EW_RULE" not in json.dumps(view)
    assert "额度" in engine.cases.line_action_view(cut_id, "cust-cut", "zh")["headline"]
    refused(engine, "line_action_customer_mismatch", "line_action_id", engine.cases.line_action_view, cut_id, "cust-x")
    refused(engine, "line_action_not_found", "line_action_id", engine.cases.line_action_view, "lact_no", "cust-cut")

    filed = engine.cases.appeal("cust-cut", line_action_id=cut_id, message="I repaid everything", language="en")
    case_id = filed["case_id"]
    engine.cases.claim(case_id, A1)
    refused(engine, "invalid_field", "limit", engine.cases.resolve, case_id, A1, "upheld", "n", limit=40_000)
    pending = engine.cases.resolve(case_id, A1, "upheld", "utilisation was one day before payday")
    assert pending["status"] == "pending_second_approval"
    assert pending["proposal"]["why"] == "it overrides an automated line decrease"
    assert engine.lines.get(line["line_id"])["limit"] == 30_000  # nothing has taken effect
    refused(engine, "four_eyes_same_analyst", "analyst", engine.cases.approve, case_id, A1, "mine")
    done = engine.cases.approve(case_id, A2, "statements checked")
    assert done["status"] == "resolved" and done.get("follow_ups") is None
    raised = engine.lines.get(line["line_id"])
    assert raised["limit"] == 35_000 and raised["history"][-1]["reasons"] == ["LINE_APPEAL_UPHELD"]
    assert raised["history"][-1]["action"] == "reverse" and raised["history"][-1]["evidence"]["reverses"] == cut_id
    assert engine.cases.appeal_status(case_id, "cust-cut", "en")["message"].endswith("restored.")
    answered = engine.cases.line_action_view(cut_id, "cust-cut", "en")["appeal"]
    assert (answered["can_appeal"], answered["status"], answered["outcome"]) == (False, "answered", "upheld")
    assert engine.verify_audit().ok


def test_a_cut_of_more_than_a_third_upheld_on_appeal_is_reversed_to_the_limit_before_it(
    engine: Any, application: dict[str, Any]
) -> None:
    """35,000 cut to 15,000: raising it back as an increase breaks max_increase_fraction (at most +50 %), so the
    appeal reverses the decrease instead, exempt from the increase guardrails: no follow-up, the line is whole."""
    line = approved_line(engine, application, "cust-cut2")
    cut = engine.lines.act(
        line["line_id"], "decrease", actor="ops", actor_kind="analyst", reasons=["LINE_HIGH_UTILISATION"],
        new_limit=15_000, note="utilisation",
    )  # fmt: skip
    cut_id = cut["history"][-1]["action_id"]
    with pytest.raises(FengkongError) as err:  # what the appeal flow used to ask for, and never got
        engine.lines.act(line["line_id"], "increase", actor=A1, new_limit=35_000, note="raise back")
    assert err.value.message.startswith("max_increase_fraction:")
    filed = engine.cases.appeal("cust-cut2", line_action_id=cut_id, message="why?")
    engine.cases.claim(filed["case_id"], A1)
    done = engine.cases.resolve(filed["case_id"], A1, "upheld", "the decrease was a mistake")
    assert done["status"] == "resolved"  # a person's decrease, a limit under the threshold: one analyst
    assert done.get("follow_ups") is None
    restored = engine.lines.get(line["line_id"])
    last = restored["history"][-1]
    assert (restored["limit"], restored["available"], last["action"]) == (35_000, 35_000, "reverse")
    assert (last["actor_kind"], last["actor"], last["reasons"]) == ("case", A1, ["LINE_APPEAL_UPHELD"])
    assert (last["evidence"]["reverses"], last["evidence"]["case_id"]) == (cut_id, filed["case_id"])
    assert "35,000" in last["notice"]["en"] and "35,000" in last["notice"]["zh"]
    status = engine.cases.appeal_status(filed["case_id"], "cust-cut2", "en")
    assert status["message"].endswith("restored.")
    # answered: the same decrease cannot be reversed (or appealed) twice
    refused(engine, "already_reversed", "reverses", engine.lines.reverse, line["line_id"], cut_id, actor=A2, note="x")
    assert engine.verify_audit().ok


def test_an_appeal_of_a_decrease_still_under_notice_withdraws_it(
    sqlite_engine: Any, application: dict[str, Any], tmp_path: Any
) -> None:
    """An automated decrease announced for 30 days later, upheld on appeal (four eyes): it never takes effect."""
    from test_lines_lifecycle import _publish

    engine = sqlite_engine
    _publish(engine, tmp_path, "2026.11.5-appeal-notice", decrease_notice_days=30)
    line = approved_line(engine, application, "cust-notice")
    cut = engine.lines.act(
        line["line_id"], "decrease", actor="EW_RULE", actor_kind="trigger", reasons=["LINE_INCOME_DROP"],
        new_limit=20_000,
    )  # fmt: skip
    assert (cut["limit"], cut["pending_limit"]) == (35_000, 20_000)
    filed = engine.cases.appeal("cust-notice", line_action_id=cut["history"][-1]["action_id"], message="why?")
    engine.cases.claim(filed["case_id"], A1)
    pending = engine.cases.resolve(filed["case_id"], A1, "upheld", "income is back")
    assert pending["proposal"]["why"] == "it overrides an automated line decrease"
    assert engine.lines.get(line["line_id"])["pending_limit"] == 20_000  # nothing has taken effect
    done = engine.cases.approve(filed["case_id"], A2, "payslips checked")
    assert done.get("follow_ups") is None
    after = engine.lines.get(line["line_id"])
    assert (after["limit"], after["pending_limit"], after["pending_effective_on"]) == (35_000, None, None)
    last = after["history"][-1]
    assert last["action"] == "reverse" and last["evidence"]["cancels_notice"] is True
    assert "cancelled" in last["notice"]["en"] and cut["pending_effective_on"] in last["notice"]["en"]
    assert engine.cases.appeal_status(filed["case_id"], "cust-notice", "en")["message"].endswith("restored.")


def test_a_line_the_lines_service_fails_to_put_right_is_not_called_restored(
    sqlite_engine: Any, application: dict[str, Any]
) -> None:
    """The lines service fails after the resolution (here the store refuses the reversal): the resolution stands,
    a follow-up is on the case for a person, the customer is not told the line is restored until it is."""
    engine = sqlite_engine
    line = approved_line(engine, application, "cust-cut3")
    cut = engine.lines.act(
        line["line_id"], "decrease", actor="ops", actor_kind="analyst", reasons=["LINE_HIGH_UTILISATION"],
        new_limit=15_000, note="utilisation",
    )  # fmt: skip
    cut_id = cut["history"][-1]["action_id"]
    filed = engine.cases.appeal("cust-cut3", line_action_id=cut_id, message="why?")
    engine.cases.claim(filed["case_id"], A1)
    refuse = (
        "CREATE TRIGGER refuse_reverse BEFORE INSERT ON line_actions WHEN NEW.action = 'reverse' "
        "BEGIN SELECT RAISE(ABORT, 'lines store unavailable'); END"
    )
    with engine.db.begin() as conn:
        conn.exec_driver_sql(refuse)
    done = engine.cases.resolve(filed["case_id"], A1, "upheld", "the decrease was a mistake")
    assert done["status"] == "resolved"
    assert [f["effect"] for f in done["follow_ups"]] == ["line_reverse"]
    assert engine.lines.get(line["line_id"])["limit"] == 15_000
    status = engine.cases.appeal_status(filed["case_id"], "cust-cut3", "en")
    assert "restoring your credit line" in status["message"] and "restored." not in status["message"]
    assert engine.cases.get(filed["case_id"])["steps"][-1]["action"] == "follow_up"
    # the person who takes the follow-up can finish it: the same reversal, by hand
    with engine.db.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER refuse_reverse")
    engine.lines.reverse(
        line["line_id"], cut_id, actor=A1, reasons=["LINE_APPEAL_UPHELD"], note="follow-up", case_id=filed["case_id"]
    )
    assert engine.lines.get(line["line_id"])["limit"] == 35_000
    assert engine.cases.appeal_status(filed["case_id"], "cust-cut3", "en")["message"].endswith("restored.")


def test_an_upheld_appeal_of_an_approval_raises_its_line(sqlite_engine: Any, application: dict[str, Any]) -> None:
    engine = sqlite_engine
    line = approved_line(engine, application, "cust-more")
    filed = engine.cases.appeal("cust-more", decision_id=line["decision_id"], message="my income is higher")
    case_id = filed["case_id"]
    engine.cases.claim(case_id, A1)
    resolve = engine.cases.resolve
    refused(engine, "missing_field", "limit", resolve, case_id, A1, "upheld", "income proven")
    refused(engine, "invalid_field", "limit", resolve, case_id, A1, "upheld", "lower", limit=30_000)
    refused(engine, "invalid_field", "apr", resolve, case_id, A1, "upheld", "cheaper", limit=40_000, apr=0.05)
    err = refused(engine, "guardrail", "limit", resolve, case_id, A1, "upheld", "x", limit=60_000)
    assert "max_increase_fraction" in err.message
    done = resolve(case_id, A1, "upheld", "payslips show 18k a month", limit=45_000)
    assert done["status"] == "resolved" and done.get("follow_ups") is None
    assert engine.lines.get(line["line_id"])["limit"] == 45_000
    view = engine.cases.customer_view(line["decision_id"], "cust-more", "en")
    assert (view["decided_by"], view["limit"]) == ("person", 45_000)


def test_a_decision_a_person_replaced_is_not_appealed_again(sqlite_engine: Any, application: dict[str, Any]) -> None:
    engine = sqlite_engine
    review = engine.decide(review_app(application))
    engine.cases.claim(review.case_id, A1)
    engine.cases.resolve(review.case_id, A1, "decline", "device farm")
    view = engine.cases.customer_view(review.decision_id, "cust-rev", "en")
    assert view["decided_by"] == "person" and view["appeal"]["can_appeal"] is False
    refused(
        engine,
        "decided_by_person",
        "decision_id",
        engine.cases.appeal,
        "cust-rev",
        decision_id=review.decision_id,
        message="please look again",
    )


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


def test_http_line_change_view_and_appeal(sqlite_engine: Any, application: dict[str, Any]) -> None:
    engine = sqlite_engine
    http = Http(engine)
    line = approved_line(engine, application, "cust-hl")
    frozen = engine.lines.act(
        line["line_id"], "freeze", actor="ops", actor_kind="analyst", reasons=["LINE_RISK_EVENTS"], note="alerts"
    )
    ref = frozen["history"][-1]["action_id"]
    path = f"/v1/line-actions/{ref}/customer-view"
    view = http.call("GET", path, "app", params={"customer_id": "cust-hl", "language": "en"})
    assert view.status_code == 200, view.text
    body = view.json()
    assert (body["action"], body["line_status"], body["appeal"]["can_appeal"]) == ("freeze", "frozen", True)
    assert "LINE_RISK_EVENTS" not in view.text
    other = http.call("GET", path, "app", params={"customer_id": "cust-other"})
    assert (other.status_code, other.json()["code"], other.json()["field"]) == (
        422,
        "line_action_customer_mismatch",
        "line_action_id",
    )
    missing = http.call("GET", "/v1/line-actions/lact_none/customer-view", "app", params={"customer_id": "cust-hl"})
    assert (missing.status_code, missing.json()["code"]) == (404, "line_action_not_found")
    assert http.call("GET", path, "ana1", params={"customer_id": "cust-hl"}).status_code == 403
    filed = http.call(
        "POST", "/v1/appeals", "app", json={"customer_id": "cust-hl", "line_action_id": ref, "message": "locked?"}
    )
    assert filed.status_code == 200 and filed.json()["line_action_id"] == ref
    again = http.call("GET", path, "app", params={"customer_id": "cust-hl"}).json()
    assert again["appeal"]["case_id"] == filed.json()["case_id"] and again["appeal"]["can_appeal"] is False


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
    stranger = cli("appeal", "view", decision["decision_id"], "--customer", "cust-x", "--language", "en")
    assert stranger.exit_code == 1 and "decision_customer_mismatch" in stranger.stderr
    listed_ids = cli("cases", "list", "--type", "appeal")
    assert case_id in listed_ids.stdout  # the table never cuts the id one copies into the next command
