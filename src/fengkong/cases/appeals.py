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
    "by_person": {"zh": "经人工复核：", "en": "After review by a person: "},
}


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
        if row.outcome == Outcome.REVIEW.value:
            review = desk._by_source(f"{CaseType.REVIEW.value}:decision:{decision_id}")
            if review is not None and review.status != CaseStatus.RESOLVED.value:
                raise FengkongError(
                    "decision_under_review",
                    f"a person is already reviewing decision {decision_id} (case {review.id}, due "
                    f"{_due_text(review.due_at, lang)}); the customer will hear the outcome then",
                    "decision_id",
                    409,
                )
        source = f"{CaseType.APPEAL.value}:decision:{decision_id}"
        _not_answered(desk, source)
        case = desk.open(
            CaseType.APPEAL,
            customer_id,
            decision_id=decision_id,
            evidence={
                "appealed": "decision",
                "outcome": row.outcome,
                "reasons": list(row.reasons),
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
        action = desk._line_action(line_action_id)
        if action is None:
            raise not_found("line_action", line_action_id, "line_action_id")
        if action["customer_id"] != customer_id:
            raise FengkongError(
                "line_action_customer_mismatch",
                f"line action {line_action_id} is not about customer {customer_id!r}; a customer can appeal only "
                "their own line",
                "line_action_id",
                422,
            )
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
    by_person = effective.kind == "override"
    headline = (_TEXT["by_person"][lang.value] + base["headline"]) if by_person else base["headline"]
    appeal_row = desk._by_source(f"{CaseType.APPEAL.value}:decision:{original.id}")
    review_row = desk._by_source(f"{CaseType.REVIEW.value}:decision:{original.id}")
    under_review = review_row is not None and review_row.status != CaseStatus.RESOLVED.value
    appeal: dict[str, Any] = {
        "can_appeal": appeal_row is None and not by_person and not under_review,
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


# ------------------------------------------------------------------------------------------ helpers


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
            out["message"] = _TEXT["line_restored"][lang.value]
        else:
            override_id = (row.result or {}).get("override_decision_id")
            if override_id:
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
