"""HTTP door of the loan book and collections (issue 6): thin; everything happens in ``engine.loans``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from fastapi import APIRouter, Depends, Path, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from fengkong.api.auth import get_engine, require
from fengkong.loans.schedule import MAX_TERM
from fengkong.security import Permission, Principal
from fengkong.service import Engine

router = APIRouter()
EngineDep = Annotated[Engine, Depends(get_engine)]
_REF = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"
_PRINCIPAL = r"^[1-9][0-9]{0,7}(\.[0-9]{1,2})?$"  # 1 to 99,999,999.99, at most two decimals
_AMOUNT = r"^([1-9][0-9]{0,8}(\.[0-9]{1,2})?|0\.(0[1-9]|[1-9][0-9]?))$"  # above 0, at most two decimals
_RATE = r"^(0(\.[0-9]{1,6})?|1(\.0{1,6})?)$"  # a fraction from 0 to 1
# a real calendar date from 1970-01-01 to 2199-12-31 (leap days included)
_YEAR = r"(19[7-9][0-9]|20[0-9]{2}|21[0-9]{2})"
_LEAP = r"(19[79][26]|198[048]|20[02468][048]|20[13579][26]|21[02468][48]|21[2468]0|21[13579][26])"
_DAY = r"((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)"
_DATE = rf"^({_YEAR}-{_DAY}|{_LEAP}-02-29)$"
TIMEZONES = sorted(available_timezones())
_ZONE_ENUM: list[JsonValue] = list(TIMEZONES)
AsOf = Annotated[str | None, Query(pattern=_DATE, description="YYYY-MM-DD (1970 to 2199); default: today")]
LoanId = Annotated[str, Path(pattern=_REF)]
CustomerId = Annotated[str, Path(pattern=_REF)]


class LoanIn(BaseModel):
    """A loan the lender's core system disbursed outside a credit line (loans on a line are opened by
    POST /v1/lines/{line_id}/drawdowns, which also takes the amount from the line)."""

    model_config = ConfigDict(extra="forbid")
    loan_id: str | None = Field(None, pattern=_REF, description="your id; the same terms again return the loan")
    customer_id: str = Field(pattern=_REF)
    principal: str = Field(pattern=_PRINCIPAL, description='decimal text, at most 2 decimals, e.g. "10000.00"')
    apr: str = Field(pattern=_RATE, description='a fraction: "0.12" is 12 %')
    term: int = Field(ge=1, le=MAX_TERM, description="months")
    method: Literal["equal_instalment", "equal_principal", "interest_only"]
    start_date: str | None = Field(
        None, pattern=_DATE, description="YYYY-MM-DD, 1970 to 2199; default: today in the loan's time zone"
    )
    penalty_apr: str | None = Field(None, pattern=_RATE, description="default: 1.5 × apr (at most 1)")
    timezone: str = Field(
        "Asia/Shanghai", description="the customer's IANA time zone", json_schema_extra={"enum": _ZONE_ENUM}
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in TIMEZONES:
            raise ValueError("unknown time zone; use an IANA name such as Asia/Shanghai")
        return value


class RepaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    repayment_id: str = Field(pattern=_REF, description="your id; a retry with the same id is applied once")
    amount: str = Field(pattern=_AMOUNT, description='decimal text above 0, at most 2 decimals, e.g. "888.49"')
    paid_on: str | None = Field(
        None, pattern=_DATE, description="the day the money arrived, YYYY-MM-DD (default: today, loan's time zone)"
    )
    mode: Literal["instalment", "prepayment"] = Field(
        "instalment",
        description="instalment: due instalments, then the next ones as scheduled; prepayment: due instalments, "
        "this month's interest, then principal, re-amortised (the payoff quote settles the loan)",
    )


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    loan_id: str = Field(pattern=_REF)
    channel: Literal["sms", "app", "call"]
    party: Literal["customer", "emergency_contact", "third_party"]
    result: (
        Literal[
            "promise_to_pay",
            "paid",
            "no_answer",
            "refused_to_pay",
            "wrong_number",
            "callback_requested",
            "message_sent",
        ]
        | None
    ) = Field(None, description="what came of an allowed contact")


class ContactOut(BaseModel):
    contact_id: str
    loan_id: str
    customer_id: str
    allowed: bool
    refusal: str | None
    message: str
    local_time: str
    channel: str
    party: str
    dpd: int
    bucket: str
    contacts_today: int


def _day(text: str | None) -> dt.date | None:
    """A date the schema's pattern already checked (a real day from 1970 to 2199)."""
    return dt.date.fromisoformat(text) if text else None


def _actor(principal: Principal) -> str:
    return f"key:{principal.key_id}"


