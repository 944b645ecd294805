"""The case queue, the case page and the customer's appeal page, over ``engine.cases``.

Analysts claim, resolve (an outcome and a mandatory note), release, and approve or send back another analyst's
resolution (four eyes); the engine decides what is allowed and refuses the rest with a message that the page
shows as it is, with nothing changed. The appeal page is the customer's door and needs no console login: it
shows a decision only to whoever holds both its reference and the customer id it belongs to.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.datastructures import FormData

from fengkong.cases import OUTCOMES, CaseStatus, CaseType
from fengkong.errors import FengkongError
from fengkong.security import Permission
from fengkong.service import Engine
from fengkong.store import audit
from fengkong.web.guard import (
    FORM_COOKIE,
    PageError,
    cookie_options,
    form_token,
    form_token_ok,
    need,
    posted_form,
    read_form,
)
from fengkong.web.render import page, redirect
from fengkong.web.users import ConsoleSession

router = APIRouter(prefix="/console", include_in_schema=False)

#: A case is "due soon" in the last quarter of its SLA.
DUE_SOON_FRACTION = 0.25

NOTICES = {
    "claimed": "You claimed this case.",
    "released": "The case is back in the queue.",
    "resolved": "The case is resolved; its resolution has taken effect.",
    "proposed": "Your resolution waits for a second analyst (four eyes); nothing has taken effect yet.",
    "approved": "You approved the resolution; it has taken effect.",
    "returned": "You sent the resolution back to the analyst who proposed it; nothing took effect.",
}

UNRESOLVED = "unresolved"


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def sla(case: dict[str, Any], now: dt.datetime | None = None) -> dict[str, Any]:
    """SLA state of a case: ``overdue``, ``due-soon`` (last quarter of its time) or ``ok``, with the time left."""
    now = now or dt.datetime.now(dt.UTC)
    due = _parse(case["due_at"])
    created = _parse(case["created_at"])
    left = (due - now).total_seconds()
    if case["status"] == CaseStatus.RESOLVED.value:
        return {"state": "resolved", "seconds": left}
    if left < 0:
        return {"state": "overdue", "seconds": left}
    total = max((due - created).total_seconds(), 1.0)
    return {"state": "due-soon" if left <= total * DUE_SOON_FRACTION else "ok", "seconds": left}


def _parse(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


# ------------------------------------------------------------------------------------------ queue


@router.get("/cases")
def queue_page(
    request: Request,
    session: Annotated[ConsoleSession, Depends(need(Permission.READ_CASES))],
    status: Annotated[str, Query(max_length=32)] = UNRESOLVED,
    type: Annotated[str, Query(max_length=32)] = "",  # the filter's name in the URL
    assignee: Annotated[str, Query(max_length=64)] = "",
    overdue: Annotated[Literal["", "yes", "no"], Query()] = "",
    customer_id: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    engine = _engine(request)
    unresolved = [s.value for s in CaseStatus if s is not CaseStatus.RESOLVED]
    statuses: list[str] | str | None = unresolved if status == UNRESOLVED else (status or None)
    who = session.actor if assignee == "me" else (assignee.strip() or None)
    try:
        rows = engine.cases.list(
            status=statuses,
            type=type or None,
            assignee=who,
            overdue={"yes": True, "no": False}.get(overdue),
            customer_id=customer_id.strip() or None,
            limit=500,
        )
    except FengkongError as exc:
        raise PageError(exc.status, "Bad filter", exc.message, session) from None
    now = dt.datetime.now(dt.UTC)
    for row in rows:
        row["sla"] = sla(row, now)
    warnings = {
        "overdue": sum(1 for r in rows if r["sla"]["state"] == "overdue"),
        "due_soon": sum(1 for r in rows if r["sla"]["state"] == "due-soon"),
    }
    return page(
        request,
        "cases.html",
        session,
        rows=rows,
        counts=engine.cases.counts(),
        warnings=warnings,
        filters={"status": status, "type": type, "assignee": assignee, "overdue": overdue, "customer_id": customer_id},
        statuses=[UNRESOLVED, *[s.value for s in CaseStatus]],
        types=[t.value for t in CaseType],
    )


# ------------------------------------------------------------------------------------------ one case


def _case_page(
    request: Request,
    session: ConsoleSession,
    case_id: str,
    *,
    reveal: bool = False,
    notice: str = "",
    problem: str = "",
    status_code: int = 200,
    draft: dict[str, str] | None = None,
) -> Response:
    engine = _engine(request)
    try:
        case = engine.cases.get(case_id, reveal_pii=reveal)
    except FengkongError as exc:
        raise PageError(exc.status, "Case not found", exc.message, session) from None
    case["sla"] = sla(case)
    mine = case["assignee"] == session.actor
    proposal = case.get("proposal") or {}
    return page(
        request,
        "case.html",
        session,
        status_code,
        c=case,
        notice=notice,
        problem=problem,
        draft=draft or {},
        revealed=reveal,
        can_reveal=session.can(Permission.VIEW_PII),
        can_work=session.can(Permission.WORK_CASES),
        mine=mine,
        proposed_by_me=proposal.get("by") == session.actor,
        outcomes=OUTCOMES[CaseType(case["type"])],
    )


@router.get("/cases/{case_id}")
def case_page(
    request: Request,
    case_id: str,
    session: Annotated[ConsoleSession, Depends(need(Permission.READ_CASES))],
    reveal: bool = False,
    msg: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    if reveal:
        if not session.can(Permission.VIEW_PII):
            raise PageError(
                403,
                "Not allowed",
                f"Your role ({session.role.value}) may not view unmasked personal data; identifiers stay masked.",
                session,
            )
        _record_pii_view(_engine(request), session, case_id)
    return _case_page(request, session, case_id, reveal=reveal, notice=NOTICES.get(msg, ""))


def _record_pii_view(engine: Engine, session: ConsoleSession, subject: str) -> None:
    now = dt.datetime.now(dt.UTC)
    with engine.db.begin() as conn:
        audit.append(conn, "pii_viewed", subject, session.actor, audit.content_hash({"subject": subject}), now)


async def _act(
    request: Request, session: ConsoleSession, case_id: str, done: str, work: Any, form: FormData
) -> Response:
    """Run one case step; on success go back to the case page (a reload does not repeat the step), on refusal
    show the case again with the engine's message, what the analyst typed, and nothing changed."""
    try:
        result = await run_in_threadpool(work)
    except FengkongError as exc:
        draft = {k: str(form.get(k) or "") for k in ("note", "outcome", "limit", "apr", "reasons")}
        problem, status_code = exc.message, exc.status
        return await run_in_threadpool(
            lambda: _case_page(request, session, case_id, problem=problem, status_code=status_code, draft=draft)
        )
    if done == "resolved" and result.get("status") == CaseStatus.PENDING_SECOND_APPROVAL.value:
        done = "proposed"
    return redirect(f"/console/cases/{quote(case_id, safe='')}?msg={done}")


