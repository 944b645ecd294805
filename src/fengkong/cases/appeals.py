"""Appeals and what the customer is told.

PIPL Article 24 gives a person affected by an automated decision the right to an explanation and to refuse a
decision made solely by automated means; Regulation B asks for the principal reasons of an adverse action.
So a customer (through the lender's app) can ask a person to review any of their decisions or line restrictions,
and can read, in plain Chinese or English, what was decided, why, what they can do and how their appeal stands.

What a customer reads never names a fraud rule or a reason code, never quotes an analyst's note, and never
shows anything about another person: the reasons come from the catalogue's customer texts (which keep fraud
signals generic), and an appeal can only be filed on or read for the customer's own decisions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from fengkong.cases.model import CaseStatus, CaseType
from fengkong.domain import Language, Outcome
from fengkong.errors import FengkongError, not_found
from fengkong.explain import customer_view as decision_customer_view
from fengkong.lines.drawdown_explain import headline as drawdown_headline
from fengkong.lines.drawdown_explain import held_decline_appealable
from fengkong.reasons import is_known, reason
from fengkong.store.tables import cases, decisions

if TYPE_CHECKING:
    from fengkong.cases.desk import CaseDesk

#: Line actions a customer can appeal: the restrictions.
APPEALABLE_LINE_ACTIONS = ("decrease", "freeze", "close")
_BEIJING = dt.timezone(dt.timedelta(hours=8))

_TEXT = {
    "received": {
        "zh": "我们已收到您的人工复核申请（编号 {case}），工作人员会在 {due} 前答复您。",
        "en": "We have received your request for a human review (reference {case}). A person will answer by {due}.",
    },
    "in_review": {
        "zh": "工作人员正在复核您的申请（编号 {case}），我们会在 {due} 前答复您。",
        "en": "A person is reviewing your request (reference {case}); we will answer by {due}.",
    },
    "changed": {
        "zh": "经人工复核，我们改变了原来的决定。",
        "en": "After review by a person, we have changed our decision. ",
    },
    "stands": {
        "zh": "经人工复核，原来的决定维持不变。主要原因如下。",
        "en": "After review by a person, the original decision stands, for the principal reasons below.",
    },
    "line_restored": {
        "zh": "经人工复核，您的申诉成立，额度已恢复。",
        "en": "After review by a person, your appeal is upheld and your credit line is restored.",
    },
    "line_being_restored": {
        "zh": "经人工复核，您的申诉成立。工作人员正在恢复您的额度，完成后我们会通知您。",
        "en": "After review by a person, your appeal is upheld. A person is now restoring your credit line; we "
        "will tell you when it is done.",
    },
    "line_how": {
        "zh": "如您对这一调整有异议，可以要求人工复核，请提供参考编号 {ref}。根据《个人信息保护法》第二十四条，"
        "您有权要求我们说明理由，并有权拒绝仅通过自动化决策方式作出的决定。",
        "en": "If you disagree with this change, you can ask for a person to review it, quoting reference {ref}. "
        "You have the right to an explanation and to refuse a decision made solely by automated means "
        "(PIPL Article 24).",
    },
    "by_person": {"zh": "经人工复核：", "en": "After review by a person: "},
}  # a drawdown's wording lives with the drawdowns: fengkong.lines.drawdown_explain


def file_appeal(
    desk: CaseDesk,
    customer_id: str,
    *,
    decision_id: str | None,
    line_action_id: str | None,
    message: str,
    language: str,
    actor: str,
) -> dict[str, Any]:
    """Open (or find) the appeal case for a customer's own decision or line restriction.

    Refused, with nothing stored: a decision or line action that does not exist or is not the customer's, a
    decision already decided by a person, a REVIEW decision a person is reviewing now, an appeal already
    answered. An appeal still in progress is returned as it is (``created: false``): asking twice is not two
    appeals."""
    from fengkong.cases.desk import _check_message, _check_ref, _language

    customer_id = _check_ref(customer_id, "customer_id")
    lang = _language(language)
    if (decision_id is None) == (line_action_id is None):
        raise FengkongError(
            "invalid_field",
            "decision_id: name the decision or the line action (line_action_id) to appeal, one of them",
            "decision_id",
            422,
        )
    message = _check_message(message)
    if decision_id is not None:
        decision_id = _check_ref(decision_id, "decision_id")
        row = _own_decision(desk, decision_id, customer_id)
        if row.kind == "override":
            raise FengkongError(
                "decided_by_person",
                f"decision {decision_id} was made by a person on review (case {row.inputs.get('case_id')}); it "
                "is not an automated decision to appeal: file a complaint if the customer still disagrees",
                "decision_id",
                409,
            )
        source = f"{CaseType.APPEAL.value}:decision:{decision_id}"
        _not_answered(desk, source)
        replaced = _latest_override(desk, row)
        if replaced is not None and not held_decline_appealable(row, replaced):
            raise FengkongError(
                "decided_by_person",
                f"decision {decision_id} was replaced by a person's decision {replaced.id} on review (case "
                f"{replaced.inputs.get('case_id')}); it is no longer an automated decision to appeal: file a "
                "complaint if the customer still disagrees",
                "decision_id",
                409,
            )
        if row.outcome == Outcome.REVIEW.value:
            review = _open_review(desk, decision_id)
            if review is not None:
                raise FengkongError(
                    "decision_under_review",
                    f"a person is already reviewing decision {decision_id} (case {review.id}, due "
                    f"{_due_text(review.due_at, lang)}); the customer will hear the outcome then",
                    "decision_id",
                    409,
                )
        case = desk.open(
            CaseType.APPEAL,
            customer_id,
            decision_id=decision_id,
            evidence={
                "appealed": "decision",
                "outcome": (replaced or row).outcome,  # a held drawdown a person declined: that decline
                "reasons": list((replaced or row).reasons),
                "limit": row.limit_amount,
                "apr": row.apr,
                "policy_version": row.policy_version,
            },
            message=message,
            language=lang.value,
            source=source,
            actor=actor,
        )
    else:
        assert line_action_id is not None
        line_action_id = _check_ref(line_action_id, "line_action_id")
        action = _own_line_action(desk, line_action_id, customer_id)
        if action["action"] not in APPEALABLE_LINE_ACTIONS:
            raise FengkongError(
                "invalid_field",
                f"line_action_id: a line {action['action']} is not a restriction; only a decrease, a freeze or a "
                "closure can be appealed",
                "line_action_id",
                422,
            )
        source = f"{CaseType.APPEAL.value}:line_action:{line_action_id}"
        _not_answered(desk, source)
        case = desk.open(
            CaseType.APPEAL,
            customer_id,
            line_id=action["line_id"],
            line_action_id=line_action_id,
            evidence={"appealed": "line_action", "action": action["action"], "reasons": action["reasons"]},
            message=message,
            language=lang.value,
            source=source,
            actor=actor,
        )
    row = desk._row(case["case_id"])
    status = _customer_status(row.status)
    return {
        "case_id": row.id,
        "customer_id": customer_id,
        "decision_id": row.decision_id,
        "line_action_id": row.line_action_id,
        "status": status,
        "created": case["created"],
        "due_at": case["due_at"],
        "message": _TEXT["received" if status == "received" else "in_review"][lang.value].format(
            case=row.id, due=_due_text(row.due_at, lang)
        ),
    }


def appeal_status(desk: CaseDesk, case_id: str, customer_id: str, language: str) -> dict[str, Any]:
    """The appeal as its customer may see it. Another customer's case, or a case that is not an appeal, is
    simply not found: the answer tells nothing about anyone else."""
    from fengkong.cases.desk import _language

    lang = _language(language)
    try:
        row = desk._row(case_id)
    except FengkongError:
        row = None
    if row is None or row.type != CaseType.APPEAL.value or row.customer_id != customer_id:
        raise not_found("appeal", case_id, "case_id")
    return _appeal_view(desk, row, lang)


def customer_view(desk: CaseDesk, decision_id: str, customer_id: str, language: str) -> dict[str, Any]:
    """The decision as the customer sees it, after any human review, with how to appeal or how the appeal stands.

    Built on the customer explanation every decision has (``fengkong.explain.customer_view``), extended with
    who decided (the system or a person), the appeal and its answer. Reasons carry no codes, and reasons with
    the same customer text (several fraud signals read alike on purpose) are said once."""
    from fengkong.cases.desk import _language

    lang = _language(language)
    row = _own_decision(desk, decision_id, customer_id)
    original = desk.engine._row(row.inputs["override_of"]) if row.kind == "override" else row
    effective = _latest_override(desk, original) or original
    currency = desk.engine.policy(original.policy_version).spec.currency
    base = decision_customer_view(
        Outcome(effective.outcome),
        list(effective.reasons),
        effective.limit_amount,
        effective.apr,
        currency,
        original.id,
        lang,
    )
    if original.kind == "drawdown":  # the application wording ("your application ... a credit line") does not fit
        base["headline"] = drawdown_headline(desk.engine, original, effective, currency, lang)
    by_person = effective.kind == "override"
    headline = (_TEXT["by_person"][lang.value] + base["headline"]) if by_person else base["headline"]
    appeal_row = desk._by_source(f"{CaseType.APPEAL.value}:decision:{original.id}")
    under_review = _open_review(desk, original.id) is not None
    appeal: dict[str, Any] = {
        "can_appeal": appeal_row is None
        and not under_review
        and (not by_person or held_decline_appealable(original, effective)),
        "how": base["appeal"],
        "case_id": None,
        "status": None,
    }
    if appeal_row is not None:
        appeal.update(_appeal_view(desk, appeal_row, lang))
    return {
        "decision_id": original.id,
        "customer_id": customer_id,
        "language": lang.value,
        "decided_at": _ts(effective.created_at),
        "outcome": effective.outcome,
        "decided_by": "person" if by_person else "automated",
        "limit": effective.limit_amount,
        "apr": effective.apr,
        "currency": currency,
        "headline": headline,
        "reasons": _plain_reasons(list(effective.reasons), lang),
        "next_steps": list(dict.fromkeys(base["next_steps"])),
        "under_review": under_review,
        "appeal": appeal,
    }


def line_action_view(desk: CaseDesk, line_action_id: str, customer_id: str, language: str) -> dict[str, Any]:
    """A change to the customer's credit line as the customer sees it: what was done, the principal reasons in
    plain words, what they can do, the notice they were sent, and how to appeal or how their appeal stands.
    Only the line's own customer sees it; reasons carry no codes and no rule."""
    from fengkong.cases.desk import _check_ref, _language

    lang = _language(language)
    line_action_id = _check_ref(line_action_id, "line_action_id")
    action = _own_line_action(desk, line_action_id, customer_id)
    line = desk._line(action["line_id"])
    reasons = _plain_reasons(list(action["reasons"]), lang)
    appeal_row = desk._by_source(f"{CaseType.APPEAL.value}:line_action:{line_action_id}")
    appealable = action["action"] in APPEALABLE_LINE_ACTIONS
    appeal: dict[str, Any] = {
        "can_appeal": appealable and appeal_row is None,
        "how": _TEXT["line_how"][lang.value].format(ref=line_action_id) if appealable else None,
        "case_id": None,
        "status": None,
    }
    if appeal_row is not None:
        appeal.update(_appeal_view(desk, appeal_row, lang))
    notice = (action.get("notice") or {}).get(lang.value)
    return {
        "line_action_id": line_action_id,
        "line_id": action["line_id"],
        "customer_id": customer_id,
        "language": lang.value,
        "action": action["action"],
        "decided_at": action["created_at"],
        "decided_by": "person" if action["actor_kind"] in ("analyst", "case") else "automated",
        "limit_before": action["limit_before"],
        "limit_after": action["limit_after"],
        "line_status": line["status"] if line is not None else None,
        "line_limit": line["limit"] if line is not None else None,
        "currency": line["currency"] if line is not None else None,
        "headline": notice or "",
        "reasons": reasons,
        "next_steps": [r["advice"] for r in reasons if r["advice"]],
        "appeal": appeal,
    }


