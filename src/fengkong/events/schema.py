"""The shape of each event type. One model per type, chosen by the ``type`` field.

Identifiers (device id, IP, phone, payee account) are personal data: the engine replaces them with keyed
hashes before anything is stored or counted, exactly as for applications.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter

from fengkong.validation import BureauFigures

_REF = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"
Amount = Annotated[float, Field(gt=0, le=1_000_000_000)]


def _iso_text(value: Any) -> Any:
    """A time is ISO 8601 text here; pydantic would also read a bare number as a Unix timestamp."""
    if not isinstance(value, str | dt.datetime):
        raise ValueError("must be an ISO 8601 date-time text with a time zone, e.g. 2026-11-23T10:00:00+08:00")
    return value


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)

    event_id: str = Field(pattern=_REF, description="unique per event; a retry with the same id is counted once")
    customer_id: str = Field(pattern=_REF)
    occurred_at: Annotated[AwareDatetime, BeforeValidator(_iso_text)] = Field(
        strict=False, description="when it happened, ISO 8601 with a time zone"
    )
    device_id: str | None = Field(None, min_length=1, max_length=128)
    ip: str | None = Field(None, min_length=2, max_length=45)

    @property
    def ts(self) -> float:
        return self.occurred_at.timestamp()

    def utc(self) -> dt.datetime:
        return self.occurred_at.astimezone(dt.UTC)


class Login(_Event):
    type: Literal["login"]
    success: bool = True


class DeviceBound(_Event):
    type: Literal["device_bound"]
    device_id: str = Field(min_length=1, max_length=128)


class PasswordChanged(_Event):
    type: Literal["password_changed"]


class ApplicationEvent(_Event):
    """Recorded by the decision path itself; lenders need not send it."""

    type: Literal["application"]
    phone: str | None = Field(None, max_length=32)
    id_number: str | None = Field(None, max_length=18)
    bank_card: str | None = Field(None, max_length=23)
    outcome: Literal["approve", "review", "decline"] | None = None
    decision_id: str | None = Field(None, max_length=40)


class Payment(_Event):
    """The customer pays a merchant (e.g. with the credit line)."""

    type: Literal["payment"]
    merchant_id: str = Field(pattern=_REF)
    amount: Amount


class MerchantPayout(_Event):
    """A merchant sends money to a person: the return leg of a cash-out (套现) loop when that person paid it."""

    type: Literal["merchant_payout"]
    merchant_id: str = Field(pattern=_REF)
    amount: Amount


class TransferOut(_Event):
    type: Literal["transfer_out"]
    payee: str = Field(min_length=1, max_length=64, description="the receiving account")
    amount: Amount
    # what kind of account receives it, when the lender's payment rails know (fund-use monitoring, issue 6)
    payee_category: Literal["person", "merchant", "lender", "securities", "property", "other"] | None = None


class Drawdown(_Event):
    type: Literal["drawdown"]
    amount: Amount
    line_id: str | None = Field(None, pattern=_REF)


class Repayment(_Event):
    type: Literal["repayment"]
    amount: Amount
    loan_id: str | None = Field(None, pattern=_REF)


class BureauUpdate(BureauFigures, _Event):
    type: Literal["bureau_update"]
    monthly_income: float | None = Field(
        None, ge=0, le=100_000_000, description="income verified since the line opened (payroll, tax), for line review"
    )


class Complaint(_Event):
    type: Literal["complaint"]
    category: Literal["collector", "fraud", "scam", "unauthorised", "service", "other"]


Event = Annotated[
    Login
    | DeviceBound
    | PasswordChanged
    | ApplicationEvent
    | Payment
    | MerchantPayout
    | TransferOut
    | Drawdown
    | Repayment
    | BureauUpdate
    | Complaint,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
EVENT_TYPES = (
    "login",
    "device_bound",
    "password_changed",
    "application",
    "payment",
    "merchant_payout",
    "transfer_out",
    "drawdown",
    "repayment",
    "bureau_update",
    "complaint",
)