@router.post("/v1/loans", tags=["loans"], summary="Book a loan disbursed outside a credit line, with its schedule")
def open_loan(
    body: LoanIn, engine: EngineDep, principal: Annotated[Principal, Depends(require(Permission.INGEST))]
) -> dict[str, Any]:
    return engine.loans.open_loan(
        body.customer_id,
        body.principal,
        body.apr,
        body.term,
        body.method,
        dt.date.fromisoformat(body.start_date) if body.start_date else None,
        loan_id=body.loan_id,
        penalty_apr=body.penalty_apr,
        timezone=body.timezone,
        actor=_actor(principal),
    )


@router.get(
    "/v1/loans/roll-rates",
    tags=["loans"],
    summary="Bucket-to-bucket roll rates of the book between two dates (counts of loans and row shares)",
)
def roll_rates(
    engine: EngineDep,
    _p: Annotated[Principal, Depends(require(Permission.READ_LOAN))],
    from_: Annotated[str, Query(alias="from", pattern=_DATE, description="YYYY-MM-DD")],
    to: Annotated[str, Query(pattern=_DATE, description="YYYY-MM-DD")],
) -> dict[str, Any]:
    result: dict[str, Any] = engine.loans.roll_rates(dt.date.fromisoformat(from_), dt.date.fromisoformat(to)).as_dict()
    return result


@router.get("/v1/loans/delinquency", tags=["loans"], summary="Loans on book by delinquency bucket as of a date")
def delinquency(
    engine: EngineDep,
    _p: Annotated[Principal, Depends(require(Permission.READ_LOAN))],
    as_of: AsOf = None,
) -> dict[str, Any]:
    return engine.loans.delinquency(_day(as_of))


@router.get(
    "/v1/loans/{loan_id}",
    tags=["loans"],
    summary="A loan: schedule, what was paid, outstanding, days past due and bucket as of a date",
)
def get_loan(
    loan_id: LoanId,
    engine: EngineDep,
    _p: Annotated[Principal, Depends(require(Permission.READ_LOAN))],
    as_of: Annotated[str | None, Query(pattern=_DATE, description="YYYY-MM-DD; default: today there")] = None,
) -> dict[str, Any]:
    return engine.loans.get(loan_id, _day(as_of))


@router.get("/v1/loans/{loan_id}/payoff", tags=["loans"], summary="The amount that settles the loan on a date")
def payoff(
    loan_id: LoanId,
    engine: EngineDep,
    _p: Annotated[Principal, Depends(require(Permission.READ_LOAN))],
    on: AsOf = None,
) -> dict[str, Any]:
    return engine.loans.payoff_quote(loan_id, _day(on))


@router.post(
    "/v1/loans/{loan_id}/repayments",
    tags=["loans"],
    summary="Apply a repayment (idempotent on repayment_id): penalty, interest, principal, oldest first",
)
async def repay(
    loan_id: LoanId,
    body: RepaymentIn,
    engine: EngineDep,
    principal: Annotated[Principal, Depends(require(Permission.INGEST))],
) -> dict[str, Any]:
    result: dict[str, Any] = await run_in_threadpool(
        engine.loans.repay,
        loan_id,
        body.repayment_id,
        body.amount,
        dt.date.fromisoformat(body.paid_on) if body.paid_on else None,
        body.mode,
        actor=_actor(principal),
        source=_actor(principal),
    )
    return result


@router.get("/v1/customers/{customer_id}/loans", tags=["loans"], summary="A customer's loans with DPD and bucket")
def customer_loans(
    customer_id: CustomerId,
    engine: EngineDep,
    _p: Annotated[Principal, Depends(require(Permission.READ_LOAN))],
    as_of: AsOf = None,
) -> list[dict[str, Any]]:
    return engine.loans.for_customer(customer_id, _day(as_of))


@router.get(
    "/v1/collections/queue",
    tags=["collections"],
    summary="Delinquent loans to work, highest expected recovery first (paused customers left out)",
)
def collections_queue(
    engine: EngineDep,
    _p: Annotated[Principal, Depends(require(Permission.COLLECT))],
    as_of: AsOf = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[dict[str, Any]]:
    return engine.loans.queue(_day(as_of), limit)


@router.post(
    "/v1/collections/contacts",
    response_model=ContactOut,
    tags=["collections"],
    summary="Ask to contact now: the hard limits and the bucket's strategy answer; every attempt is logged",
    description="200 with allowed=false and the refusal reason when a limit refuses it (the refusal is logged too).",
)
def collections_contact(
    body: ContactIn, engine: EngineDep, principal: Annotated[Principal, Depends(require(Permission.COLLECT))]
) -> dict[str, Any]:
    return engine.loans.contact(body.loan_id, body.channel, body.party, _actor(principal), body.result)
