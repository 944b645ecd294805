"""Applying a repayment to a loan's instalments: pure functions over integer cents, no storage.

The rules (docs/loans.md states them for customers and auditors):

- **penalty interest** (罚息) accrues daily on overdue principal from the day after its due date, at the loan's
  penalty APR / 360 per day (the PBoC day-rate convention 日利率 = 年利率 / 360), rounded to 0.01 each time it is
  brought up to date (at every repayment). fengkong charges no other fees.
- **order**: instalments due on or before the payment date, oldest first; within each, penalty, then interest,
  then principal. An instalment is paid (``paid_on``) once its interest and principal are paid in full.
- **mode "instalment"** (the default, e.g. an autopay a few days early) then pays the following instalments in
  schedule order, interest then principal, as scheduled: nothing is re-amortised.
- **mode "prepayment"** then settles the current period's interest as scheduled (the interest of the first
  instalment not yet due: an early repayment costs the current month's interest and nothing more), and the rest
  reduces the principal. The remaining principal is re-amortised over the remaining instalments with the loan's
  method and due dates (the term is kept; the instalments shrink). The prepaid principal is booked on the
  current instalment, so the principal column still sums exactly to the amount lent. Paying the whole
  ``payoff_quote`` pays the loan off; future interest is waived.
- an amount above what is owed (mode "instalment") or above the payoff quote (mode "prepayment") is refused.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Literal

from fengkong.errors import FengkongError
from fengkong.loans.schedule import Method, amounts, from_cents, to_cents

Mode = Literal["instalment", "prepayment"]
MODES: tuple[Mode, ...] = ("instalment", "prepayment")
PENALTY_DAY_BASIS = 360


@dataclass(slots=True)
class InstalmentState:
    """An instalment as stored: scheduled amounts and what has been paid, in cents."""

    period: int
    due_date: dt.date
    principal: int
    interest: int
    penalty: int = 0
    principal_paid: int = 0
    interest_paid: int = 0
    penalty_paid: int = 0
    penalty_to: dt.date | None = None  # penalty accrued through this day
    paid_on: dt.date | None = None  # the day interest and principal were paid in full

    @property
    def principal_due(self) -> int:
        return self.principal - self.principal_paid

    @property
    def interest_due(self) -> int:
        return self.interest - self.interest_paid

    @property
    def penalty_due(self) -> int:
        return self.penalty - self.penalty_paid

    @property
    def owed(self) -> int:
        return self.principal_due + self.interest_due + self.penalty_due

    @property
    def settled(self) -> bool:
        return self.principal_due == 0 and self.interest_due == 0


@dataclass(frozen=True, slots=True)
class Terms:
    apr: Decimal
    penalty_apr: Decimal
    method: Method


@dataclass(slots=True)
class Allocation:
    """Where a repayment went: per period, cents of penalty, interest and principal."""

    lines: dict[int, dict[str, int]] = field(default_factory=dict)
    reamortised: bool = False

    def add(self, period: int, kind: str, cents: int) -> None:
        if cents:
            line = self.lines.setdefault(period, {"penalty": 0, "interest": 0, "principal": 0})
            line[kind] += cents

    def total(self, kind: str) -> int:
        return sum(line[kind] for line in self.lines.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "penalty": float(from_cents(self.total("penalty"))),
            "interest": float(from_cents(self.total("interest"))),
            "principal": float(from_cents(self.total("principal"))),
            "reamortised": self.reamortised,
            "instalments": [
                {"period": p, **{k: float(from_cents(v)) for k, v in line.items()}}
                for p, line in sorted(self.lines.items())
            ],
        }


def penalty_for(principal_cents: int, penalty_apr: Decimal, days: int) -> int:
    if principal_cents <= 0 or days <= 0 or penalty_apr == 0:
        return 0
    with localcontext() as ctx:
        ctx.prec = 40
        amount = Decimal(principal_cents) / 100 * penalty_apr * days / PENALTY_DAY_BASIS
    return to_cents(amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def accrue_penalty(states: Sequence[InstalmentState], terms: Terms, on: dt.date) -> int:
    """Bring penalty interest up to ``on`` (inclusive) on every overdue instalment; returns the cents added."""
    added = 0
    for s in states:
        if s.due_date >= on:
            continue
        since = max(s.due_date, s.penalty_to or s.due_date)
        if on > since:
            cents = penalty_for(s.principal_due, terms.penalty_apr, (on - since).days)
            s.penalty += cents
            added += cents
            s.penalty_to = on
    return added


def owed_total(states: Sequence[InstalmentState]) -> int:
    return sum(s.owed for s in states)


def payoff_quote(states: Sequence[InstalmentState], on: dt.date) -> int:
    """Cents that settle the loan on ``on`` (penalty must already be accrued to ``on``): everything due, the
    current period's interest, and all principal not yet due."""
    quote = 0
    current_seen = False
    for s in states:
        if s.due_date <= on:
            quote += s.owed
        else:
            quote += s.principal_due + s.penalty_due
            if not current_seen:
                quote += s.interest_due
                current_seen = True
    return quote


