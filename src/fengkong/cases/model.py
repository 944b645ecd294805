"""The vocabulary of the case queue: types, statuses, outcomes, default SLAs and priorities, and the checks that
every door applies to what an analyst types (a note, an outcome, a priority) before anything is changed."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from fengkong.errors import FengkongError


class CaseType(StrEnum):
    REVIEW = "review"  # a REVIEW outcome of an application decision
    HELD_DRAWDOWN = "held_drawdown"  # a drawdown held for a person to release or decline
    FRAUD_ALERT = "fraud_alert"  # an event trigger whose action is open_case
    EARLY_WARNING = "early_warning"  # a post-loan early-warning alert
    APPEAL = "appeal"  # a customer asks for human review of a decision or a line action
    COMPLAINT = "complaint"  # a complaint event (about a collector, a fraud, the service...)


class CaseStatus(StrEnum):
    OPEN = "open"  # in the queue, nobody works it
    CLAIMED = "claimed"  # an analyst works it
    PENDING_SECOND_APPROVAL = "pending_second_approval"  # resolved by one analyst, waits for a second (four eyes)
    RESOLVED = "resolved"  # final; its effects have been applied


UNRESOLVED = (CaseStatus.OPEN, CaseStatus.CLAIMED, CaseStatus.PENDING_SECOND_APPROVAL)

#: Hours a case may wait before it is overdue; a policy overrides any of them under ``cases.sla_hours``.
#: A held drawdown has a customer waiting for money, a fraud alert may be money leaving now: hours, not days.
DEFAULT_SLA_HOURS: dict[CaseType, float] = {
    CaseType.HELD_DRAWDOWN: 2,
    CaseType.FRAUD_ALERT: 4,
    CaseType.REVIEW: 24,
    CaseType.COMPLAINT: 48,
    CaseType.APPEAL: 72,
    CaseType.EARLY_WARNING: 72,
}

#: 1 is the most urgent, 4 the least; the queue is worked by priority, then by due time.
PRIORITIES = {1: "urgent", 2: "high", 3: "normal", 4: "low"}
DEFAULT_PRIORITY: dict[CaseType, int] = {
    CaseType.HELD_DRAWDOWN: 1,
    CaseType.FRAUD_ALERT: 1,
    CaseType.APPEAL: 2,
    CaseType.COMPLAINT: 2,
    CaseType.REVIEW: 3,
    CaseType.EARLY_WARNING: 3,
}

#: The outcomes an analyst may choose per case type, with what each one does.
OUTCOMES: dict[CaseType, dict[str, str]] = {
    CaseType.REVIEW: {
        "approve": "approve the application (optionally with another limit or APR); its offer goes live",
        "decline": "decline the application, with the decision's reasons or ones the analyst names",
    },
    CaseType.HELD_DRAWDOWN: {
        "release": "let the held drawdown go ahead",
        "decline": "refuse the held drawdown",
    },
    CaseType.FRAUD_ALERT: {
        "confirmed_fraud": "the customer is a fraudster: their identifiers and customer id are blacklisted",
        "victim": "the customer is a victim (scam, identity theft): protected, never listed",
        "false_positive": "nothing wrong: the alert is closed",
    },
    CaseType.EARLY_WARNING: {
        "no_action": "the warning does not need action: the alert is closed",
        "watchlist": "put the customer on the watchlist (their next applications are reviewed by a person)",
    },
    CaseType.APPEAL: {
        "upheld": "the customer is right: a declined decision becomes an approval, a restricted line is restored",
        "rejected": "the original decision or line action stands; the customer is told why",
    },
    CaseType.COMPLAINT: {
        "upheld": "the complaint is justified and has been put right",
        "rejected": "the complaint is not justified",
    },
}

MAX_NOTE = 4000
MAX_MESSAGE = 2000
MAX_EVIDENCE_BYTES = 64 * 1024
_ACTOR = re.compile(r"^[\w.:@\-]{1,64}$")


def case_type(value: str) -> CaseType:
    try:
        return CaseType(value)
    except ValueError:
        known = ", ".join(t.value for t in CaseType)
        raise FengkongError(
            "invalid_field", f"type: unknown case type {value!r} (one of {known})", "type", 422
        ) from None


def case_status(value: str) -> CaseStatus:
    try:
        return CaseStatus(value)
    except ValueError:
        known = ", ".join(s.value for s in CaseStatus)
        raise FengkongError(
            "invalid_field", f"status: unknown case status {value!r} (one of {known})", "status", 422
        ) from None


def check_outcome(kind: CaseType, outcome: Any) -> str:
    allowed = OUTCOMES[kind]
    if not isinstance(outcome, str) or outcome not in allowed:
        raise FengkongError(
            "invalid_outcome",
            f"outcome: {outcome!r} is not an outcome of a {kind.value} case (one of {', '.join(allowed)})",
            "outcome",
            422,
        )
    return outcome


def check_note(note: Any, field: str = "note") -> str:
    """Every human step carries a note: the record a reviewer, an auditor or the customer's complaint reads later."""
    if note is None or (isinstance(note, str) and not note.strip()):
        raise FengkongError(
            "missing_note", f"{field}: a note is required: say what you checked and why you decided so", field, 422
        )
    if not isinstance(note, str):
        raise FengkongError("invalid_field", f"{field}: must be text", field, 422)
    text: str = note.strip()
    if len(text) > MAX_NOTE:
        raise FengkongError("invalid_field", f"{field}: at most {MAX_NOTE} characters (got {len(text)})", field, 422)
    return text


def check_actor(actor: Any, field: str = "analyst") -> str:
    if not isinstance(actor, str) or not _ACTOR.match(actor.strip()):
        raise FengkongError(
            "invalid_field",
            f"{field}: an analyst name of 1-64 letters, digits and . _ : @ - (e.g. key:0a1b2c3d4e5f or cli:alice)",
            field,
            422,
        )
    return str(actor).strip()


def check_priority(priority: Any) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) or priority not in PRIORITIES:
        raise FengkongError("invalid_field", "priority: 1 (urgent), 2 (high), 3 (normal) or 4 (low)", "priority", 422)
    return priority


_LONG_NUMBER = re.compile(r"(?<![\w])\+?\d[\d \-]{5,}\d(?![\w])")
_EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+(\.[\w\-]+)+")
_ID_NUMBER = re.compile(r"(?<![\w])\d{17}[\dXx](?![\w])")


def mask_text(text: str) -> str:
    """A customer's free text with what looks like a phone, card, ID number or e-mail masked: shown to analysts
    whose role may not see personal data unmasked."""
    text = _ID_NUMBER.sub(lambda m: m.group()[:3] + "*" * (len(m.group()) - 5) + m.group()[-2:], text)
    text = _LONG_NUMBER.sub(lambda m: m.group()[:3] + "*" * max(len(m.group()) - 5, 1) + m.group()[-2:], text)
    return _EMAIL.sub("***@***", text)
