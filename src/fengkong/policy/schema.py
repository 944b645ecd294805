"""The shape of a policy file. Pydantic checks structure; the compiler checks meaning."""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator


def _not_nan(value: float) -> float:
    if value != value:
        raise ValueError("must be a number, not NaN")
    return value


# NaN compares false in Python but sorts above every number in polars: the two evaluators would disagree.
Number = Annotated[float, AfterValidator(_not_nan)]


def _increasing(edges: list[float], what: str) -> list[float]:
    if any(a >= b for a, b in pairwise(edges)):
        raise ValueError(f"{what} must increase strictly")
    return edges


class DuplicateRuleIdError(ValueError):
    """A rule id used a second time; ``index`` is that rule's position in ``rules`` (for the loader)."""

    def __init__(self, rule_id: str, index: int) -> None:
        super().__init__(f"rule id {rule_id!r} is used twice")
        self.index = index


class RuleSpec(BaseModel):
    """A hard rule: when the condition is definitely true, the application is declined or reviewed."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.\-]*$", max_length=64)
    when: str = Field(min_length=1)
    action: Literal["decline", "review"]
    reason: str
    description: str = ""


class TriggerSpec(BaseModel):
    """An event trigger: when an event of these types arrives and the condition on the customer's online
    features is definitely true, take the action (with a reason code for the customer notice)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.\-]*$", max_length=64)
    events: list[str] = Field(min_length=1, description="event types that wake the trigger")
    when: str = Field(min_length=1)
    action: Literal["alert", "open_case", "freeze_line"]
    reason: str
    description: str = ""

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        from fengkong.events.schema import EVENT_TYPES

        unknown = [v for v in value if v not in EVENT_TYPES]
        if unknown:
            raise ValueError(f"unknown event type(s) {unknown}; known: {', '.join(EVENT_TYPES)}")
        return value


class ScoreSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scorecard: str = Field(description="NAME@VERSION of the scorecard", pattern=r"^[\w.\-]+@[\w.\-]+$")
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="pin the scorecard's content")
    decline_below: Number
    review_below: Number
    max_reasons: int = Field(2, ge=0, le=4)

    @model_validator(mode="after")
    def _cutoffs_ordered(self) -> ScoreSpec:
        if self.review_below < self.decline_below:
            raise ValueError("review_below must be at least decline_below")
        return self


class LimitSpec(BaseModel):
    """Limit table: rows are score bands, columns income bands. Edges are lower bounds of the next band."""

    model_config = ConfigDict(extra="forbid")
    score_edges: list[Number]
    income_edges: list[Number]
    table: list[list[Number]]
    income_multiple_cap: float | None = Field(None, gt=0, description="limit ≤ monthly_income × this")
    min_limit: float = Field(0, ge=0, description="a smaller computed limit declines the application")
    rounding: float = Field(100, gt=0, description="limits are rounded down to a multiple of this")

    _score = field_validator("score_edges")(lambda v: _increasing(v, "score_edges"))
    _income = field_validator("income_edges")(lambda v: _increasing(v, "income_edges"))

    @model_validator(mode="after")
    def _shape(self) -> LimitSpec:
        rows, cols = len(self.score_edges) + 1, len(self.income_edges) + 1
        if len(self.table) != rows:
            raise ValueError(
                f"table needs {rows} rows (one per score band: len(score_edges) + 1), has {len(self.table)}"
            )
        for i, row in enumerate(self.table):
            if len(row) != cols:
                raise ValueError(f"table row {i} needs {cols} limits (len(income_edges) + 1), has {len(row)}")
            if any(v < 0 for v in row):
                raise ValueError(f"table row {i} has a negative limit")
        return self


class PricingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    score_edges: list[Number]
    apr: list[float]
    max_apr: float = Field(0.24, gt=0, le=1, description="no APR in the table may exceed this (legal cap)")

    _edges = field_validator("score_edges")(lambda v: _increasing(v, "score_edges"))

    @model_validator(mode="after")
    def _shape(self) -> PricingSpec:
        if len(self.apr) != len(self.score_edges) + 1:
            raise ValueError(f"apr needs {len(self.score_edges) + 1} rates (len(score_edges) + 1), has {len(self.apr)}")
        for rate in self.apr:
            if not 0 < rate <= self.max_apr:
                raise ValueError(f"apr {rate} is outside (0, max_apr={self.max_apr}]")
        return self


class PolicySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: str = Field(pattern=r"^[A-Za-z][\w\-]*$", description="policy name")
    version: str = Field(pattern=r"^[\w.\-]+$", max_length=64)
    description: str = ""
    currency: str = "CNY"
    max_reasons: int = Field(4, ge=1, le=8)
    rules: list[RuleSpec] = Field(default_factory=list)
    triggers: list[TriggerSpec] = Field(default_factory=list)
    score: ScoreSpec
    limits: LimitSpec
    pricing: PricingSpec

    @model_validator(mode="after")
    def _unique_rule_ids(self) -> PolicySpec:
        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.id in seen:
                raise DuplicateRuleIdError(rule.id, i)
            seen.add(rule.id)
        return self
