"""A person's decision on a drawdown flows back through the drawdowns' one pay-out path and tells the customer:
an upheld appeal of a declined drawdown pays it out (or is refused, with nothing changed, when the line can no
longer pay it); a held drawdown a person declines stores a notice in zh and en with the decision, and can be
appealed."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from fengkong.errors import FengkongError
from fengkong.policy.loader import DEFAULT_POLICY_PATH, load_policy_text
from fengkong.store.tables import cases, credit_lines, decisions, events
from test_drawdowns import ask, money, open_line, pay_again

A1, A2, A3 = "key:analyst0001", "key:analyst0002", "key:analyst0003"
MULE = "6222999900001111"


def refused(code: str, field: str, call: Any, *args: Any, **kwargs: Any) -> FengkongError:
    with pytest.raises(FengkongError) as err:
        call(*args, **kwargs)
    assert (err.value.code, err.value.field) == (code, field), err.value
    return err.value


def case_state(engine: Any, case_id: str) -> tuple[Any, ...]:
    with engine.db.connect() as conn:
        row = conn.execute(sa.select(cases.c.status, cases.c.seq, cases.c.result).where(cases.c.id == case_id)).one()
    return tuple(row)


def drawdowns_1h(engine: Any, customer: str) -> float:
    return float(engine.online.features({"customer": customer}, time.time())["customer_drawdowns_1h"] or 0)


def test_an_upheld_appeal_of_a_declined_drawdown_pays_it_out_once(engine: Any, application: dict[str, Any]) -> None:
    lid = open_line(engine, application, "da-1")["line_id"]
    engine.add_to_list("blacklist", "payee", MULE, "mule account")
    declined = engine.lines.drawdown(lid, ask(300, destination_account=MULE, language="en"))
    assert declined.outcome.value == "decline"
    available = engine.lines.available(lid)
    # a declined drawdown is never paid without a person's approval
    before = money(engine)
    err = refused("drawdown_not_approved", "decision_id", pay_again, engine, declined.decision_id)
    assert "declined by the policy" in err.message and money(engine) == before

    filed = engine.cases.appeal("da-1", decision_id=declined.decision_id, message="it is my own card", language="en")
    engine.cases.claim(filed["case_id"], A1)
    pending = engine.cases.resolve(filed["case_id"], A1, "upheld", "card is the customer's own; list entry wrong")
    assert pending["status"] == "pending_second_approval" and money(engine)[0] == before[0]  # four eyes first
    seen = drawdowns_1h(engine, "da-1")
    done = engine.cases.approve(filed["case_id"], A2, "agree")
    loan_id = f"loan-{declined.decision_id}"
    assert done["status"] == "resolved" and done["result"]["loan_id"] == loan_id and "follow_ups" not in done
    assert engine.lines.available(lid) == pytest.approx(available - 300)
    loan = engine.loans.get(loan_id)
    assert (loan["line_id"], float(loan["principal"]), loan["term"]) == (lid, 300.0, 12)
    with engine.db.connect() as conn:
        kind = conn.execute(sa.select(events.c.type).where(events.c.event_id == f"release-{declined.decision_id}"))
        assert kind.scalar_one() == "drawdown"
    assert drawdowns_1h(engine, "da-1") == seen + 1  # velocity sees the payment, once it has committed

    override = engine._row(done["result"]["override_decision_id"])
    assert (override.outcome, override.limit_amount) == ("approve", 300.0)
    assert override.inputs["notice"]["en"] == (
        "After review by a person, your drawdown of CNY 300 is approved and has been paid to the account you "
        "named. It is repaid over 12 months."
    )
    assert override.inputs["notice"]["zh"].startswith("经人工复核，您的借款 300 元已获批准，并已发放至您指定的账户")
    view = engine.cases.customer_view(declined.decision_id, "da-1", "en")
    assert (view["decided_by"], view["outcome"], view["appeal"]["can_appeal"]) == ("person", "approve", False)
    assert view["headline"].endswith("Your drawdown of CNY 300 is approved and has been paid to the account you named.")
    status = engine.cases.appeal_status(filed["case_id"], "da-1", "en")
    assert status["message"] == (
        "After review by a person, we have changed our decision. Your drawdown of CNY 300 is approved and has been "
        "paid to the account you named."
    )
    assert (
        "经人工复核，我们改变了原来的决定。您的借款 300 元已获批准"
        in (engine.cases.appeal_status(filed["case_id"], "da-1", "zh")["message"])
    )
    explained = engine.explain(declined.decision_id)
    assert explained["explanation"]["analyst"]["status"]["state"] == "paid" and explained["reproduced"] is True
    assert explained["explanation"]["customer"]["en"]["appeal"] is None
    by_person = engine.explain(override.id)
    assert by_person["reproduced"] is None  # a person's decision is not the rules' answer
    assert by_person["explanation"]["analyst"]["summary"].startswith(f"APPROVE by a person on case {filed['case_id']}")

    # paid once: releasing again returns the same loan and moves nothing
    before = money(engine)
    assert pay_again(engine, declined.decision_id) == loan_id
    assert money(engine) == before
    assert engine.verify_audit().ok


def test_an_appeal_the_line_can_no_longer_pay_is_refused_and_changes_nothing(
    sqlite_engine: Any, application: dict[str, Any]
) -> None:
    engine = sqlite_engine
    lid = open_line(engine, application, "da-2")["line_id"]
    engine.add_to_list("blacklist", "payee", MULE, "mule account")
    declined = engine.lines.drawdown(lid, ask(300, destination_account=MULE))
    filed = engine.cases.appeal("da-2", decision_id=declined.decision_id, message="my card")
    case_id = filed["case_id"]
    engine.cases.claim(case_id, A1)
    before, state = money(engine), case_state(engine, case_id)
    err = refused("invalid_field", "limit", engine.cases.resolve, case_id, A1, "upheld", "ok", limit=5000)
    assert "as the customer asked for it" in err.message
    engine.lines.act(lid, "freeze", actor="ana", note="checking a complaint")
    before, state = money(engine), case_state(engine, case_id)
    err = refused("line_not_active", "outcome", engine.cases.resolve, case_id, A1, "upheld", "card is theirs")
    assert f"line {lid} is frozen" in err.message and "nothing was changed" in err.message
    assert (money(engine), case_state(engine, case_id)) == (before, state)

    # proposed while the line could pay; by the second analyst's approval most of it is gone
    engine.lines.act(lid, "unfreeze", actor="ana", note="complaint answered")
    pending = engine.cases.resolve(case_id, A1, "upheld", "card is theirs")
    assert pending["status"] == "pending_second_approval"
    with engine.db.begin() as conn:  # another drawdown takes all but 100 of the line
        engine.lines.on_drawdown(conn, lid, engine.lines.available(lid) - 100, engine.loans.clock())
    before, state = money(engine), case_state(engine, case_id)
    err = refused("insufficient_available", "outcome", engine.cases.approve, case_id, A2, "agree")
    assert "300.00 is above the 100.00 available" in err.message
    assert (money(engine), case_state(engine, case_id)) == (before, state)
    assert engine.cases.get(case_id)["status"] == "pending_second_approval"
    with pytest.raises(Exception):
        engine.loans.get(f"loan-{declined.decision_id}")

    # money never moves without a person's recorded decision: the one pay-out (pay_in) refuses a mere hold
    lid2 = open_line(engine, application, "da-2b")["line_id"]
    held = engine.lines.drawdown(lid2, ask(200, call_in_progress=True))
    before = money(engine)
    err = refused("drawdown_not_approved", "decision_id", pay_again, engine, held.decision_id)
    assert "is held and no person has approved it yet" in err.message and money(engine) == before
    assert engine.verify_audit().ok


def test_a_held_drawdown_a_person_declines_tells_the_customer_and_can_be_appealed(
    sqlite_engine: Any, application: dict[str, Any]
) -> None:
    engine = sqlite_engine
    lid = open_line(engine, application, "da-3")["line_id"]
    available = engine.lines.available(lid)
    held = engine.lines.drawdown(lid, ask(500, call_in_progress=True, language="en"))
    engine.cases.claim(held.case_id, A1)
    done = engine.cases.resolve(held.case_id, A1, "decline", "could not reach the customer within the hold")
    override_id = done["result"]["override_decision_id"]
    row = engine._row(override_id)
    assert (row.kind, row.outcome, row.reasons) == ("override", "decline", ["SCAM_VICTIM_SUSPECTED"])
    assert row.inputs["override_of"] == held.decision_id and row.inputs["case_id"] == held.case_id
    notice = row.inputs["notice"]
    assert set(notice) == {"zh", "en"}
    assert notice["en"].startswith(
        "After review by a person, we cannot pay out your drawdown of CNY 500. No money was sent, no interest is "
        "charged and your available credit is unchanged. Why: To keep your money safe, we need to confirm this "
        "transfer with you."
    )
    assert f"you can ask for a human review in the app, quoting reference {held.decision_id}." in notice["en"]
    assert notice["zh"].startswith(
        "经人工复核，您的借款 500 元本次未能发放。资金没有转出，不会产生利息，您的可用额度不变。"
    )
    assert f"可在App内申请人工复核，请提供参考编号 {held.decision_id}。" in notice["zh"] and "96110" in notice["zh"]
    for text in notice.values():
        assert "DD_" not in text and "SCAM_VICTIM" not in text and "call_in_progress" not in text
    assert engine.lines.available(lid) == available  # nothing paid
    # the notice is part of the hash-chained decision record: an edited notice is found
    assert engine.verify_audit().ok
    with engine.db.begin() as conn:
        edited = {**row.inputs, "notice": {**notice, "en": "Your drawdown is approved."}}
        conn.execute(sa.update(decisions).where(decisions.c.id == override_id).values(inputs=edited))
    assert not engine.verify_audit().ok
    with engine.db.begin() as conn:
        conn.execute(sa.update(decisions).where(decisions.c.id == override_id).values(inputs=row.inputs))
    assert engine.verify_audit().ok

    view = engine.cases.customer_view(held.decision_id, "da-3", "en")
    assert (view["decided_by"], view["outcome"], view["under_review"]) == ("person", "decline", False)
    assert view["headline"] == "After review by a person: We cannot pay out your drawdown of CNY 500."
    assert view["appeal"]["can_appeal"] is True and held.decision_id in view["appeal"]["how"]
    explained = engine.explain(override_id)
    assert explained["explanation"]["customer"]["en"]["notice"] == notice["en"]
    assert explained["explanation"]["customer"]["zh"]["notice"] == notice["zh"]
    assert explained["reproduced"] is None and explained["case_id"] == held.case_id
    assert explained["explanation"]["analyst"]["summary"].startswith(f"DECLINE by a person on case {held.case_id}")
    original = engine.explain(held.decision_id)
    assert original["reproduced"] is True
    assert original["explanation"]["analyst"]["status"]["state"] == "declined by a person"
    assert original["explanation"]["customer"]["en"]["notice"] == notice["en"]  # what stands now: the person's word

    # the customer appeals; two other people (four eyes: it overrides a decline) pay it out after all. The analyst
    # who declined it may be neither of them: not the one who resolves, not the one who approves
    filed = engine.cases.appeal("da-3", decision_id=held.decision_id, message="It was me; my bank was on the phone")
    appeal = engine.cases.get(filed["case_id"])
    assert (appeal["evidence"]["outcome"], appeal["evidence"]["reasons"]) == ("decline", ["SCAM_VICTIM_SUSPECTED"])
    before, state = money(engine), case_state(engine, filed["case_id"])
    err = refused("analyst_not_independent", "analyst", engine.cases.claim, filed["case_id"], A1)
    assert f"{A1} made the person's decision {override_id} (decline) on decision {held.decision_id}" in err.message
    assert (money(engine), case_state(engine, filed["case_id"])) == (before, state)
    engine.cases.claim(filed["case_id"], A2)
    pending = engine.cases.resolve(filed["case_id"], A2, "upheld", "called back on the number on file; genuine")
    assert pending["proposal"]["why"] == "it overrides a person's decline of a held drawdown"
    assert engine.lines.available(lid) == available
    before, state = money(engine), case_state(engine, filed["case_id"])
    refused("analyst_not_independent", "analyst", engine.cases.approve, filed["case_id"], A1, "agree")
    refused("analyst_not_independent", "analyst", engine.cases.approve, filed["case_id"], A1, "no", approve=False)
    assert (money(engine), case_state(engine, filed["case_id"])) == (before, state)
    assert engine.cases.get(filed["case_id"])["status"] == "pending_second_approval"
    paid = engine.cases.approve(filed["case_id"], A3, "agree")
    assert paid["result"]["decided_by"] == [A2, A3]
    assert paid["result"]["loan_id"] == f"loan-{held.decision_id}"
    assert engine.lines.available(lid) == pytest.approx(available - 500)
    assert engine.cases.customer_view(held.decision_id, "da-3", "en")["outcome"] == "approve"
    refused("appeal_already_answered", "decision_id", engine.cases.appeal, "da-3", decision_id=held.decision_id,
            message="again")  # fmt: skip

    # a person's decline names the reasons the analyst chose in the customer's notice
    held2 = engine.lines.drawdown(lid, ask(200, call_in_progress=True))
    engine.cases.claim(held2.case_id, A2)
    done2 = engine.cases.resolve(
        held2.case_id, A2, "decline", "customer confirmed a takeover", reasons=["ACCOUNT_TAKEOVER_SUSPECTED"]
    )
    notice2 = engine._row(done2["result"]["override_decision_id"]).inputs["notice"]
    assert "we have paused borrowing and transfers" in notice2["en"] and "confirm this transfer" not in notice2["en"]
    assert engine.verify_audit().ok


def with_four_eyes_limit(engine: Any, limit: float, version: str) -> None:
    """A new active policy version whose cases settings put the four-eyes threshold at ``limit``."""
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["version"] = version
    data["cases"] = {"four_eyes_limit": limit}
    engine.publish_policy(load_policy_text(yaml.safe_dump(data)), actor="test", activate=True)


def test_releasing_a_held_drawdown_is_a_persons_decision_paid_in_the_resolutions_transaction(
    engine: Any, application: dict[str, Any]
) -> None:
    """A release is a person's approval stored with the notice the customer is sent, and the payment, in the case
    resolution's own transaction: if the payment fails, nothing of the resolution is stored either."""
    lid = open_line(engine, application, "da-4")["line_id"]
    available = engine.lines.available(lid)
    held = engine.lines.drawdown(lid, ask(700, call_in_progress=True, language="en"))
    case_id = held.case_id
    engine.cases.claim(case_id, A1)
    before, state = money(engine), case_state(engine, case_id)
    err = refused("invalid_field", "limit", engine.cases.resolve, case_id, A1, "release", "ok", limit=500)
    assert "releasing a held drawdown pays it out as the customer asked for it" in err.message
    err = refused(
        "invalid_field",
        "reasons",
        engine.cases.resolve,
        case_id,
        A1,
        "release",
        "ok",
        reasons=["SCAM_VICTIM_SUSPECTED"],
    )
    assert "reasons apply to a decline" in err.message
    assert (money(engine), case_state(engine, case_id)) == (before, state)

    seen = drawdowns_1h(engine, "da-4")
    done = engine.cases.resolve(case_id, A1, "release", "called back on the number on file; no one else on the line")
    loan_id = f"loan-{held.decision_id}"
    assert done["status"] == "resolved" and "follow_ups" not in done  # 700: within the four-eyes limit, one analyst
    assert (done["result"]["loan_id"], done["result"]["decided_by"]) == (loan_id, [A1])
    person = engine._row(done["result"]["override_decision_id"])
    assert (person.kind, person.assignment, person.outcome, person.limit_amount, person.reasons) == (
        "override", "human", "approve", 700.0, []
    )  # fmt: skip
    assert (person.inputs["override_of"], person.inputs["case_id"], person.inputs["decided_by"]) == (
        held.decision_id, case_id, [A1]
    )  # fmt: skip
    assert person.inputs["notice"]["en"] == (
        "After review by a person, your drawdown of CNY 700 is approved and has been paid to the account you named. "
        "It is repaid over 12 months."
    )
    assert person.inputs["notice"]["zh"].startswith("经人工复核，您的借款 700 元已获批准，并已发放至您指定的账户")
    assert engine.lines.available(lid) == pytest.approx(available - 700)
    assert float(engine.loans.get(loan_id)["principal"]) == 700
    assert drawdowns_1h(engine, "da-4") == seen + 1
    # the customer reads that a person decided and paid it; a paid drawdown has nothing left to appeal
    view = engine.cases.customer_view(held.decision_id, "da-4", "en")
    assert (view["decided_by"], view["outcome"], view["appeal"]["can_appeal"]) == ("person", "approve", False)
    assert view["headline"].endswith("Your drawdown of CNY 700 is approved and has been paid to the account you named.")
    refused("decided_by_person", "decision_id", engine.cases.appeal, "da-4", decision_id=held.decision_id, message="?")
    status = engine.explain(held.decision_id)["explanation"]["analyst"]["status"]
    assert (status["state"], status["person_decision_id"]) == ("paid", person.id)
    assert engine.verify_audit().ok

    # one transaction: a payment that fails as the money moves (here the loan id is taken) leaves no person's
    # decision, no resolution and no change to the line behind it
    held2 = engine.lines.drawdown(lid, ask(300, call_in_progress=True))
    engine.loans.open_loan("da-4", "100", "0.1", 3, "equal_instalment", loan_id=f"loan-{held2.decision_id}")
    engine.cases.claim(held2.case_id, A1)
    before, state = money(engine), case_state(engine, held2.case_id)
    refused("loan_id_conflict", "loan_id", engine.cases.resolve, held2.case_id, A1, "release", "called back")
    assert (money(engine), case_state(engine, held2.case_id)) == (before, state)
    assert engine.cases.get(held2.case_id)["status"] == "claimed"
    assert engine.verify_audit().ok


