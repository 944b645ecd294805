"""HTTP door of credit lines and portfolio line review (issue 5): thin; everything happens in ``engine.lines``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from fengkong.api.auth import get_engine, require
from fengkong.api.loans_routes import _DATE as DATE_PATTERN
from fengkong.domain import Language
from fengkong.errors import FengkongError
from fengkong.lines.drawdown import DrawdownIn
from fengkong.reasons import CATALOGUE
from fengkong.security import Permission, Principal
from fengkong.service import Engine, parse_json_body

router = APIRouter(tags=["lines"])
EngineDep = Annotated[Engine, Depends(get_engine)]
_REF = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"
LineId = Annotated[str, Path(pattern=_REF)]


def _known_reason(code: str) -> str:
    if code not in CATALOGUE:
        raise ValueError(f"unknown reason code {code!r}")
    return code


ReasonCode = Annotated[
    str, AfterValidator(_known_reason), WithJsonSchema({"type": "string", "enum": sorted(CATALOGUE)})
]
_NOTE = Field(min_length=1, max_length=2000, pattern=r"\S", description="why: required of every person acting")
_REASONS: Any = Field(default_factory=list, max_length=8, description="reason codes; default LINE_ANALYST_DECISION")


class LimitChangeIn(BaseModel):
    """Raise or cut the limit of an active line, within the policy's guardrails."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["increase", "decrease"]
    new_limit: float = Field(ge=0, le=1e9)
    reasons: list[ReasonCode] = _REASONS
    note: str = _NOTE


class StatusChangeIn(BaseModel):
    """Freeze, unfreeze, close or restore a line (restore: a frozen or closed line made active on human review)."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["freeze", "unfreeze", "close", "restore"]
    reasons: list[ReasonCode] = _REASONS
    note: str = _NOTE
    review_days: int | None = Field(None, ge=1, le=365, description="freeze: days until the line is reviewed again")


class ReversalIn(BaseModel):
    """Undo a decrease on human review: the limit it took is given back (never above the limit before it), or a
    decrease still under notice is withdrawn. Exempt from the increase guardrails: it grants no new credit."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["reverse"]
    reverses: str = Field(pattern=_REF, description="the id of the decrease to undo (lact_...)")
    reasons: list[ReasonCode] = _REASONS
    note: str = _NOTE


LineActionIn = Annotated[LimitChangeIn | StatusChangeIn | ReversalIn, Field(discriminator="action")]


class LineReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    apply: bool = Field(False, description="write the actions and notices; a dry run by default")
    as_of: str | None = Field(None, pattern=DATE_PATTERN, description="the review date YYYY-MM-DD; default today")
    resume: str | None = Field(None, pattern=_REF, description="the id of an interrupted run to finish")
    chunk_size: int = Field(1000, ge=1, le=100_000, description="lines per transaction when applying")
    due_only: bool = Field(False, description="only the frozen lines whose review date has come (the daily job)")


class LineReviewOut(BaseModel):
    run_id: str | None
    applied: int
    skipped: int = Field(description="planned actions not applied because the line moved since the plan")
    resumed: bool
    report: dict[str, Any]


class LineReviewRunOut(BaseModel):
    run_id: str
    status: Literal["running", "completed"]
    scope: Literal["all", "due"]
    as_of: str
    policy_version: str
    actor: str
    created_at: str
    completed_at: str | None
    lines_total: int
    lines_acted: int
    report: dict[str, Any]


@router.get("/v1/lines/{line_id}", summary="A credit line: status, limit, available, reasons and whole history")
def get_line(
    line_id: LineId,
    engine: EngineDep,
    _p: Annotated[Principal, Depends(require(Permission.READ_LINE))],
    language: Annotated[Language, Query()] = Language.ZH,
) -> dict[str, Any]:
    return engine.lines.get(line_id, language)


@router.get("/v1/customers/{customer_id}/lines", summary="A customer's credit lines")
def customer_lines(
    customer_id: Annotated[str, Path(pattern=_REF)],
    engine: EngineDep,
    _p: Annotated[Principal, Depends(require(Permission.READ_LINE))],
) -> list[dict[str, Any]]:
    return engine.lines.for_customer(customer_id)


@router.post(
    "/v1/lines/{line_id}/actions", summary="Act on a line by hand (increase, decrease, freeze, ..., reverse a decrease)"
)
def act_on_line(
    line_id: LineId,
    body: LineActionIn,
    engine: EngineDep,
    principal: Annotated[Principal, Depends(require(Permission.MANAGE_LINES))],
) -> dict[str, Any]:
    return engine.lines.act(
        line_id,
        body.action,
        actor=f"key:{principal.key_id}",
        actor_kind="analyst",
        reasons=body.reasons,
        new_limit=body.new_limit if isinstance(body, LimitChangeIn) else None,
        note=body.note,
        review_days=body.review_days if isinstance(body, StatusChangeIn) else None,
        reverses=body.reverses if isinstance(body, ReversalIn) else None,
    )


@router.post(
    "/v1/lines/{line_id}/drawdowns",
    summary="Decide a drawdown on a live line: approve (loan booked), decline, or hold for review",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": DrawdownIn.model_json_schema()}},
        }
    },
)
async def drawdown(
    line_id: LineId,
    request: Request,
    engine: EngineDep,
    principal: Annotated[Principal, Depends(require(Permission.DECIDE))],
) -> dict[str, Any]:
    body = parse_json_body(await request.body())
    if not isinstance(body, dict):
        raise FengkongError("invalid_body", "the request body must be a JSON object", "body", 422)
    decision = await run_in_threadpool(engine.lines.drawdown, line_id, body, f"key:{principal.key_id}")
    return decision.response()


@router.post(
    "/v1/line-reviews",
    response_model=LineReviewOut,
    summary="Run a portfolio line review: a dry run by default, or apply it (resumable)",
)
async def run_line_review(
    body: LineReviewIn,
    engine: EngineDep,
    principal: Annotated[Principal, Depends(require(Permission.MANAGE_LINES))],
) -> dict[str, Any]:
    run = await run_in_threadpool(
        lambda: engine.lines.review(
            dt.date.fromisoformat(body.as_of) if body.as_of else None,
            apply=body.apply,
            actor=f"key:{principal.key_id}",
            chunk_size=body.chunk_size,
            resume=body.resume,
            due_only=body.due_only,
        )
    )
    return {
        "run_id": run.run_id,
        "applied": run.applied,
        "skipped": run.skipped,
        "resumed": run.resumed,
        "report": run.report.as_dict(),
    }


@router.get(
    "/v1/line-reviews/{run_id}",
    response_model=LineReviewRunOut,
    summary="An applied line review run: running or completed, lines acted on, its report",
)
def get_line_review(
    run_id: Annotated[str, Path(pattern=_REF)],
    engine: EngineDep,
    _p: Annotated[Principal, Depends(require(Permission.READ_LINE))],
) -> dict[str, Any]:
    return engine.lines.get_run(run_id)