@router.post("/cases/{case_id}/claim")
async def claim(
    request: Request, case_id: str, session: Annotated[ConsoleSession, Depends(need(Permission.WORK_CASES))]
) -> Response:
    form = await posted_form(request, session)
    return await _act(
        request, session, case_id, "claimed", lambda: _engine(request).cases.claim(case_id, session.actor), form
    )


@router.post("/cases/{case_id}/release")
async def release(
    request: Request, case_id: str, session: Annotated[ConsoleSession, Depends(need(Permission.WORK_CASES))]
) -> Response:
    form = await posted_form(request, session)
    note = str(form.get("note") or "").strip() or None
    return await _act(
        request,
        session,
        case_id,
        "released",
        lambda: _engine(request).cases.release(case_id, session.actor, note),
        form,
    )


@router.post("/cases/{case_id}/resolve")
async def resolve(
    request: Request, case_id: str, session: Annotated[ConsoleSession, Depends(need(Permission.WORK_CASES))]
) -> Response:
    form = await posted_form(request, session)

    def work() -> dict[str, Any]:
        outcome = str(form.get("outcome") or "")
        if not outcome:
            raise FengkongError("missing_field", "choose an outcome for the case", "outcome", 422)
        reasons = [c.strip() for c in str(form.get("reasons") or "").replace(";", ",").split(",") if c.strip()]
        result: dict[str, Any] = _engine(request).cases.resolve(
            case_id,
            session.actor,
            outcome,
            str(form.get("note") or ""),
            limit=_number(form, "limit"),
            apr=_number(form, "apr", percent=True),
            reasons=reasons or None,
        )
        return result

    return await _act(request, session, case_id, "resolved", work, form)


