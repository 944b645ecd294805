"""Response shapes for the OpenAPI document (the engine returns plain dicts that match them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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
    replayed: bool


class DecisionDetailOut(DecisionOut):
    customer_id: str
    score: float | None
    inputs: dict[str, Any]
    identity: dict[str, str]
    features: dict[str, Any]
    rule_hits: list[str]
    reproduced: bool
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
    model_version: str
    content_hash: str
    created_at: str
    created_by: str


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt "activate" must not be ignored silently

    content: str = Field(min_length=1, max_length=1_000_000, description="the policy YAML text")
    activate: bool = False


class AuditOut(BaseModel):
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None
    findings: list[dict[str, Any]]


class HealthOut(BaseModel):
    status: str
    database: str
    policy_version: str | None
    version: str


ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 413, 422)}