# ------------------------------------------------------------------------------------------ helpers


def _open_review(desk: CaseDesk, decision_id: str) -> Any:
    """An unresolved case in which a person decides this decision now (a REVIEW outcome, a held drawdown)."""
    with desk.engine.db.connect() as conn:
        return conn.execute(
            sa.select(cases)
            .where(
                (cases.c.decision_id == decision_id)
                & cases.c.type.in_((CaseType.REVIEW.value, CaseType.HELD_DRAWDOWN.value))
                & (cases.c.status != CaseStatus.RESOLVED.value)
            )
            .limit(1)
        ).first()


def _own_line_action(desk: CaseDesk, line_action_id: str, customer_id: str) -> dict[str, Any]:
    action = desk._line_action(line_action_id)
    if action is None:
        raise not_found("line_action", line_action_id, "line_action_id")
    if action["customer_id"] != customer_id:
        raise FengkongError(
            "line_action_customer_mismatch",
            f"line action {line_action_id} is not about customer {customer_id!r}; a customer can appeal and read "
            "only their own line",
            "line_action_id",
            422,
        )
    return action


def _line_put_right(desk: CaseDesk, row: Any) -> bool:
    """Whether the line of an upheld line appeal was restored (or its decrease reversed) after the resolution: the
    lines service may have failed, which leaves a follow-up on the case for a person."""
    line = desk._line(row.line_id)
    if line is None or row.resolved_at is None:
        return False
    since = _ts(row.resolved_at)
    return any(
        h["at"] >= since and h["action"] in ("restore", "reverse", "increase") and "LINE_APPEAL_UPHELD" in h["reasons"]
        for h in line["history"]
    )


