"""The line status state machine and the guardrails of a single action, as plain functions.

active ──freeze──▶ frozen ──unfreeze──▶ active        increase / decrease: on an active line only
active, frozen ──close──▶ closed                         restore: frozen or closed ──▶ active, by a person only
frozen ──freeze──▶ frozen (a later review date)          reverse (undo a decrease): active or frozen, a person only
"""

from __future__ import annotations

import datetime as dt
import math
from enum import StrEnum

from fengkong.errors import FengkongError
from fengkong.policy.schema import GuardrailSpec


class LineStatus(StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"  # 暂停服务: temporary, no new drawdowns, reviewed again by its review date
    CLOSED = "closed"  # permanent; only a person (an upheld appeal) can restore it


class LineAction(StrEnum):
    OPEN = "open"
    INCREASE = "increase"
    DECREASE = "decrease"
    DECREASE_EFFECTIVE = "decrease_effective"  # a decrease given with notice takes effect
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    CLOSE = "close"
    RESTORE = "restore"
    REVERSE = "reverse"  # a person undoes a decrease: the limit it took back, or its notice withdrawn


#: Who may act: automated actors (decision, review, trigger, system) and people (analyst, case).
ACTOR_KINDS = ("decision", "review", "trigger", "system", "analyst", "case")
HUMAN_ACTORS = ("analyst", "case")
#: Actions only a person may take: they undo a decision (and ``reverse`` is exempt from the increase guardrails).
HUMAN_ONLY = ("restore", "reverse")

_S, _A = LineStatus, LineAction
TRANSITIONS: dict[LineAction, dict[LineStatus, LineStatus]] = {
    _A.INCREASE: {_S.ACTIVE: _S.ACTIVE},
    _A.DECREASE: {_S.ACTIVE: _S.ACTIVE},
    _A.DECREASE_EFFECTIVE: {_S.ACTIVE: _S.ACTIVE, _S.FROZEN: _S.FROZEN},
    _A.FREEZE: {_S.ACTIVE: _S.FROZEN, _S.FROZEN: _S.FROZEN},
    _A.UNFREEZE: {_S.FROZEN: _S.ACTIVE},
    _A.CLOSE: {_S.ACTIVE: _S.CLOSED, _S.FROZEN: _S.CLOSED},
    _A.RESTORE: {_S.FROZEN: _S.ACTIVE, _S.CLOSED: _S.ACTIVE},
    _A.REVERSE: {_S.ACTIVE: _S.ACTIVE, _S.FROZEN: _S.FROZEN},
}


def next_status(status: LineStatus, action: LineAction, actor_kind: str) -> LineStatus:
    """The status after ``action``, or a clear error if the state machine does not allow it."""
    allowed = TRANSITIONS[action]
    if status not in allowed:
        starts = " or ".join(s.value for s in allowed)
        raise FengkongError(
            "invalid_transition",
            f"cannot {action.value} a line that is {status.value} (only from {starts})",
            "action",
            409,
        )
    if action.value in HUMAN_ONLY and actor_kind not in HUMAN_ACTORS:
        raise FengkongError(
            "invalid_transition", f"only a person (analyst or case) can {action.value} a line", "action", 409
        )
    return allowed[status]


def money(amount: float) -> str:
    """An amount as people read it in a message: ``1000000.00``, never ``1e+06``."""
    return f"{amount:.2f}"


def check_limit_change(
    action: LineAction,
    limit: float,
    new_limit: float,
    outstanding: float,
    last_increase_on: dt.date | None,
    decreases_in_window: int,
    guardrails: GuardrailSpec,
    today: dt.date,
) -> None:
    """Refuse an increase or decrease that breaks a guardrail, naming the guardrail."""
    g = guardrails

    def refuse(guardrail: str, message: str) -> FengkongError:
        return FengkongError("guardrail", f"{guardrail}: {message}", "new_limit", 409)

    if not math.isfinite(new_limit) or new_limit < 0:
        raise FengkongError("invalid_value", "new_limit must be a finite amount ≥ 0", "new_limit", 422)
    if action is LineAction.INCREASE and new_limit <= limit:
        raise FengkongError(
            "invalid_value", f"an increase needs new_limit above the limit {money(limit)}", "new_limit", 422
        )
    if action is LineAction.DECREASE and new_limit >= limit:
        raise FengkongError(
            "invalid_value", f"a decrease needs new_limit below the limit {money(limit)}", "new_limit", 422
        )
    if last_increase_on is not None and (today - last_increase_on).days < g.increase_cooling_off_days:
        raise refuse(
            "increase_cooling_off",
            f"the limit was raised on {last_increase_on.isoformat()}; no change of limit within "
            f"{g.increase_cooling_off_days} days of an increase",
        )
    if action is LineAction.INCREASE:
        if new_limit > g.max_limit:
            raise refuse("max_limit", f"{money(new_limit)} is above the policy's maximum limit {money(g.max_limit)}")
        if new_limit > limit * (1 + g.max_increase_fraction):
            raise refuse(
                "max_increase_fraction",
                f"one increase may add at most {g.max_increase_fraction:.0%} of the limit ({money(limit)})",
            )
    else:
        if new_limit < outstanding:
            raise refuse(
                "outstanding_floor", f"{money(new_limit)} is below the outstanding balance {money(outstanding)}"
            )
        if decreases_in_window >= g.max_decreases:
            raise refuse(
                "max_decreases",
                f"already {decreases_in_window} decrease(s) in the last {g.decrease_window_days} days "
                f"(at most {g.max_decreases})",
            )
