"""The notice a customer receives for each line action, in Chinese and English, built from the reason catalogue.

A notice says what happened, why (the customer texts of the reasons, which never name a fraud rule), what the
customer can do, and that they can ask for a human review.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from fengkong.domain import Language
from fengkong.reasons import reason

_WHAT = {
    "open": ("您的信用额度已开通，额度为{limit}元。", "Your credit line is open with a limit of {limit}."),
    "increase": (
        "您的信用额度已由{before}元提升至{limit}元。",
        "Your credit limit has been raised from {before} to {limit}.",
    ),
    "decrease": (
        "您的信用额度将由{before}元调整为{limit}元{when_zh}。",
        "Your credit limit will change from {before} to {limit}{when_en}.",
    ),
    "decrease_now": (
        "您的信用额度已由{before}元调整为{limit}元。",
        "Your credit limit has been changed from {before} to {limit}.",
    ),
    "decrease_effective": ("您的信用额度已调整为{limit}元。", "Your credit limit is now {limit}."),
    "freeze": (
        "您的信用额度已暂停使用（暂停服务），我们将在{review}前重新评估。",
        "Your credit line is paused: no new borrowing for now. We will review it again by {review}.",
    ),
    "unfreeze": ("您的信用额度已恢复使用。", "Your credit line is available again."),
    "close": (
        "您的信用额度已关闭，已借款项仍按原计划还款。",
        "Your credit line has been closed. Loans you already have are repaid as planned.",
    ),
    "restore": ("经人工复核，您的信用额度已恢复。", "After a human review, your credit line has been restored."),
    # a person undoes a decrease: the limit given back, or the announced decrease withdrawn before its day
    "reverse": (
        "经人工复核，您的信用额度已由{before}元恢复至{limit}元。",
        "After a human review, your credit limit has been restored from {before} to {limit}.",
    ),
    "reverse_notice": (
        "经人工复核，原定{effective}起生效的额度调整已取消，您的信用额度仍为{limit}元。",
        "After a human review, the change to your credit limit announced for {effective} is cancelled; your "
        "limit stays {limit}.",
    ),
}
_ADVERSE = ("decrease", "freeze", "close")
_APPEAL = (
    "如您对此有异议，可在App内申请人工复核，我们会在规定时限内答复。",
    "If you disagree, you can ask for a human review in the app; we will answer within our service time.",
)


def build_notice(
    action: str,
    reasons: Sequence[str],
    *,
    limit: float,
    before: float | None = None,
    review_due_on: dt.date | None = None,
    effective_on: dt.date | None = None,
    today: dt.date | None = None,
) -> dict[str, str]:
    """``action`` is a line action, or ``reverse_notice`` (a decrease withdrawn before ``effective_on``)."""
    later = effective_on is not None and today is not None and effective_on > today
    zh_what, en_what = _WHAT["decrease_now" if action == "decrease" and not later else action]
    fields = {
        "limit": f"{limit:,.0f}",
        "before": f"{(before or 0):,.0f}",
        "review": review_due_on.isoformat() if review_due_on else "",
        "when_zh": f"，自{effective_on.isoformat()}起生效" if later and effective_on else "",
        "when_en": f", from {effective_on.isoformat()}" if later and effective_on else "",
        "effective": effective_on.isoformat() if effective_on else "",
    }
    notice = {}
    for language, template in ((Language.ZH, zh_what), (Language.EN, en_what)):
        parts = [template.format(**fields)]
        known = [reason(code) for code in reasons]
        if known and action != "open":
            sep = "；" if language is Language.ZH else " "
            parts.append(
                ("原因：" if language is Language.ZH else "Why: ") + sep.join(r.customer_text(language) for r in known)
            )
        if action in _ADVERSE:
            advice = [r.advice(language) for r in known if r.advice(language)]
            parts.extend(dict.fromkeys(advice))
            parts.append(_APPEAL[0] if language is Language.ZH else _APPEAL[1])
        notice[language.value] = ("" if language is Language.ZH else " ").join(parts)
    return notice