@router.post("/cases/{case_id}/approve")
async def approve(
    request: Request, case_id: str, session: Annotated[ConsoleSession, Depends(need(Permission.WORK_CASES))]
) -> Response:
    form = await posted_form(request, session)
    agree = str(form.get("decision") or "approve") != "return"

    def work() -> dict[str, Any]:
        result: dict[str, Any] = _engine(request).cases.approve(
            case_id, session.actor, str(form.get("note") or ""), approve=agree
        )
        return result

    return await _act(request, session, case_id, "approved" if agree else "returned", work, form)


def _number(form: FormData, name: str, *, percent: bool = False) -> float | None:
    """An optional number typed in a form ('35000', '35,000', '10.8' for an APR in percent)."""
    text = str(form.get(name) or "").strip().replace(",", "").rstrip("%")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise FengkongError("invalid_field", f"{name}: must be a number (got {text[:20]!r})", name, 422) from None
    return value / 100 if percent else value


# ------------------------------------------------------------------------------------------ appeals

#: What a customer reads when a refusal concerns their own decision (shown only once ownership is proven);
#: every other refusal reads as _NOT_FOUND, which says nothing about whether someone else's decision exists.
_CUSTOMER_TEXT = {
    "decided_by_person": {
        "zh": "这一决定已由工作人员人工复核作出，不能再次申请复核。如您仍有异议，可以提出投诉。",
        "en": "This decision was already made by a person on review and cannot be appealed again. If you still "
        "disagree, you can make a complaint.",
    },
    "decision_under_review": {
        "zh": "工作人员正在审核这笔申请，审核完成后我们会告诉您结果。",
        "en": "A person is already reviewing this application; we will tell you the result when they finish.",
    },
    "appeal_already_answered": {
        "zh": "这一决定已申请过复核并已答复，不能重复申请。如您仍有异议，可以提出投诉。",
        "en": "This decision was already appealed and answered; it cannot be appealed twice. If you still "
        "disagree, you can make a complaint.",
    },
    "message": {
        "zh": "请用几句话写下您希望我们复核的原因（最多 2000 字）。",
        "en": "Please say in a few words why you want a person to review it (at most 2,000 characters).",
    },
    "missing": {"zh": "请填写客户编号和参考编号。", "en": "Enter your customer id and the reference."},
    "expired": {
        "zh": "表单已过期，没有提交任何内容，请重试。",
        "en": "The form expired or did not come from this site; nothing was sent. Please try again.",
    },
    "not_found": {
        "zh": "没有找到与该客户编号对应的这一参考编号。请核对通知中的参考编号和您的客户编号。",
        "en": "We found no decision or credit-line change with that reference for that customer id. Check the "
        "reference in your notice and your customer id.",
    },
}


def _text(key: str, lang: str) -> str:
    return _CUSTOMER_TEXT[key][lang]