def test_a_release_above_the_four_eyes_limit_needs_a_second_analyst_and_refusals_change_nothing(
    sqlite_engine: Any, application: dict[str, Any]
) -> None:
    engine = sqlite_engine
    lid = open_line(engine, application, "da-5")["line_id"]
    available = engine.lines.available(lid)
    with_four_eyes_limit(engine, 600, "four-eyes-600")  # the policy's case settings, as for every other override
    at_limit = engine.lines.drawdown(lid, ask(600, call_in_progress=True))
    above = engine.lines.drawdown(lid, ask(601, call_in_progress=True))
    engine.cases.claim(at_limit.case_id, A1)
    assert engine.cases.resolve(at_limit.case_id, A1, "release", "called back")["status"] == "resolved"  # not above
    assert engine.lines.available(lid) == pytest.approx(available - 600)

    engine.cases.claim(above.case_id, A1)
    before = money(engine)
    pending = engine.cases.resolve(above.case_id, A1, "release", "called back; customer confirms the payee")
    assert pending["status"] == "pending_second_approval"
    assert pending["proposal"]["why"] == "it pays out a drawdown of 601, above the four-eyes limit of 600"
    assert money(engine)[:2] == before[:2]  # nothing paid, no person's decision yet: only the case step is written
    refused("four_eyes_same_analyst", "analyst", engine.cases.approve, above.case_id, A1, "mine")

    # the line is frozen before the second analyst looks: refused on the outcome, nothing changed
    engine.lines.act(lid, "freeze", actor="ops", note="complaint")
    before, state = money(engine), case_state(engine, above.case_id)
    err = refused("line_not_active", "outcome", engine.cases.approve, above.case_id, A2, "agree")
    assert f"line {lid} is frozen" in err.message and "nothing was changed" in err.message
    assert (money(engine), case_state(engine, above.case_id)) == (before, state)
    engine.lines.act(lid, "unfreeze", actor="ops", note="complaint answered")
    # most of the line is gone meanwhile: not enough available, nothing changed
    with engine.db.begin() as conn:
        engine.lines.on_drawdown(conn, lid, engine.lines.available(lid) - 100, engine.loans.clock())
    before, state = money(engine), case_state(engine, above.case_id)
    err = refused("insufficient_available", "outcome", engine.cases.approve, above.case_id, A2, "agree")
    assert "601.00 is above the 100.00 available" in err.message
    assert (money(engine), case_state(engine, above.case_id)) == (before, state)
    with pytest.raises(FengkongError):
        engine.loans.get(f"loan-{above.decision_id}")
    with engine.db.begin() as conn:  # the other drawdown is repaid: the amount is there again
        conn.execute(sa.update(credit_lines).where(credit_lines.c.id == lid).values(outstanding=600))
    done = engine.cases.approve(above.case_id, A2, "agree")
    assert done["result"]["decided_by"] == [A1, A2] and done["result"]["loan_id"] == f"loan-{above.decision_id}"
    assert engine._row(done["result"]["override_decision_id"]).inputs["decided_by"] == [A1, A2]

    # a single analyst's release on a frozen line: refused, nothing changed
    held = engine.lines.drawdown(lid, ask(200, call_in_progress=True))
    engine.cases.claim(held.case_id, A1)
    engine.lines.act(lid, "freeze", actor="ops", note="again")
    before, state = money(engine), case_state(engine, held.case_id)
    refused("line_not_active", "outcome", engine.cases.resolve, held.case_id, A1, "release", "called back")
    assert (money(engine), case_state(engine, held.case_id)) == (before, state)

    # only a held drawdown is released: a case naming a declined one cannot pay it with one analyst
    engine.lines.act(lid, "unfreeze", actor="ops", note="ok")
    engine.add_to_list("blacklist", "payee", MULE, "mule account")
    declined = engine.lines.drawdown(lid, ask(150, destination_account=MULE))
    manual = engine.cases.open("held_drawdown", "da-5", decision_id=declined.decision_id, source="held_drawdown:x")
    engine.cases.claim(manual["case_id"], A1)
    before = money(engine)
    refused("drawdown_not_held", "outcome", engine.cases.resolve, manual["case_id"], A1, "release", "let it go")
    assert money(engine) == before
    assert engine.verify_audit().ok
