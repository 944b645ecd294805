"""HTTP doors of the case queue, appeals and the customer's view of a decision (all thin: ``engine.cases``).

The analyst is the API key's holder: every step is recorded as ``key:<key id>``, and four eyes means two
different keys (one per person, as the keys are meant to be).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from fengkong.api.auth import get_engine, require
from fengkong.errors import FengkongError
from fengkong.security import Permission, Principal
from fengkong.service import Engine

router = APIRouter()

EngineDep = Annotated[Engine, Depends(get_engine)]
CaseTypeName = Literal["review", "held_drawdown", "fraud_alert", "early_warning", "appeal", "complaint"]
StatusName = Literal["open", "claimed", "pending_second_approval", "resolved"]
OutcomeName = Literal[
    "approve",
    "decline",
    "release",
    "confirmed_fraud",
    "victim",
    "false_positive",
    "no_action",
    "watchlist",
    "upheld",
    "rejected",
]
_REF = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"
Note = Annotated[
    str,
    Field(
        min_length=1,
        max_length=4000,
        pattern=r"\S",
        description="required: what you checked and why you decided so (kept in the case and the audit chain)",
    ),
]


def _actor(principal: Principal) -> str:
    return f"key:{principal.key_id}"


# ------------------------------------------------------------------------------------------ shapes


class CaseOut(BaseModel):
    case_id: str
    type: CaseTypeName
    status: StatusName
    priority: int = Field(description="1 (urgent) to 4 (low)")
    priority_name: str
    customer_id: str
    decision_id: str | None
    alert_id: str | None
    line_id: str | None
    line_action_id: str | None
    event_id: str | None
    source: str = Field(description="what opened the case; one source never opens two cases")
    assignee: str | None
    opened_by: str
    language: str
    created_at: str
    due_at: str
    updated_at: str
    resolved_at: str | None
    overdue: bool
    outcome: str | None
    proposal: dict[str, Any] | None = Field(description="a resolution waiting for a second analyst's approval")
    result: dict[str, Any] | None = Field(description="what the resolution changed")
    evidence: dict[str, Any]
    has_message: bool
    created: bool | None = Field(None, description="on opening: false when the source had opened this case already")
    follow_ups: list[dict[str, Any]] | None = Field(
        None, description="effects owned by other services that failed after the resolution: for a person to finish"
    )


class CaseDetailOut(CaseOut):
    steps: list[dict[str, Any]]
    allowed_outcomes: dict[str, str]
    four_eyes_limit: float
    message: str | None = Field(description="the customer's own words (appeals), masked unless reveal_pii")
    decision: dict[str, Any] | None = Field(description="the decision with its analyst and customer explanations")
    replay: dict[str, Any] | None
    alert: dict[str, Any] | None
    line: dict[str, Any] | None
    line_action: dict[str, Any] | None
    customer: dict[str, Any]


class CaseOpenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["review", "held_drawdown", "fraud_alert", "early_warning", "complaint"] = Field(
        description="appeals are filed with POST /v1/appeals"
    )
    customer_id: str = Field(pattern=_REF)
    decision_id: str | None = Field(None, pattern=_REF)
    alert_id: str | None = Field(None, pattern=_REF)
    line_id: str | None = Field(None, pattern=_REF)
    priority: int | None = Field(None, ge=1, le=4)
    evidence: dict[str, Any] = Field(default_factory=dict)
    note: Note


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: OutcomeName = Field(description="one of the case type's outcomes (see allowed_outcomes of the case)")
    note: Note
    limit: float | None = Field(None, gt=0, le=10_000_000, description="approvals: the limit to grant")
    apr: float | None = Field(None, gt=0, le=1, description="approvals: the APR (default: the decision's)")
    reasons: list[str] | None = Field(
        None, max_length=8, description="declines: reason codes (default: the decision's)"
    )


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Note
    approve: bool = Field(True, description="false sends the resolution back to its analyst; nothing takes effect")


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Note | None = None


def _one_ref(description: str) -> Any:
    """An optional id that, when sent, is text (the schema says so: null is not a way to leave it out)."""
    return WithJsonSchema({"type": "string", "pattern": _REF, "description": description})


class AppealIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        # exactly one of the two: an appeal is about one decision or one line action
        json_schema_extra={"oneOf": [{"required": ["decision_id"]}, {"required": ["line_action_id"]}]},
    )
    customer_id: str = Field(pattern=_REF)
    decision_id: Annotated[str | None, _one_ref("the decision appealed (or line_action_id)")] = Field(
        None, pattern=_REF
    )
    line_action_id: Annotated[str | None, _one_ref("the line restriction appealed (or decision_id)")] = Field(
        None, pattern=_REF
    )
    message: str = Field(min_length=1, max_length=2000, pattern=r"\S", description="the customer's own words")
    language: Literal["zh", "en"] = "zh"


class AppealOut(BaseModel):
    case_id: str
    customer_id: str
    decision_id: str | None
    line_action_id: str | None
    status: Literal["received", "in_review", "answered"]
    created: bool = Field(description="false: the same appeal was already in progress; this is it")
    due_at: str
    message: str = Field(description="what to tell the customer, in their language")


class AppealStatusOut(BaseModel):
    case_id: str
    status: Literal["received", "in_review", "answered"]
    due_at: str
    outcome: Literal["upheld", "rejected"] | None
    message: str
    reasons: list[dict[str, str]]
    answered_at: str | None = None


class CustomerViewOut(BaseModel):
    decision_id: str
    customer_id: str
    language: Literal["zh", "en"]
    decided_at: str
    outcome: Literal["approve", "review", "decline"]
    decided_by: Literal["automated", "person"]
    limit: float | None
    apr: float | None
    currency: str
    headline: str
    reasons: list[dict[str, str]] = Field(description="principal reasons in plain words, with what the customer can do")
    next_steps: list[str]
    under_review: bool
    appeal: dict[str, Any]


class LineActionViewOut(BaseModel):
    line_action_id: str
    line_id: str
    customer_id: str
    language: Literal["zh", "en"]
    action: str
    decided_at: str
    decided_by: Literal["automated", "person"]
    limit_before: float | None
    limit_after: float | None
    line_status: str | None
    line_limit: float | None
    currency: str | None
    headline: str = Field(description="the notice the customer was sent about this change")
    reasons: list[dict[str, str]] = Field(description="principal reasons in plain words, with what the customer can do")
    next_steps: list[str]
    appeal: dict[str, Any]


class ReplayOut(BaseModel):
    decision_id: str
    kind: str = Field(description="the stored row: application, drawdown, or override (a person's decision)")
    decision_kind: Literal["application", "drawdown"] = Field(
        description="what was decided: an application (its policy's rules and scorecard) or a drawdown (the "
        "drawdown rules of its policy version)"
    )
    stored: dict[str, Any]
    policy_version: str = Field(description="the policy version in force when the decision was made")
    model_version: str
    in_force: dict[str, Any] = Field(
        description="the decision made again under the policy version that made it (replayable, why, outcome, "
        "reasons, rule_hits; an application's also limit, apr, score)"
    )
    reproduced: bool | None = Field(
        description="whether that replay agrees; null for a person's decision or a record that cannot be replayed"
    )
    why: str = Field(description="why reproduced is true, false or null, in words")
    differences: list[str] = Field(description="what the replay gives differently from the stored decision")
    compared_with: dict[str, Any] | None = Field(description="the same features under another (default: active) policy")


# ------------------------------------------------------------------------------------------ routes


@router.get("/v1/cases", response_model=list[CaseOut], tags=["cases"], summary="The case queue, most urgent first")
def list_cases(
    engine: EngineDep,
    _p: Annotated[Principal, Depends(require(Permission.READ_CASES))],
    status: Annotated[list[StatusName] | None, Query()] = None,
    type: Annotated[list[CaseTypeName] | None, Query()] = None,
    assignee: Annotated[str | None, Query(pattern=_REF)] = None,
    overdue: Annotated[bool | None, Query(description="true: past due and unresolved")] = None,
    customer_id: Annotated[str | None, Query(pattern=_REF)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[dict[str, Any]]:
    return engine.cases.list(
        status=status,
        type=type,
        assignee=assignee,
        overdue=overdue,
        customer_id=customer_id,
        limit=limit,
        offset=offset,
    )


@router.post("/v1/cases", response_model=CaseOut, tags=["cases"], summary="Open a case by hand")
def open_case(
    body: CaseOpenIn, engine: EngineDep, principal: Annotated[Principal, Depends(require(Permission.WORK_CASES))]
) -> dict[str, Any]:
    return engine.cases.open(
        body.type,
        body.customer_id,
        decision_id=body.decision_id,
        alert_id=body.alert_id,
        line_id=body.line_id,
        evidence=body.evidence,
        priority=body.priority,
        note=body.note,
        actor=_actor(principal),
    )


@router.get(
    "/v1/cases/{case_id}",
    response_model=CaseDetailOut,
    tags=["cases"],
    summary="A case with everything needed to decide it",
)
def get_case(
    case_id: str,
    engine: EngineDep,
    principal: Annotated[Principal, Depends(require(Permission.READ_CASES))],
    reveal_pii: Annotated[bool, Query(description="show identifiers unmasked (needs the view_pii permission)")] = False,
) -> dict[str, Any]:
    if reveal_pii and not principal.can(Permission.VIEW_PII):
        raise FengkongError(
            "forbidden", f"role {principal.role.value!r} may not view unmasked personal data", "reveal_pii", 403
        )
    return engine.cases.get(case_id, reveal_pii=reveal_pii)


@router.post("/v1/cases/{case_id}/claim", response_model=CaseOut, tags=["cases"], summary="Claim a case")
def claim_case(
    case_id: str, engine: EngineDep, principal: Annotated[Principal, Depends(require(Permission.WORK_CASES))]
) -> dict[str, Any]:
    return engine.cases.claim(case_id, _actor(principal))


@router.post("/v1/cases/{case_id}/release", response_model=CaseOut, tags=["cases"], summary="Put a claimed case back")
def release_case(
    case_id: str,
    engine: EngineDep,
    principal: Annotated[Principal, Depends(require(Permission.WORK_CASES))],
    body: ReleaseIn | None = None,
) -> dict[str, Any]:
    return engine.cases.release(case_id, _actor(principal), body.note if body else None)


@router.post(
    "/v1/cases/{case_id}/resolve",
    response_model=CaseOut,
    tags=["cases"],
    summary="Resolve a claimed case with an outcome and a note (four-eyes cases wait for a second analyst)",
)
async def resolve_case(
    case_id: str,
    body: ResolveIn,
    engine: EngineDep,
    principal: Annotated[Principal, Depends(require(Permission.WORK_CASES))],
) -> dict[str, Any]:
    result: dict[str, Any] = await run_in_threadpool(
        lambda: engine.cases.resolve(
            case_id,
            _actor(principal),
            body.outcome,
            body.note,
            limit=body.limit,
            apr=body.apr,
            reasons=body.reasons,
        )
    )
    return result


@router.post(
    "/v1/cases/{case_id}/approve",
    response_model=CaseOut,
    tags=["cases"],
    summary="Second analyst: approve a pending resolution (or send it back with approve=false)",
)
async def approve_case(
    case_id: str,
    body: ApproveIn,
    engine: EngineDep,
    principal: Annotated[Principal, Depends(require(Permission.WORK_CASES))],
) -> dict[str, Any]:
    result: dict[str, Any] = await run_in_threadpool(
        lambda: engine.cases.approve(case_id, _actor(principal), body.note, approve=body.approve)
    )
    return result


@router.post(
    "/v1/appeals",
    response_model=AppealOut,
    tags=["appeals"],
    summary="A customer asks for human review of a decision or a line restriction (filed by the lender's app)",
)
def file_appeal(
    body: AppealIn, engine: EngineDep, principal: Annotated[Principal, Depends(require(Permission.APPEAL))]
) -> dict[str, Any]:
    return engine.cases.appeal(
        body.customer_id,
        decision_id=body.decision_id,
        line_action_id=body.line_action_id,
        message=body.message,
        language=body.language,
        actor=_actor(principal),
    )


@router.get(
    "/v1/appeals/{case_id}",
    response_model=AppealStatusOut,
    tags=["appeals"],
    summary="How a customer's appeal stands, in words for the customer",
)
def appeal_status(
    case_id: str,
    engine: EngineDep,
    _p: Annotated[Principal, Depends(require(Permission.APPEAL))],
    customer_id: Annotated[str, Query(pattern=_REF, description="the customer who filed the appeal")],
    language: Annotated[Literal["zh", "en"], Query()] = "zh",
) -> dict[str, Any]:
    return engine.cases.appeal_status(case_id, customer_id, language)


@router.get(
    "/v1/decisions/{decision_id}/customer-view",
    response_model=CustomerViewOut,
    tags=["appeals"],
    summary="A decision as its customer sees it: what was decided, why, what they can do, how to appeal",
)
def customer_view(
    decision_id: str,
    engine: EngineDep,
    _p: Annotated[Principal, Depends(require(Permission.APPEAL))],
    customer_id: Annotated[str, Query(pattern=_REF, description="the customer the decision is about")],
    language: Annotated[Literal["zh", "en"], Query()] = "zh",
) -> dict[str, Any]:
    return engine.cases.customer_view(decision_id, customer_id, language)


@router.get(
    "/v1/line-actions/{line_action_id}/customer-view",
    response_model=LineActionViewOut,
    tags=["appeals"],
    summary="A change to a credit line as its customer sees it: what was done, why, what they can do, how to appeal",
)
def line_action_view(
    line_action_id: Annotated[str, Path(pattern=_REF)],
    engine: EngineDep,
    _p: Annotated[Principal, Depends(require(Permission.APPEAL))],
    customer_id: Annotated[str, Query(pattern=_REF, description="the customer whose line it is")],
    language: Annotated[Literal["zh", "en"], Query()] = "zh",
) -> dict[str, Any]:
    return engine.cases.line_action_view(line_action_id, customer_id, language)


@router.get(
    "/v1/decisions/{decision_id}/replay",
    response_model=ReplayOut,
    tags=["decisions"],
    summary="Decide a stored application or drawdown decision again: under the policy in force then, and under "
    "another version",
)
def replay_decision(
    decision_id: str,
    engine: EngineDep,
    _p: Annotated[Principal, Depends(require(Permission.READ_DECISION))],
    policy_version: Annotated[
        str | None, Query(max_length=64, description="compare with this version (default: the active one)")
    ] = None,
) -> dict[str, Any]:
    return engine.cases.replay(decision_id, policy_version)