def _customer_message(exc: FengkongError, lang: str) -> str:
    if exc.code in ("decided_by_person", "decision_under_review", "appeal_already_answered"):
        return _text(exc.code, lang)
    if exc.field == "message":
        return _text("message", lang)
    return _text("not_found", lang)


def _appeal_form(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    token, fresh = form_token(request)
    context.setdefault("problem", "")
    response = page(request, template, None, status_code, form_token=token, **context)
    if fresh:
        response.set_cookie(FORM_COOKIE, token, max_age=3600, **cookie_options(request))
    return response


@router.get("/appeal")
def appeal_start(request: Request, lang: Annotated[Literal["zh", "en"], Query()] = "zh") -> Response:
    """The customer's door: no console login; the reference from the notice and the customer id are the key."""
    return _appeal_form(request, "appeal.html", lang=lang, customer_id="", reference="")


async def _customer_form(request: Request) -> tuple[FormData, str, str, str]:
    form = await read_form(request)
    lang = form.get("lang")
    lang = lang if lang in ("zh", "en") else "zh"
    customer_id = str(form.get("customer_id") or "").strip()[:64]
    reference = str(form.get("reference") or "").strip()[:64]
    return form, str(lang), customer_id, reference


def _is_line_action(reference: str) -> bool:
    return reference.startswith("lact_")


@router.post("/appeal/view")
async def appeal_view(request: Request) -> Response:
    """What was decided and why, as the customer is told, and the appeal form when an appeal is possible."""
    form, lang, customer_id, reference = await _customer_form(request)
    again: dict[str, Any] = {"lang": lang, "customer_id": customer_id, "reference": reference}
    if not form_token_ok(request, form):
        return _appeal_form(request, "appeal.html", 403, problem=_text("expired", lang), **again)
    if not customer_id or not reference:
        return _appeal_form(request, "appeal.html", 422, problem=_text("missing", lang), **again)
    try:
        view = await run_in_threadpool(_view, _engine(request), reference, customer_id, lang)
    except FengkongError as exc:
        return _appeal_form(request, "appeal.html", 404, problem=_customer_message(exc, lang), **again)
    return _appeal_form(request, "appeal_view.html", v=view, message="", **again)


def _view(engine: Engine, reference: str, customer_id: str, lang: str) -> dict[str, Any]:
    """The customer's view of a decision or of a line change (``lact_``): shown only to its own customer."""
    if _is_line_action(reference):
        found: dict[str, Any] = engine.cases.line_action_view(reference, customer_id, lang)
    else:
        found = engine.cases.customer_view(reference, customer_id, lang)
    return found


@router.post("/appeal")
async def appeal_file(request: Request) -> Response:
    """File the appeal: a case for a person, answered within the appeal SLA."""
    form, lang, customer_id, reference = await _customer_form(request)
    again: dict[str, Any] = {"lang": lang, "customer_id": customer_id, "reference": reference}
    if not form_token_ok(request, form):
        return _appeal_form(request, "appeal.html", 403, problem=_text("expired", lang), **again)
    engine = _engine(request)
    message = str(form.get("message") or "")
    line_action = _is_line_action(reference)

    def file() -> dict[str, Any]:
        filed: dict[str, Any] = engine.cases.appeal(
            customer_id,
            decision_id=None if line_action else reference,
            line_action_id=reference if line_action else None,
            message=message,
            language=lang,
            actor="console:appeal",
        )
        return filed

    try:
        filed = await run_in_threadpool(file)
    except FengkongError as exc:
        problem = _customer_message(exc, lang)
        if problem == _text("not_found", lang):
            return _appeal_form(request, "appeal.html", 404, problem=problem, **again)
        view = await run_in_threadpool(_view, engine, reference, customer_id, lang)
        return _appeal_form(
            request, "appeal_view.html", exc.status, v=view, message=message[:2000], problem=problem, **again
        )
    return page(request, "appeal_done.html", None, lang=lang, a=filed)
