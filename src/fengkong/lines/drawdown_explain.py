"""A drawdown decision explained as a drawdown, for the analyst and for the customer, and replayed.

A drawdown is decided by the drawdown rules of the policy version in force (``lines.drawdowns.rules``), not by the
application policy's rules and scorecard, so its explanation is built here and ``Engine.explain`` (the API's
``GET /v1/decisions/{id}``, ``fengkong explain``, the console's decision and case pages) dispatches to it:

* the analyst sees the drawdown rules that fired with the values they saw, the line, amount, term and method,
  where the money stands now (paid, held, declined by a person) and a replay: the same stored features run again
  through the drawdown rules of the version that decided (:func:`replay`), which must give the same outcome,
  reasons and rules;
* the customer reads, in Chinese and English, what was decided about their drawdown, the principal reasons in
  plain words (the catalogue's customer texts, which never name a fraud rule) and what they can do.

The customer wording of drawdowns lives here once: the case desk's customer view and appeal answers use it, and
a person's decision on a drawdown stores its notice (:func:`person_notice`) with the decision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from fengkong.domain import Language, Outcome
from fengkong.errors import FengkongError
from fengkong.lines.drawdown import _NEXT, DrawdownRule, drawdown_rules, paid_out, person_decision, run_rules
from fengkong.reasons import is_known, reason
from fengkong.store.tables import cases, credit_lines

if TYPE_CHECKING:
    from fengkong.service import Engine

_ZH, _EN = Language.ZH, Language.EN

#: What the customer is told about a drawdown, by where it stands; {amount} and {currency} are filled in.
_HEADLINE: dict[str, tuple[str, str]] = {
    "approve": ("您的借款 {amount} 元已获批准。", "Your drawdown of {currency} {amount} is approved."),
    "review": (
        "为保护您的资金安全，您的借款 {amount} 元需要工作人员确认后才会放款，我们会尽快联系您。",
        "To protect your money, a person will confirm your drawdown of {currency} {amount} before it is paid; we "
        "will contact you shortly.",
    ),
    "decline": (
        "很抱歉，您的借款 {amount} 元本次未获批准。",
        "We are sorry: we cannot pay out your drawdown of {currency} {amount} this time.",
    ),
    "released": (
        "经工作人员确认，您的借款 {amount} 元已发放至您指定的账户。",
        "A person confirmed your drawdown of {currency} {amount}; it has been paid to the account you named.",
    ),
    "person_approve": (
        "您的借款 {amount} 元已获批准，并已发放至您指定的账户。",
        "Your drawdown of {currency} {amount} is approved and has been paid to the account you named.",
    ),
    "person_approve_unpaid": (
        "您的借款 {amount} 元已获批准，工作人员会联系您完成放款。",
        "Your drawdown of {currency} {amount} is approved; a person will contact you to complete the payment.",
    ),
    "person_decline": (
        "您的借款 {amount} 元本次未能发放。",
        "We cannot pay out your drawdown of {currency} {amount}.",
    ),
}
_BY_PERSON = ("经人工复核，", "After review by a person, ")
_NOTHING_MOVED = (
    "资金没有转出，不会产生利息，您的可用额度不变。",
    "No money was sent, no interest is charged and your available credit is unchanged.",
)
_WHY = ("原因：", "Why: ")
_APPEAL = (
    "如您对结果有异议，可在App内申请人工复核，请提供参考编号 {ref}。",
    "If you disagree, you can ask for a human review in the app, quoting reference {ref}.",
)
_HELD_APPEAL = (
    "工作人员会与您一起确认这笔借款；如您对确认结果有异议，可在App内申请人工复核，请提供参考编号 {ref}。",
    "A person will decide this drawdown with you; if you then disagree, you can ask for a human review in the app, "
    "quoting reference {ref}.",
)
_PIPL = (
    "根据《个人信息保护法》第二十四条，您有权要求我们说明决定的理由，并有权拒绝仅通过自动化决策方式作出的决定。",
    "You have the right to an explanation and to refuse a decision made solely by automated means (PIPL Article 24).",
)
_SAFETY = (
    "如果有人要求您借款或转账，请不要照做，可拨打110或全国反诈专线96110。",
    "If anyone has asked you to borrow or move money, do not do it: call the police on 110 or the national "
    "anti-fraud hotline 96110.",
)
_TERM = ("期限 {term} 个月。", "It is repaid over {term} months.")
_OUTCOME_WORD = {"approve": "APPROVE", "review": "HOLD for a person", "decline": "DECLINE"}


def _pick(pair: tuple[str, str], lang: Language) -> str:
    return pair[0] if lang is _ZH else pair[1]


def _money(amount: Any) -> str:
    """1,234.56 and 500 (no .00): how an amount reads in a message."""
    text = f"{float(amount):,.2f}"
    return text[:-3] if text.endswith(".00") else text


def drawdown_root(engine: Engine, row: Any) -> Any:
    """The automated drawdown decision ``row`` is (or that a person's decision replaced), or None."""
    if row.kind == "drawdown":
        return row
    if row.kind == "override" and (row.inputs or {}).get("override_of"):
        original = engine._row(row.inputs["override_of"])
        return original if original.kind == "drawdown" else None
    return None


def held_decline_appealable(original: Any, replaced: Any) -> bool:
    """A held drawdown a person declined may be appealed: the hold was the machine's, and the person may not have
    reached the customer within the hold's time; a second person (four eyes) decides the appeal."""
    return bool(
        original.kind == "drawdown"
        and original.outcome == Outcome.REVIEW.value
        and replaced.outcome == Outcome.DECLINE.value
    )


# ------------------------------------------------------------------------------------------ the customer


def headline(
    engine: Engine, original: Any, effective: Any, currency: str, lang: Language, paid: bool | None = None
) -> str:
    """One sentence: what was decided about the drawdown (``effective``: the decision that stands, a person's
    in place of the rules' if any), and where the money stands."""
    if paid is None:
        with engine.db.connect() as conn:
            paid = paid_out(conn, original.id)
    if effective.kind == "override":
        if effective.outcome == Outcome.APPROVE.value:
            key = "person_approve" if paid else "person_approve_unpaid"
        else:
            key = "person_decline"
    elif original.outcome == Outcome.REVIEW.value and paid:
        key = "released"
    else:
        key = original.outcome
    amount = _money((original.inputs or {}).get("amount") or original.limit_amount or 0)
    return _pick(_HEADLINE[key], lang).format(amount=amount, currency=currency)


def plain_reasons(codes: list[str], lang: Language) -> list[dict[str, str]]:
    """The customer texts of the reasons, said once each (several fraud signals read alike on purpose), no codes."""
    seen: dict[str, dict[str, str]] = {}
    for code in codes:
        if is_known(code):
            entry = reason(code)
            text = entry.customer_text(lang)
            seen.setdefault(text, {"text": text, "advice": entry.advice(lang)})
    return list(seen.values())


def person_notice(original: Any, outcome: str, codes: list[str], currency: str) -> dict[str, str]:
    """What the customer is sent when a person decides their drawdown (a held one released or declined, a declined
    one approved on appeal): what was decided, why in plain words, what they can do and how to appeal. Stored with
    the person's decision; written before the money moves in the same transaction, so an approval that could not be
    paid out is never stored."""
    amount = _money(original.inputs.get("amount") or 0)
    term = original.inputs.get("term")
    notice = {}
    for lang in (_ZH, _EN):
        sep = "" if lang is _ZH else " "
        if outcome == Outcome.APPROVE.value:
            what = _pick(_HEADLINE["person_approve"], lang).format(amount=amount, currency=currency)
            parts = [_pick(_BY_PERSON, lang) + _lower_first(what, lang), _pick(_TERM, lang).format(term=term)]
        else:
            what = _pick(_HEADLINE["person_decline"], lang).format(amount=amount, currency=currency)
            reasons = plain_reasons(codes, lang)
            parts = [_pick(_BY_PERSON, lang) + _lower_first(what, lang), _pick(_NOTHING_MOVED, lang)]
            if reasons:
                joined = ("；" if lang is _ZH else " ").join(r["text"] for r in reasons)
                parts.append(_pick(_WHY, lang) + joined)
            parts.extend(dict.fromkeys(r["advice"] for r in reasons if r["advice"]))
            parts.append(_pick(_APPEAL, lang).format(ref=original.id))
            parts.append(_pick(_SAFETY, lang))
        notice[lang.value] = sep.join(parts)
    return notice


def _lower_first(text: str, lang: Language) -> str:
    """A sentence continued after "After review by a person, " (English only: Chinese has no case)."""
    return text if lang is _ZH or not text else text[0].lower() + text[1:]


def customer_view(
    engine: Engine, effective: Any, original: Any, currency: str, lang: Language, paid: bool
) -> dict[str, Any]:
    """What the customer is told about the drawdown now, in one language: ``effective`` is the decision that
    stands (a person's decision in place of the rules', if any), ``paid`` whether the money has gone out."""
    human = effective.kind == "override"
    notice = ((effective.inputs or {}).get("notice") or {}).get(lang.value) if human else None
    line = headline(engine, original, effective, currency, lang, paid)
    if human:
        line = _pick(_BY_PERSON, lang) + _lower_first(line, lang)
    reasons = plain_reasons(list(effective.reasons), lang) if not paid else []
    steps = [r["advice"] for r in reasons if r["advice"]]
    held = not human and effective.outcome == Outcome.REVIEW.value
    if held and not paid:
        steps.append(_pick(_NEXT["review"], lang))
    if paid:
        appeal = None  # paid as it was asked for: there is nothing to appeal
    elif human:
        appeal = _pick(_APPEAL, lang).format(ref=original.id)
    elif held:  # a person decides now: an appeal waits for that answer
        appeal = _pick(_HELD_APPEAL, lang).format(ref=original.id)
    else:  # the rules decided: the customer may refuse a decision made solely by automated means
        sep = "" if lang is _ZH else " "
        appeal = _pick(_APPEAL, lang).format(ref=original.id) + sep + _pick(_PIPL, lang)
    return {
        "headline": line,
        "reasons": reasons,
        "next_steps": list(dict.fromkeys(steps)),
        "appeal": appeal,
        "notice": notice,
    }


# ------------------------------------------------------------------------------------------ replay


def replay(engine: Engine, original: Any, policy_version: str | None = None) -> dict[str, Any]:
    """The stored drawdown decided again from its stored features by the drawdown rules of the policy version
    that decided it (or of ``policy_version``: what those rules would say today). ``reproduced`` says whether the
    outcome, reasons and rules that fired are the same as stored; a record that lacks a feature those rules read
    (or a version that can no longer be compiled) is said plainly to be not replayable (``reproduced: null``),
    never reported as a mismatch. The one drawdown replay: the explanation and every replay door use it."""
    version = policy_version or original.policy_version
    out: dict[str, Any] = {
        "policy_version": version,
        "replayable": False,
        "why": None,
        "outcome": None,
        "reasons": [],
        "rule_hits": [],
        "reproduced": None,
        "differences": [],
    }
    try:
        policy = engine.policy(version)
        rules = drawdown_rules(policy)
    except (FengkongError, KeyError, TypeError, ValueError) as exc:
        out["why"] = f"the drawdown rules of policy {version} cannot be loaded: {type(exc).__name__}"
        return out
    features = dict(original.features or {})
    missing = sorted(set().union(*(rule.names for rule in rules)) - set(features)) if rules else []
    if missing:
        out["why"] = (
            f"the stored record lacks feature(s) the drawdown rules of policy {version} read: "
            f"{', '.join(missing)}; the decision cannot be made again from it"
        )
        return out
    try:
        outcome, reasons, fired = run_rules(rules, features, policy)
    except (KeyError, TypeError, ValueError) as exc:
        out["why"] = f"the stored features cannot be run through the drawdown rules: {type(exc).__name__}"
        return out
    out.update(
        {
            "replayable": True,
            "outcome": outcome.value,
            "reasons": list(reasons),
            "rule_hits": [rule.id for rule in fired],
        }
    )
    differences = []
    if outcome.value != original.outcome:
        differences.append(f"outcome {outcome.value}, stored {original.outcome}")
    if list(reasons) != list(original.reasons):
        differences.append(f"reasons {list(reasons)}, stored {list(original.reasons)}")
    if out["rule_hits"] != list(original.rule_hits):
        differences.append(f"rules fired {out['rule_hits']}, stored {list(original.rule_hits)}")
    out["differences"] = differences
    out["reproduced"] = not differences
    return out


# ------------------------------------------------------------------------------------------ the analyst


def explain(engine: Engine, row: Any, original: Any, identity: dict[str, str]) -> dict[str, Any]:
    """``Engine.explain`` for a drawdown decision (``row``: the automated one, or a person's decision that replaced
    it, ``original``): the stored decision with the analyst's and the customer's explanations."""
    policy = engine.policy(original.policy_version)
    currency = policy.spec.currency
    inputs = original.inputs or {}
    features = original.features or {}
    with engine.db.connect() as conn:
        paid = paid_out(conn, original.id)
        person = person_decision(conn, original.id)
        held_case = conn.execute(
            sa.select(cases.c.id, cases.c.status, cases.c.outcome).where(
                (cases.c.decision_id == original.id) & (cases.c.type == "held_drawdown")
            )
        ).first()
        line = conn.execute(sa.select(credit_lines).where(credit_lines.c.id == inputs.get("line_id"))).first()
    replayed = replay(engine, original)
    defined = {rule.id: rule for rule in drawdown_rules(policy)} if replayed["why"] is None else {}
    hits = [_hit(rule_id, defined.get(rule_id), features) for rule_id in original.rule_hits]
    if paid:
        state = "paid"
    elif person is not None:
        state = f"{person.outcome}d by a person"
    elif original.outcome == Outcome.REVIEW.value:
        state = "held, waiting for a person"
    else:
        state = "not paid"
    share = features.get("drawdown_share_of_available")
    amount = float(inputs.get("amount") or 0)
    human = row.kind == "override"
    effective = row if human or person is None else person  # what the customer is told now: the person's word
    case_id = row.inputs.get("case_id") if human else (held_case.id if held_case is not None else None)
    decision = engine._to_decision(row).response()
    decision.update({"case_id": case_id, "line_id": inputs.get("line_id")})
    summary = _summary(row, original, policy, currency, hits, state, replayed)
    return {
        **decision,
        "customer_id": row.customer_id,
        "score": None,
        "inputs": row.inputs,
        "identity": identity,
        "features": row.features,
        "rule_hits": row.rule_hits,
        # a person's decision is not the rules' answer: the replay (of the rules' decision) shows what they said
        "reproduced": None if human else replayed["reproduced"],
        "explanation": {
            "analyst": {
                "kind": "drawdown",
                "summary": summary,
                "reasons": [
                    {"code": c, "category": reason(c).category.value, "text": reason(c).analyst}
                    for c in row.reasons
                    if is_known(c)
                ],
                "rule_hits": hits,
                "drawdown": {
                    "decision_id": original.id,
                    "drawdown_id": original.application_id,
                    "line_id": inputs.get("line_id"),
                    "amount": amount,
                    "term": inputs.get("term"),
                    "method": inputs.get("method"),
                    "currency": currency,
                    "apr": original.apr,
                    "available_at_decision": round(amount / share, 2) if share else None,
                    "share_of_available": share,
                    "new_payee": features.get("drawdown_new_payee"),
                    "new_device": features.get("drawdown_new_device"),
                    "call_in_progress": features.get("drawdown_call_in_progress"),
                    "line_months_on_book": features.get("drawdown_line_months_on_book"),
                },
                "line": _line_now(engine, line),
                "status": {
                    "state": state,
                    "paid": paid,
                    "loan_id": f"loan-{original.id}" if paid else None,
                    "held_case": dict(held_case._mapping) if held_case is not None else None,
                    "person_decision_id": person.id if person is not None else None,
                },
                "score": None,  # drawdowns are not scored: the drawdown rules alone decide
                "replay": replayed,
            },
            "customer": {
                lang.value: customer_view(engine, effective, original, currency, lang, paid) for lang in Language
            },
        },
    }


def _hit(rule_id: str, rule: DrawdownRule | None, features: dict[str, Any]) -> dict[str, Any]:
    if rule is None:  # the version's rules cannot be read again (see the replay): the stored id is all there is
        return {"id": rule_id, "action": None, "reason": None, "condition": None, "description": None, "values": {}}
    return {
        "id": rule.id,
        "action": rule.action,
        "reason": rule.reason,
        "condition": rule.when,
        "description": rule.description,
        "values": {name: features.get(name) for name in sorted(rule.names)},
    }


def _line_now(engine: Engine, line: Any) -> dict[str, Any] | None:
    if line is None:
        return None
    return {
        "line_id": line.id,
        "status": line.status,
        "limit": float(line.limit_amount),
        "outstanding": float(line.outstanding),
        "available_now": engine.lines.available(line.id),
    }


def _summary(
    row: Any,
    original: Any,
    policy: Any,
    currency: str,
    hits: list[dict[str, Any]],
    state: str,
    replayed: dict[str, Any],
) -> str:
    inputs = original.inputs or {}
    fired = ", ".join(f"{h['id']} ({h['action']})" if h["action"] else h["id"] for h in hits) or "none"
    what = (
        f"drawdown of {currency} {float(inputs.get('amount') or 0):,.2f} over {inputs.get('term')} months "
        f"({inputs.get('method')}) on line {inputs.get('line_id')}"
    )
    if row.kind == "override":
        lead = (
            f"{row.outcome.upper()} by a person on case {row.inputs.get('case_id')}, in place of the drawdown rules' "
            f"{_OUTCOME_WORD[original.outcome]} ({original.id}) of a {what}"
        )
    else:
        lead = f"{_OUTCOME_WORD[original.outcome]}: {what}"
    text = f"{lead}; drawdown rules of policy {policy.name} {policy.version} fired: {fired}; now: {state}. "
    if not replayed["replayable"]:
        return text + f"Not replayable: {replayed['why']}."
    if replayed["reproduced"]:
        return text + "Replayed under that version: same outcome, reasons and rules."
    return text + "Replayed under that version it differs (" + "; ".join(replayed["differences"]) + "): investigate."
