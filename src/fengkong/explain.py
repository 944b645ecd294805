"""Explanations of a decision: one for the analyst (everything) and one for the customer (plain words,
principal reasons, what they can do, how to appeal; never a fraud rule or another person's data)."""

from __future__ import annotations

from typing import Any

from fengkong.domain import Language, Outcome
from fengkong.policy.compiler import CompiledPolicy, PolicyResult
from fengkong.reasons import reason


def analyst_view(policy: CompiledPolicy, result: PolicyResult, features: dict[str, Any]) -> dict[str, Any]:
    rules = {r.id: r for r in policy.spec.rules}
    cut = policy.spec.score
    return {
        "summary": _analyst_summary(result, policy),
        "reasons": [
            {"code": c, "category": reason(c).category.value, "text": reason(c).analyst} for c in result.reasons
        ],
        "rule_hits": [
            {
                "id": h.id,
                "action": h.action.value,
                "reason": h.reason,
                "condition": rules[h.id].when,
                "description": rules[h.id].description,
                "values": {name: features.get(name) for name in sorted(_names(policy, h.id))},
            }
            for h in result.rule_hits
        ],
        "score": {
            "value": result.score,
            "model_version": policy.model_version,
            "decline_below": cut.decline_below,
            "review_below": cut.review_below,
            "outcome": result.score_outcome.value,
            "reasons": list(result.score_reasons),
            "characteristics": [
                {
                    "name": line.name,
                    "feature": line.feature,
                    "value": line.value,
                    "bin": line.bin,
                    "points": line.points,
                    "max_points": line.max_points,
                    "points_lost": line.lost,
                    "reason": line.reason,
                }
                for line in result.score_lines
            ],
        },
    }


def _names(policy: CompiledPolicy, rule_id: str) -> set[str]:
    from fengkong.policy import expressions as ex

    rule = next(r for r in policy.spec.rules if r.id == rule_id)
    return ex.references(ex.parse(rule.when))


def _analyst_summary(result: PolicyResult, policy: CompiledPolicy) -> str:
    fired = ", ".join(h.id for h in result.rule_hits) or "none"
    return (
        f"{result.outcome.value.upper()} under policy {policy.name} {policy.version}; score {result.score:g} "
        f"({policy.model_version}, score alone: {result.score_outcome.value}); rules fired: {fired}"
    )


def customer_view(
    outcome: Outcome,
    reasons: list[str],
    limit: float | None,
    apr: float | None,
    currency: str,
    decision_id: str,
    language: Language,
) -> dict[str, Any]:
    zh = language is Language.ZH
    if outcome is Outcome.APPROVE:
        headline = (
            f"您的申请已获批准：授信额度 {limit:,.0f} 元，年化利率 {apr:.2%}。"
            if zh
            else f"Your application is approved: a credit line of {currency} {limit:,.0f} at an APR of {apr:.2%}."
        )
    elif outcome is Outcome.REVIEW:
        headline = (
            "您的申请需要人工审核，我们会在一个工作日内告诉您结果。"
            if zh
            else "A person will review your application; we will tell you the result within one working day."
        )
    else:
        headline = (
            "很抱歉，您的申请本次未获批准。" if zh else "We are sorry: we cannot approve your application this time."
        )
    items = [
        {"code": c, "text": reason(c).customer_text(language), "advice": reason(c).advice(language)} for c in reasons
    ]
    appeal = (
        f"如您对结果有异议，可以要求人工复核，请提供参考编号 {decision_id}。根据《个人信息保护法》第二十四条，"
        "您有权要求我们说明决定的理由，并有权拒绝仅通过自动化决策方式作出的决定。"
        if zh
        else f"If you disagree, you can ask for a person to review this decision, quoting reference {decision_id}. "
        "You have the right to an explanation and to refuse a decision made solely by automated means "
        "(PIPL Article 24)."
    )
    return {
        "headline": headline,
        "reasons": items,
        "next_steps": [i["advice"] for i in items if i["advice"]],
        "appeal": appeal,
    }
