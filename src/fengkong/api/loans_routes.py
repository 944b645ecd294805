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
from fengkong.validation import checked_text as _checked  # the one way request schemas state rules
from fengkong.validation import rule_text as _text

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

_DATE_RULE = "must be a real date YYYY-MM-DD from 1970 to 2199"
_REF_RULE = "must be 1 to 64 letters, digits or . _ : - (starting with a letter or digit)"
RefText = Annotated[str, *_text(_REF, _REF_RULE)]
DateText = Annotated[str, *_text(_DATE, _DATE_RULE)]
RateText = Annotated[str, *_text(_RATE, "must be a fraction from 0 to 1 with at most 6 decimals: 0.12 is 12 %")]
PrincipalText = Annotated[
    str, *_text(_PRINCIPAL, 'must be an amount from 1 to 99999999.99 with at most two decimals, e.g. "10000.00"')
]
AmountText = Annotated[str, *_text(_AMOUNT, 'must be an amount above 0 with at most two decimals, e.g. "888.49"')]


def _date_query(description: str, alias: str | None = None) -> Any:
    return Query(alias=alias, description=description, json_schema_extra={"pattern": _DATE})


AsOf = Annotated[str | None, _date_query("YYYY-MM-DD (1970 to 2199); default: today"), _checked(_DATE, _DATE_RULE)]
LoanId = Annotated[str, Path(pattern=_REF)]
CustomerId = Annotated[str, Path(pattern=_REF)]


class LoanIn(BaseModel):
    """A loan the lender's core system disbursed outside a credit line (loans on a line are opened by
    POST /v1/lines/{line_id}/drawdowns, which also takes the amount from the line)."""

    model_config = ConfigDict(extra="forbid")
    loan_id: RefText | None = Field(None, description="your id; the same terms again return the loan")
    customer_id: RefText
    principal: PrincipalText = Field(description='decimal text, at most 2 decimals, e.g. "10000.00"')
    apr: RateText = Field(description='a fraction: "0.12" is 12 %')
    term: int = Field(ge=1, le=MAX_TERM, description="months")
    method: Literal["equal_instalment", "equal_principal", "interest_only"]
    start_date: DateText | None = Field(
        None, description="YYYY-MM-DD, 1970 to 2199; default: today in the loan's time zone"
    )
    penalty_apr: RateText | None = Field(None, description="default: 1.5 × apr (at most 1)")
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
    repayment_id: RefText = Field(description="your id; a retry with the same id is applied once")
    amount: AmountText = Field(description='decimal text above 0, at most 2 decimals, e.g. "888.49"')
    paid_on: DateText | None = Field(
        None, description="the day the money arrived, YYYY-MM-DD (default: today, loan's time zone)"
    )
    mode: Literal["instalment", "prepayment"] = Field(
        "instalment",
        description="instalment: due instalments, then the next ones as scheduled; prepayment: due instalments, "
        "this month's interest, then principal, re-amortised (the payoff quote settles the loan)",
    )


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    loan_id: RefText
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
    from_: Annotated[str, _date_query("YYYY-MM-DD", alias="from"), _checked(_DATE, _DATE_RULE)],
    to: Annotated[str, _date_query("YYYY-MM-DD"), _checked(_DATE, _DATE_RULE)],
) -> dict[str, Any]:
    result: dict[str, Any] = engine.loans.roll_rates(dt.date.fromisoformat(from_), dt.date.fromisoformat(to)).as_dict()
    return result


@router.get(
    "/v1/loans/roll-rates/monthly",
    tags=["loans"],
    summary="Roll rates month by month over the months to a date (each a matrix, with the forward rolls)",
)
def roll_rates_monthly(
    engine: EngineDep,
    _p: Annotated[Principal, Depends(require(Permission.READ_LOAN))],
    to: Annotated[str, _date_query("YYYY-MM-DD"), _checked(_DATE, _DATE_RULE)],
    months: Annotated[int, Query(ge=1, le=60, description="how many months back from to")] = 6,
) -> list[dict[str, Any]]:
    return [r.as_dict() for r in engine.loans.roll_rate_series(dt.date.fromisoformat(to), months)]


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
    as_of: Annotated[str | None, _date_query("YYYY-MM-DD; default: today there"), _checked(_DATE, _DATE_RULE)] = None,
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


class StatusChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: RefText = Field(description="a short code: settled, cooling_off, charged_off...")
    on: DateText | None = Field(None, description="YYYY-MM-DD, not in the future; default: today there")


@router.post(
    "/v1/loans/{loan_id}/close",
    tags=["loans"],
    summary="Close an active loan by hand (cooling-off, settlement): nothing more is owed; audited with its reason",
)
def close_loan(
    loan_id: LoanId,
    body: StatusChangeIn,
    engine: EngineDep,
    principal: Annotated[Principal, Depends(require(Permission.MANAGE_LINES))],
) -> dict[str, Any]:
    return engine.loans.close(loan_id, body.reason, _day(body.on), actor=_actor(principal))


@router.post(
    "/v1/loans/{loan_id}/write-off",
    tags=["loans"],
    summary="Write off an active loan more than 90 days past due; it stays with collections and takes recoveries",
)
def write_off_loan(
    loan_id: LoanId,
    body: StatusChangeIn,
    engine: EngineDep,
    principal: Annotated[Principal, Depends(require(Permission.MANAGE_LINES))],
) -> dict[str, Any]:
    return engine.loans.write_off(loan_id, body.reason, _day(body.on), actor=_actor(principal))


@router.post(
    "/v1/loans/early-warning",
    tags=["loans"],
    summary="Run the daily early-warning scan: the policy's triggers on loan_* features over the whole book",
)
def early_warning_scan(
    engine: EngineDep,
    principal: Annotated[Principal, Depends(require(Permission.MANAGE_LINES))],
    as_of: AsOf = None,
) -> dict[str, Any]:
    return engine.loans.early_warning(_day(as_of), actor=_actor(principal))


@router.get(
    "/v1/customers/{customer_id}/collection-contacts",
    tags=["collections"],
    summary="The contact log of a customer: every attempt, allowed or refused with its reason, oldest first",
)
def collection_contacts(
    customer_id: CustomerId, engine: EngineDep, _p: Annotated[Principal, Depends(require(Permission.READ_LOAN))]
) -> list[dict[str, Any]]:
    return engine.loans.contacts(customer_id)


class PauseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: RefText = Field("collector_complaint", description="a short code")


@router.post(
    "/v1/customers/{customer_id}/collections/pause",
    tags=["collections"],
    summary="Pause every contact with a customer (a complaint about a collector) and open a complaint case",
)
def pause_collections(
    customer_id: CustomerId,
    body: PauseIn,
    engine: EngineDep,
    principal: Annotated[Principal, Depends(require(Permission.COLLECT))],
) -> dict[str, Any]:
    return engine.loans.pause_collections(customer_id, body.reason, actor=_actor(principal))


@router.post(
    "/v1/customers/{customer_id}/collections/resume",
    tags=["collections"],
    summary="Lift a customer's pauses by hand (the complaint is handled); resolving the complaint case also does",
)
def resume_collections(
    customer_id: CustomerId,
    engine: EngineDep,
    principal: Annotated[Principal, Depends(require(Permission.WORK_CASES))],
) -> dict[str, Any]:
    lifted = engine.loans.resume_collections(customer_id, actor=_actor(principal))
    return {"customer_id": customer_id, "lifted": lifted, "paused": engine.loans.paused(customer_id)}