def overdue_total(states: Sequence[InstalmentState], on: dt.date) -> int:
    """Cents due on or before ``on`` and not yet paid."""
    return sum(s.owed for s in states if s.due_date <= on)


def _pay(s: InstalmentState, kind: str, available: int, alloc: Allocation) -> int:
    due = {"penalty": s.penalty_due, "interest": s.interest_due, "principal": s.principal_due}[kind]
    take = min(due, available)
    if take:
        setattr(s, f"{kind}_paid", getattr(s, f"{kind}_paid") + take)
        alloc.add(s.period, kind, take)
    return available - take


def allocate(
    states: list[InstalmentState], terms: Terms, amount: int, on: dt.date, mode: Mode
) -> tuple[list[InstalmentState], Allocation]:
    """Apply ``amount`` cents paid on ``on``; returns new states (the input is left untouched) and the allocation.

    Penalty is brought up to ``on`` first. Raises FengkongError (field ``amount``) when the amount is more than
    can be taken, before anything is changed."""
    if amount <= 0:
        raise FengkongError("invalid_field", "amount must be greater than 0", "amount", 422)
    new = copy.deepcopy(states)
    accrue_penalty(new, terms, on)
    limit = payoff_quote(new, on) if mode == "prepayment" else owed_total(new)
    if limit == 0:
        raise FengkongError("nothing_owed", "nothing is owed on this loan", "amount", 409)
    if amount > limit:
        what = "the payoff amount" if mode == "prepayment" else "everything owed on the loan"
        raise FengkongError(
            "amount_exceeds_owed",
            f"amount {from_cents(amount)} is more than {what} on {on.isoformat()} ({from_cents(limit)})",
            "amount",
            409,
        )
    alloc = Allocation()
    left = amount
    for s in new:  # 1. what is due, oldest first: penalty, interest, principal
        if s.due_date > on or left == 0:
            continue
        for kind in ("penalty", "interest", "principal"):
            left = _pay(s, kind, left, alloc)
    future = [s for s in new if s.due_date > on]
    if mode == "instalment":
        for s in future:  # 2. paying ahead, as scheduled
            for kind in ("penalty", "interest", "principal"):
                left = _pay(s, kind, left, alloc)
    elif future and left:
        current = future[0]
        left = _pay(current, "interest", left, alloc)  # 2. the current month's interest
        if left:  # 3. the rest reduces principal, re-amortised over the remaining instalments
            _prepay(future, terms, left, alloc)
            left = 0
    assert left == 0, "the limit check guarantees every cent finds a place"
    for s in new:
        if s.paid_on is None and s.settled:
            s.paid_on = on
    return new, alloc


def _prepay(future: list[InstalmentState], terms: Terms, cents: int, alloc: Allocation) -> None:
    current = future[0]
    remaining = sum(s.principal_due for s in future) - cents
    current.principal_paid += cents
    alloc.add(current.period, "principal", cents)
    alloc.reamortised = True
    if remaining == 0:
        fresh = [(Decimal(0), Decimal(0))] * len(future)
    else:
        fresh = amounts(from_cents(remaining), terms.apr, len(future), terms.method)
    for index, (s, (part, interest)) in enumerate(zip(future, fresh, strict=True)):
        s.principal = s.principal_paid + to_cents(part)  # what is paid stays booked; the rest is re-spread
        if index > 0:  # the current period keeps its interest (settled above); later ones are recomputed
            s.interest = max(s.interest_paid, to_cents(interest))


def reconcile(states: Sequence[InstalmentState], principal_cents: int) -> None:
    """The invariant every stored loan keeps: its instalments' principal sums to the amount lent."""
    total = sum(s.principal for s in states)
    if total != principal_cents:  # pragma: no cover - a broken invariant is a bug, never an input problem
        raise AssertionError(f"instalment principal sums to {total}, loan principal is {principal_cents}")