def _own_decision(desk: CaseDesk, decision_id: str, customer_id: str) -> Any:
    with desk.engine.db.connect() as conn:
        row = conn.execute(sa.select(decisions).where(decisions.c.id == decision_id)).one_or_none()
    if row is None or row.kind == "shadow":  # a shadow decision was never acted on: nothing to appeal or explain
        raise not_found("decision", decision_id, "decision_id")
    if row.customer_id != customer_id:
        raise FengkongError(
            "decision_customer_mismatch",
            f"decision {decision_id} is not a decision about customer {customer_id!r}; a customer can appeal and "
            "read only their own decisions",
            "decision_id",
            422,
        )
    return row


def _not_answered(desk: CaseDesk, source: str) -> None:
    done = desk._by_source(source)
    if done is not None and done.status == CaseStatus.RESOLVED.value:
        raise FengkongError(
            "appeal_already_answered",
            f"this was appealed already and a person answered on {_ts(done.resolved_at)[:10]} (case {done.id}, "
            f"{done.outcome}); it cannot be appealed twice — file a complaint if the customer still disagrees",
            "decision_id" if ":decision:" in source else "line_action_id",
            409,
        )


def _latest_override(desk: CaseDesk, original: Any) -> Any:
    """The newest human decision that replaced ``original`` (a review approved or declined, an appeal upheld)."""
    with desk.engine.db.connect() as conn:
        ids = [
            r.result.get("override_decision_id")
            for r in conn.execute(
                sa.select(cases.c.result).where(
                    (cases.c.decision_id == original.id) & (cases.c.status == CaseStatus.RESOLVED.value)
                )
            )
            if r.result and r.result.get("override_decision_id")
        ]
        if not ids:
            return None
        return conn.execute(
            sa.select(decisions).where(decisions.c.id.in_(ids)).order_by(decisions.c.created_at.desc()).limit(1)
        ).one_or_none()


