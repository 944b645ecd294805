"""Response shapes for the OpenAPI document (the engine returns plain dicts that match them)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field


class ReasonOut(BaseModel):
    code: str
    category: str
    text: str


class DecisionOut(BaseModel):
    decision_id: str
    application_id: str | None
    outcome: Literal["approve", "review", "decline"]
    limit: float | None
    apr: float | None
    currency: str
    reasons: list[ReasonOut]
    policy_version: str
    model_version: str
    created_at: str
    case_id: str | None
    line_id: str | None = None
    replayed: bool


class DecisionDetailOut(DecisionOut):
    customer_id: str
    score: float | None
    inputs: dict[str, Any]
    identity: dict[str, str]
    features: dict[str, Any]
    rule_hits: list[str]
    reproduced: bool | None = Field(
        description="whether replaying under the policy version in force reproduces the decision; null for a "
        "person's drawdown decision or a drawdown that cannot be replayed (explanation.analyst.replay says why)"
    )
    explanation: dict[str, Any]


class ErrorOut(BaseModel):
    code: str
    message: str
    field: str | None
    errors: list[dict[str, str]] | None = None


class PolicyOut(BaseModel):
    version: str
    name: str
    active: bool
    role: Literal["champion", "challenger", "shadow"] | None = None
    share: float | None = None
    model_version: str
    content_hash: str
    created_at: str
    created_by: str


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt "activate" must not be ignored silently

    content: str = Field(min_length=1, max_length=1_000_000, description="the policy YAML text")
    activate: bool = False


class SimulationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    applications: list[dict[str, Any]] = Field(
        min_length=1, max_length=100_000, description="historical applications: feature values, optional outcome"
    )
    against: str | None = Field(None, description="the version to compare with (default: the active one)")
    outcome_column: str = Field("bad", min_length=1, max_length=64)
    segment_columns: list[str] | None = Field(
        None, max_length=10, description="null: the usual segment columns (channel, region, ...) the rows have"
    )
    lines: list[dict[str, Any]] | None = Field(
        None, min_length=1, max_length=100_000, description="live lines: also re-run line review under both policies"
    )
    as_of: dt.date | None = Field(None, description="line review date (default today)")


class PolicyRoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["challenger", "shadow"] | None = Field(description="null clears the version's role")
    share: float | None = Field(None, gt=0, lt=1, description="the challenger's share of customers")


class AuditOut(BaseModel):
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None
    findings: list[dict[str, Any]]


class EventErrorOut(BaseModel):
    index: int
    event_id: str | None
    code: str
    field: str | None
    message: str


class IngestOut(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    accepted_ids: list[str]
    duplicate_ids: list[str]
    errors: list[EventErrorOut]
    alerts: list[str]


def _iso_text(value: Any) -> Any:
    """Only ISO 8601 text is a time here (pydantic would also read a bare number as a Unix timestamp)."""
    if value is not None and not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time text with a time zone")
    return value


class ListEntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    list: Literal["blacklist", "watchlist"]
    kind: Literal["customer", "device", "phone", "id_number", "bank_card", "ip", "payee"]
    value: str = Field(min_length=1, max_length=128, description="raw identifier (hashed on arrival) or customer id")
    reason: str = Field(min_length=1, max_length=64)
    source: str = Field("analyst", min_length=1, max_length=64)
    expires_at: Annotated[AwareDatetime | None, BeforeValidator(_iso_text)] = Field(
        None, description="ISO 8601 with a time zone; omit for no expiry"
    )


class ListEntryOut(BaseModel):
    id: str


class ProtectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Literal["scam_victim", "identity_theft", "other"] = "scam_victim"


class HealthOut(BaseModel):
    status: str
    database: str
    policy_version: str | None
    version: str


ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 413, 422)}
