"""Repayment schedules: equal instalment (等额本息), equal principal (等额本金), interest only, then principal
(先息后本).

Conventions (the same everywhere in fengkong, and stated in docs/loans.md):

- **money** is ``Decimal`` rounded ROUND_HALF_UP to 0.01 (one fen, 分) at every figure that is paid;
- **periods** are calendar months: instalment *i* is due *i* months after the start date, on the same day of
  the month, clamped to the month's last day (a loan started on 31 January is due on 28 or 29 February, then
  31 March: each due date is counted from the start date, never from the previous due date);
- **interest** per period is one month's interest at the monthly rate APR / 12, as Chinese lenders quote it
  (月利率 = 年利率 / 12), whatever the number of days in the month: ``round(balance × APR / 12)``;
- **equal instalment** pays ``round(P·r·(1+r)^n / ((1+r)^n − 1))`` each month (``P / n`` when the APR is 0);
  **equal principal** repays ``round(P / n)`` of principal each month plus the month's interest;
  **interest only** pays the month's interest and the whole principal with the last instalment;
- the **last instalment absorbs every rounding difference**: its principal is whatever principal remains, so the
  principal column always sums exactly to the amount lent.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from enum import StrEnum

from fengkong.errors import FengkongError

CENT = Decimal("0.01")
MAX_TERM = 360  # months
MAX_PRINCIPAL = Decimal("100000000")
MIN_PRINCIPAL = Decimal("1.00")


class Method(StrEnum):
    EQUAL_INSTALMENT = "equal_instalment"  # 等额本息
    EQUAL_PRINCIPAL = "equal_principal"  # 等额本金
    INTEREST_ONLY = "interest_only"  # 先息后本


@dataclass(frozen=True, slots=True)
class Instalment:
    """One row of a schedule. ``balance`` is the principal still owed once this instalment is paid."""

    period: int
    due_date: dt.date
    principal: Decimal
    interest: Decimal
    payment: Decimal
    balance: Decimal

    def as_dict(self) -> dict[str, object]:
        return {
            "period": self.period,
            "due_date": self.due_date.isoformat(),
            "principal": float(self.principal),
            "interest": float(self.interest),
            "payment": float(self.payment),
            "balance": float(self.balance),
        }


def money(value: Decimal | int | str | float) -> Decimal:
    """A money figure rounded ROUND_HALF_UP to 0.01 (a float goes through its shortest text, never its binary)."""
    if isinstance(value, float):
        value = repr(value)
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def to_cents(value: Decimal) -> int:
    return int(value.quantize(CENT, rounding=ROUND_HALF_UP) * 100)


def from_cents(value: int) -> Decimal:
    return (Decimal(value) / 100).quantize(CENT)


def add_months(start: dt.date, months: int) -> dt.date:
    """``start`` plus whole months, the day clamped to the target month's last day (Jan 31 + 1 → Feb 28/29)."""
    index = start.year * 12 + start.month - 1 + months
    year, month = divmod(index, 12)
    day = min(start.day, calendar.monthrange(year, month + 1)[1])
    return dt.date(year, month + 1, day)


def monthly_interest(balance: Decimal, apr: Decimal) -> Decimal:
    """One month's interest on ``balance``: round(balance × APR / 12). Multiplying first keeps the product exact,
    so the one division rounds correctly (a true tie at half a fen is a terminating decimal)."""
    with localcontext() as ctx:
        ctx.prec = 40
        return (balance * apr / 12).quantize(CENT, rounding=ROUND_HALF_UP)


def annuity_payment(principal: Decimal, apr: Decimal, term: int) -> Decimal:
    """The equal monthly instalment P·r·(1+r)^n / ((1+r)^n − 1) with r = APR / 12, rounded to 0.01."""
    if apr == 0:
        return (principal / term).quantize(CENT, rounding=ROUND_HALF_UP)
    with localcontext() as ctx:
        ctx.prec = 40
        r = apr / 12
        growth = (1 + r) ** term
        return (principal * r * growth / (growth - 1)).quantize(CENT, rounding=ROUND_HALF_UP)


def amounts(principal: Decimal, apr: Decimal, term: int, method: Method) -> list[tuple[Decimal, Decimal]]:
    """(principal, interest) per period, the last period taking whatever principal remains.

    Also used to re-amortise what remains of a loan after a partial prepayment."""
    out: list[tuple[Decimal, Decimal]] = []
    balance = principal
    if method is Method.EQUAL_INSTALMENT:
        payment = annuity_payment(principal, apr, term)
        for period in range(1, term + 1):
            interest = monthly_interest(balance, apr)
            part = balance if period == term else min(payment - interest, balance)
            out.append((part, interest))
            balance -= part
    elif method is Method.EQUAL_PRINCIPAL:
        share = (principal / term).quantize(CENT, rounding=ROUND_HALF_UP)
        for period in range(1, term + 1):
            interest = monthly_interest(balance, apr)
            part = balance if period == term else min(share, balance)
            out.append((part, interest))
            balance -= part
    else:
        interest = monthly_interest(principal, apr)
        out = [(Decimal("0.00"), interest)] * (term - 1) + [(principal, interest)]
    return out