def _appeal_view(desk: CaseDesk, row: Any, lang: Language) -> dict[str, Any]:
    status = _customer_status(row.status)
    out: dict[str, Any] = {
        "case_id": row.id,
        "status": status,
        "due_at": _ts(row.due_at),
        "outcome": None,
        "message": None,
        "reasons": [],
    }
    if status != "answered":
        out["message"] = _TEXT[status][lang.value].format(case=row.id, due=_due_text(row.due_at, lang))
        return out
    out["outcome"] = row.outcome
    out["answered_at"] = _ts(row.resolved_at)
    if row.outcome == "upheld":
        if row.line_action_id:
            restored = _line_put_right(desk, row)
            out["message"] = _TEXT["line_restored" if restored else "line_being_restored"][lang.value]
        else:
            override_id = (row.result or {}).get("override_decision_id")
            original = desk.engine._row(row.decision_id)
            if override_id and original.kind == "drawdown":  # paid out with the resolution (or said it was not)
                decided = desk.engine._row(override_id)
                currency = desk.engine.policy(original.policy_version).spec.currency
                told = drawdown_headline(desk.engine, original, decided, currency, lang)
                out["message"] = _TEXT["changed"][lang.value] + told
            elif override_id:
                decided = desk.engine._row(override_id)
                currency = desk.engine.policy(decided.policy_version).spec.currency
                view = decision_customer_view(
                    Outcome(decided.outcome), [], decided.limit_amount, decided.apr, currency, row.decision_id, lang
                )
                out["message"] = _TEXT["changed"][lang.value] + view["headline"]
            else:
                out["message"] = _TEXT["changed"][lang.value]
        return out
    out["message"] = _TEXT["stands"][lang.value]
    out["reasons"] = _plain_reasons(list((row.evidence or {}).get("reasons") or []), lang)
    return out


def _customer_status(status: str) -> str:
    if status == CaseStatus.OPEN.value:
        return "received"
    if status == CaseStatus.RESOLVED.value:
        return "answered"
    return "in_review"


def _plain_reasons(codes: Sequence[str], lang: Language) -> list[dict[str, str]]:
    seen: dict[str, dict[str, str]] = {}
    for code in codes:
        if not is_known(code):
            continue
        entry = reason(code)
        text = entry.customer_text(lang)
        seen.setdefault(text, {"text": text, "advice": entry.advice(lang)})
    return list(seen.values())


def _ts(moment: dt.datetime) -> str:
    from fengkong.store.audit import timestamp_text

    return timestamp_text(moment)


def _due_text(moment: dt.datetime, lang: Language) -> str:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
    local = aware.astimezone(_BEIJING)
    if lang is Language.ZH:
        return f"{local:%Y年%m月%d日 %H:%M}（北京时间）"
    return f"{local:%Y-%m-%d %H:%M} (Beijing time, UTC+8)"
