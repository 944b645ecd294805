"""The shape of a policy file. Pydantic checks structure; the compiler checks meaning."""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Literal

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator


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
    # early_warning: a post-loan alert that opens an early-warning case; a trigger reading only loan_* features is
    # also evaluated by the daily early-warning scan (engine.loans.early_warning), whatever its events
    action: Literal["alert", "open_case", "freeze_line", "early_warning"]
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
    # ``scorecard:`` or ``model:``: a bundled scorecard file, or a model in the registry (scorecard or GBDT)
    scorecard: str = Field(
        description="NAME@VERSION of the score model: a scorecard file or a registered scorecard or GBDT",
        pattern=r"^[\w.\-]+@[\w.\-]+$",
        validation_alias=AliasChoices("scorecard", "model"),
    )
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="pin the model's content")
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


class GuardrailSpec(BaseModel):
    """Limits no line action may break, whoever proposes it (a rule, a review run or an analyst)."""

    model_config = ConfigDict(extra="forbid")
    max_decreases: int = Field(2, ge=0, description="at most this many limit decreases ...")
    decrease_window_days: int = Field(180, ge=1, description="... within this many days")
    increase_cooling_off_days: int = Field(
        90, ge=0, description="no further increase or decrease this many days after an increase"
    )
    decrease_notice_days: int = Field(0, ge=0, description="a decrease takes effect this many days after its notice")
    freeze_review_days: int = Field(30, ge=1, le=365, description="a frozen line is reviewed again by this date")
    max_limit: float = Field(200_000, gt=0, description="no increase goes above this limit")
    max_increase_fraction: float = Field(0.5, gt=0, le=5, description="one increase adds at most this share")


class SegmentSpec(BaseModel):
    """One segment of the line strategy: lines matching ``when`` (first match wins) get ``action``."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.\-]*$", max_length=64)
    when: str = Field(min_length=1)
    action: Literal["increase", "keep", "decrease", "freeze", "close"]
    change: float | None = Field(
        None, description="increase/decrease: the share of the current limit, e.g. 0.2 (required for those two)"
    )
    reason: str
    description: str = ""

    @model_validator(mode="after")
    def _change_fits_action(self) -> SegmentSpec:
        if self.action in ("increase", "decrease"):
            if self.change is None or not 0 < self.change <= 5:
                raise ValueError(f"a {self.action} segment needs 'change', a share of the limit in (0, 5]")
            if self.action == "decrease" and self.change >= 1:
                raise ValueError("a decrease 'change' must be below 1 (use action: close to end a line)")
        elif self.change is not None:
            raise ValueError(f"'change' applies only to increase and decrease, not {self.action}")
        return self


RepaymentMethod = Literal["equal_instalment", "equal_principal", "interest_only"]
_METHODS: tuple[RepaymentMethod, ...] = ("equal_instalment", "equal_principal", "interest_only")


class DrawdownSpec(BaseModel):
    """What a drawdown on a live line may be, and the rules that decline it or hold it for review."""

    model_config = ConfigDict(extra="forbid")
    terms: list[int] = Field(default_factory=lambda: [3, 6, 12, 24], min_length=1, description="months offered")
    methods: list[RepaymentMethod] = Field(default_factory=lambda: list(_METHODS), min_length=1)
    min_amount: float = Field(100, gt=0)
    rules: list[RuleSpec] = Field(default_factory=list)

    @field_validator("terms")
    @classmethod
    def _terms_positive(cls, value: list[int]) -> list[int]:
        if any(t < 1 or t > 360 for t in value):
            raise ValueError("terms are months from 1 to 360")
        return value


class LinesSpec(BaseModel):
    """The line strategy run by portfolio line review, and the guardrails every line action obeys."""

    model_config = ConfigDict(extra="forbid")
    behaviour_scorecard: str | None = Field(
        None, description="NAME@VERSION of the behaviour scorecard", pattern=r"^[\w.\-]+@[\w.\-]+$"
    )
    guardrails: GuardrailSpec = Field(default_factory=GuardrailSpec)
    segments: list[SegmentSpec] = Field(default_factory=list)
    drawdowns: DrawdownSpec = Field(default_factory=DrawdownSpec)

    @model_validator(mode="after")
    def _unique_segment_ids(self) -> LinesSpec:
        seen: set[str] = set()
        for segment in self.segments:
            if segment.id in seen:
                raise ValueError(f"segment id {segment.id!r} is used twice")
            seen.add(segment.id)
        return self


CaseTypeName = Literal["review", "held_drawdown", "fraud_alert", "early_warning", "appeal", "complaint"]


class CasesSpec(BaseModel):
    """The case queue: how long each case type may wait (SLA), and which human decisions need a second analyst."""

    model_config = ConfigDict(extra="forbid")
    sla_hours: dict[CaseTypeName, Annotated[float, Field(gt=0, le=24 * 90)]] = Field(
        default_factory=dict, description="due time per case type in hours; types left out keep their defaults"
    )
    four_eyes_limit: float = Field(
        50_000, gt=0, description="a human decision granting a limit above this needs a second, different analyst"
    )


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
    lines: LinesSpec = Field(default_factory=LinesSpec)
    cases: CasesSpec = Field(default_factory=CasesSpec)

    @field_validator("triggers")
    @classmethod
    def _unique_trigger_ids(cls, value: list[TriggerSpec]) -> list[TriggerSpec]:
        seen: set[str] = set()
        for trigger in value:
            if trigger.id in seen:
                raise ValueError(f"trigger id {trigger.id!r} is used twice")
            seen.add(trigger.id)
        return value

    @model_validator(mode="after")
    def _unique_rule_ids(self) -> PolicySpec:
        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.id in seen:
                raise DuplicateRuleIdError(rule.id, i)
            seen.add(rule.id)
        return self