def build_schedule(
    principal: Decimal | int | str | float,
    apr: Decimal | int | str | float,
    term: int,
    method: Method | str,
    start: dt.date,
) -> list[Instalment]:
    """The full schedule of a loan. Raises FengkongError naming the field for any input it cannot honour."""
    p, rate, kind = validate_terms(principal, apr, term, method)
    if not isinstance(start, dt.date) or isinstance(start, dt.datetime):
        raise FengkongError("invalid_field", "start must be a date (YYYY-MM-DD)", "start", 422)
    try:
        add_months(start, term)
    except (ValueError, OverflowError):
        raise FengkongError("invalid_field", "start: the schedule would run past the year 9999", "start", 422) from None
    rows: list[Instalment] = []
    balance = p
    for period, (part, interest) in enumerate(amounts(p, rate, term, kind), start=1):
        balance -= part
        rows.append(Instalment(period, add_months(start, period), part, interest, part + interest, balance))
    return rows


def validate_terms(
    principal: Decimal | int | str | float, apr: Decimal | int | str | float, term: int, method: Method | str
) -> tuple[Decimal, Decimal, Method]:
    """Principal, APR (a fraction: 0.12 is 12 %) and method as the schedule uses them, or a clear error."""
    p = parse_money(principal, "principal")
    if not MIN_PRINCIPAL <= p <= MAX_PRINCIPAL:
        raise FengkongError(
            "invalid_field", f"principal must be between {MIN_PRINCIPAL} and {MAX_PRINCIPAL}", "principal", 422
        )
    rate = parse_apr(apr)
    if isinstance(term, bool) or not isinstance(term, int) or not 1 <= term <= MAX_TERM:
        raise FengkongError("invalid_field", f"term must be a whole number of months from 1 to {MAX_TERM}", "term", 422)
    try:
        kind = Method(method)
    except ValueError:
        known = ", ".join(m.value for m in Method)
        raise FengkongError("invalid_field", f"unknown method {method!r}; use one of {known}", "method", 422) from None
    return p, rate, kind


def parse_money(value: Decimal | int | str | float, field: str) -> Decimal:
    """A positive amount with at most two decimals (a fen is the smallest unit; nothing is rounded away)."""
    try:
        number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except (InvalidOperation, ValueError):
        raise FengkongError("invalid_field", f"{field} must be a number, e.g. 1000.00", field, 422) from None
    if not number.is_finite():
        raise FengkongError("invalid_field", f"{field} must be a finite number", field, 422)
    if number <= 0:
        raise FengkongError("invalid_field", f"{field} must be greater than 0 (got {number})", field, 422)
    if number != number.quantize(CENT, rounding=ROUND_HALF_UP):
        raise FengkongError("invalid_field", f"{field} has more than two decimals (got {number})", field, 422)
    return number.quantize(CENT)


def parse_apr(value: Decimal | int | str | float, field: str = "apr") -> Decimal:
    """An annual rate as a fraction from 0 to 1 (0.12 is 12 %). ``"12%"`` is read as 0.12; a bare 12 is refused,
    since it would be a 1200 % rate: the message suggests the fraction."""
    text = repr(value) if isinstance(value, float) else str(value).strip()
    percent = text.endswith("%")
    try:
        rate = Decimal(text.removesuffix("%").strip())
    except (InvalidOperation, ValueError):
        raise FengkongError("invalid_field", f"{field} must be a fraction such as 0.12 (or 12%)", field, 422) from None
    if not rate.is_finite():
        raise FengkongError("invalid_field", f"{field} must be a finite number", field, 422)
    if percent:
        rate /= 100
    if rate < 0:
        raise FengkongError("invalid_field", f"{field} cannot be negative (got {text})", field, 422)
    if rate > 1:
        raise FengkongError(
            "invalid_field",
            f"{field} is a fraction, not a percentage: for {rate}% give {(rate / 100).normalize()} "
            f"(or '{rate.normalize()}%'); rates above 1 (100 %) are refused",
            field,
            422,
        )
    if rate.as_tuple().exponent < -6:  # type: ignore[operator]
        raise FengkongError("invalid_field", f"{field} has more than 6 decimals (got {text})", field, 422)
    return rate.normalize() if rate != 0 else Decimal(0)


def totals(rows: list[Instalment]) -> dict[str, float]:
    return {
        "principal": float(sum((r.principal for r in rows), Decimal(0))),
        "interest": float(sum((r.interest for r in rows), Decimal(0))),
        "payment": float(sum((r.payment for r in rows), Decimal(0))),
    }
