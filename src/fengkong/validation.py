"""Input types shared by every request schema (applications, events)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError


def whole_number(value: Any) -> Any:
    """JSON has one number type: accept 36.0 as 36 (as JSON Schema does), never "36" or 36.5."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Whole = Annotated[int, BeforeValidator(whole_number)]


def checked_text(pattern: str, rule: str) -> AfterValidator:
    """A text checked against ``pattern`` (which the OpenAPI document states) and refused with a rule a person can
    act on, instead of the regular expression. The refusal (``invalid_text``) carries ``rule`` in its context so
    that ``errors.from_validation_error`` can state it without the value for identifier fields."""
    compiled = re.compile(pattern)

    def check(value: str | None) -> str | None:
        # fullmatch: re's ``$`` also matches before a final newline, which the schema's pattern does not allow
        if value is not None and compiled.fullmatch(value) is None:
            raise PydanticCustomError("invalid_text", "{rule} (got {got})", {"rule": rule, "got": repr(value[:40])})
        return value

    return AfterValidator(check)


def rule_text(pattern: str, rule: str) -> tuple[Any, AfterValidator]:
    """``Annotated[str, *rule_text(pattern, rule)]``: the pattern in the schema, the rule in the refusal."""
    return Field(json_schema_extra={"pattern": pattern}), checked_text(pattern, rule)


class BureauFigures(BaseModel):
    """What a credit-bureau summary says about borrowing elsewhere; sent with an application and in events."""

    model_config = ConfigDict(extra="forbid", strict=True)

    inquiries_7d: Whole = Field(ge=0, le=10_000, description="lenders that inquired in the last 7 days")
    inquiries_30d: Whole = Field(ge=0, le=10_000)
    inquiries_90d: Whole = Field(ge=0, le=10_000)
    active_loans: Whole = Field(ge=0, le=10_000, description="active loans at other lenders")
    total_debt: float = Field(ge=0, le=10_000_000_000, description="outstanding debt at other lenders")

    @model_validator(mode="after")
    def _windows_nested(self) -> BureauFigures:
        if not self.inquiries_7d <= self.inquiries_30d <= self.inquiries_90d:
            raise ValueError("inquiries must satisfy inquiries_7d ≤ inquiries_30d ≤ inquiries_90d (nested windows)")
        return self
