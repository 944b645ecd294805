"""What a lender sends to ask for a decision on a credit application, checked field by field.

Types are strict (``"32"`` is not an age) and absurd values are refused here, at the door, so that the
policy only ever sees plausible data. Limits below are plausibility bounds, not credit policy: an applicant
aged 17 is a valid application that the policy declines; an applicant aged 300 is a broken request.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from fengkong.features.registry import EMPLOYMENT_TYPES
from fengkong.validation import BureauFigures, Whole, whole_number

Employment = Literal["salaried", "self_employed", "business_owner", "freelance", "student", "retired", "unemployed"]
assert set(EMPLOYMENT_TYPES) == set(Employment.__args__)  # type: ignore[attr-defined]


_SHA256 = r"^[0-9a-f]{64}$"
_REF = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


class Identity(_Strict):
    """Identifiers: each either raw (hashed and encrypted on arrival) or as the SHA-256 of its normalised form."""

    id_number: str | None = Field(None, pattern=r"^\d{17}[\dXx]$", description="18-character resident ID number")
    id_number_hash: str | None = Field(None, pattern=_SHA256)
    phone: str | None = Field(None, pattern=r"^\+?[0-9][0-9 \-]{5,19}$")
    phone_hash: str | None = Field(None, pattern=_SHA256)
    bank_card: str | None = Field(None, pattern=r"^[0-9][0-9 ]{11,22}$")
    bank_card_hash: str | None = Field(None, pattern=_SHA256)
    device_id: str | None = Field(None, min_length=1, max_length=128)
    ip: Annotated[
        str | None,
        WithJsonSchema(
            {"anyOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"}, {"type": "null"}]}
        ),
    ] = Field(None, max_length=45)

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError("not an IPv4 or IPv6 address") from None

    @model_validator(mode="after")
    def _one_form_each(self) -> Identity:
        for kind in ("id_number", "phone", "bank_card"):
            if getattr(self, kind) is not None and getattr(self, f"{kind}_hash") is not None:
                raise ValueError(f"send {kind} or {kind}_hash, not both")
        if self.id_number is None and self.id_number_hash is None:
            raise ValueError("id_number or id_number_hash is required")
        return self


class Applicant(_Strict):
    age: Annotated[int, Field(ge=0, le=120), BeforeValidator(whole_number)] | None = Field(
        None, description="declared age in years; may be omitted when a raw id_number is sent (read from it then)"
    )
    monthly_income: float = Field(ge=0, le=100_000_000, description="declared monthly income, product currency")
    employment: Employment
    employment_months: Annotated[int, Field(ge=0, le=960), BeforeValidator(whole_number)] | None = None


class Bureau(BureauFigures, _Strict):
    """The credit-bureau summary the lender obtained (PBOC or a licensed personal credit agency)."""

    worst_delinquency_days: Whole = Field(ge=0, le=100_000)


class ApplicationIn(_Strict):
    application_id: str | None = Field(
        None, pattern=_REF, description="the lender's id; a retry returns the same decision"
    )
    customer_id: str = Field(pattern=_REF, description="the lender's customer reference (not a personal identifier)")
    product: str = Field("consumer_line", pattern=r"^[a-z][a-z0-9_]{0,31}$")
    requested_amount: float | None = Field(None, gt=0, le=100_000_000)
    policy_version: str | None = Field(
        None, pattern=r"^[\w.\-]{1,64}$", description="decide under this version, not the active one"
    )
    language: Literal["zh", "en"] = "zh"
    identity: Identity
    applicant: Applicant
    bureau: Bureau | None = None
