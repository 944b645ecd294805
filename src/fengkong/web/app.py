"""The console's routes under ``/console``, mounted on the API's app by :func:`mount_console`.

Pages are server-rendered (Jinja2, autoescape on) and need no script. Each route names the permission it needs
(:func:`fengkong.web.guard.need`); each POST checks the session's CSRF token first (:func:`posted_form`) and
changes things only through the engine. None of these routes is part of the OpenAPI document.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fengkong.errors import FengkongError
from fengkong.security import Permission
from fengkong.service import Engine
from fengkong.store import audit
from fengkong.web import svg, views
from fengkong.web.guard import (
    FORM_COOKIE,
    SESSION_COOKIE,
    LoginRequired,
    PageError,
    cookie_options,
    current_session,
    form_token,
    form_token_ok,
    nav_for,
    need,
    posted_form,
    read_form,
    safe_next,
)
from fengkong.web.render import STATIC, ConsoleStatic, page, redirect
from fengkong.web.users import ConsoleSession

router = APIRouter(prefix="/console", include_in_schema=False)

Id = Annotated[str, Query(max_length=64)]


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def mount_console(app: FastAPI) -> None:
    """Add the console to the API's app: its routes, its stylesheet and the handlers that turn a missing
    session into the sign-in page and a refusal into a page (not the API's JSON)."""
    from fengkong.web import cases_pages

    app.include_router(router)
    app.include_router(cases_pages.router)
    app.mount("/console/static", ConsoleStatic(directory=STATIC), name="console-static")

    @app.exception_handler(LoginRequired)
    async def login_required(_request: Request, exc: LoginRequired) -> RedirectResponse:
        from urllib.parse import quote

        return redirect(f"/console/login?next={quote(exc.next_path, safe='/')}")

    @app.exception_handler(PageError)
    async def page_error(request: Request, exc: PageError) -> HTMLResponse:
        return page(
            request,
            "error.html",
            exc.session if exc.session is not None else current_session_or_none(request),
            exc.status,
            title=exc.title,
            message=exc.message,
        )


def current_session_or_none(request: Request) -> ConsoleSession | None:
    try:
        return current_session(request)
    except Exception:  # an error page must render even when the store is what failed
        return None


def refused(exc: FengkongError, session: ConsoleSession | None, title: str = "Refused") -> PageError:
    """An engine refusal as a page: its message already says what is wrong and what to do."""
    return PageError(exc.status, title, exc.message, session)


# ------------------------------------------------------------------------------------------ sign-in


@router.get("")
@router.get("/")
def home(request: Request) -> Response:
    session = current_session(request)
    if session is None:
        return redirect("/console/login")
    items = nav_for(session)
    return redirect(items[0].path if items else "/console/decisions")


@router.get("/login")
def login_page(request: Request, next: Annotated[str | None, Query(max_length=512)] = None) -> Response:
    if current_session(request) is not None:
        return redirect(safe_next(next))
    return _login_form(request, next_path=safe_next(next))


def _login_form(request: Request, *, next_path: str, name: str = "", problem: str = "", status: int = 200) -> Response:
    token, fresh = form_token(request)
    response = page(
        request, "login.html", None, status, form_token=token, next_path=next_path, name=name, problem=problem
    )
    if fresh:
        response.set_cookie(FORM_COOKIE, token, max_age=3600, **cookie_options(request))
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    name = str(form.get("name") or "")[:64]
    next_path = safe_next(str(form.get("next") or ""))
    if not form_token_ok(request, form):
        return _login_form(
            request,
            next_path=next_path,
            name=name,
            problem="The sign-in form expired or did not come from this console. Please try again.",
            status=403,
        )
    engine = _engine(request)
    try:
        _session, token = await run_in_threadpool(engine.console.login, name, str(form.get("password") or ""))
    except FengkongError as exc:
        return _login_form(request, next_path=next_path, name=name, problem=exc.message, status=exc.status)
    response = redirect(next_path)
    response.set_cookie(
        SESSION_COOKIE, token, max_age=int(engine.console.session_lifetime.total_seconds()), **cookie_options(request)
    )
    response.delete_cookie(FORM_COOKIE, path="/console")
    return response


@router.post("/logout")
async def logout(request: Request, session: Annotated[ConsoleSession, Depends(need())]) -> Response:
    await posted_form(request, session)
    await run_in_threadpool(_engine(request).console.logout, request.cookies.get(SESSION_COOKIE))
    response = redirect("/console/login?next=/console")
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


# ------------------------------------------------------------------------------------------ decisions


@router.get("/decisions")
def decisions_page(
    request: Request,
    session: Annotated[ConsoleSession, Depends(need(Permission.READ_DECISION))],
    outcome: Annotated[Literal["", "approve", "review", "decline"], Query()] = "",
    customer_id: Id = "",
) -> Response:
    rows = views.recent_decisions(_engine(request), outcome or None, customer_id.strip() or None)
    return page(request, "decisions.html", session, rows=rows, outcome=outcome, customer_id=customer_id)


def _reveal_allowed(engine: Engine, session: ConsoleSession, reveal: bool, subject: str) -> bool:
    """Unmasked identifiers only for a role with VIEW_PII, and every such view is written to the audit chain."""
    if not reveal:
        return False
    if not session.can(Permission.VIEW_PII):
        raise PageError(
            403,
            "Not allowed",
            f"Your role ({session.role.value}) may not view unmasked personal data; identifiers stay masked.",
            session,
        )
    now = dt.datetime.now(dt.UTC)
    with engine.db.begin() as conn:
        audit.append(conn, "pii_viewed", subject, session.actor, audit.content_hash({"subject": subject}), now)
    return True


@router.get("/decisions/{decision_id}")
def decision_page(
    request: Request,
    decision_id: str,
    session: Annotated[ConsoleSession, Depends(need(Permission.READ_DECISION))],
    reveal: bool = False,
) -> Response:
    engine = _engine(request)
    try:
        kind = engine.cases._root_kind(engine._row(decision_id))
    except FengkongError as exc:
        raise refused(exc, session, "Decision not found") from None
    revealed = _reveal_allowed(engine, session, reveal, decision_id)
    detail = engine.explain(decision_id, reveal_pii=revealed)
    cases_for = (
        [c for c in views.customer_cases(engine, detail["customer_id"]) if c["decision_id"] == decision_id]
        if session.can(Permission.READ_CASES)
        else []
    )

    def describe(name: str) -> str:
        feature = engine.features.get(name)
        return feature.description if feature is not None else ""

    return page(
        request,
        "decision.html",
        session,
        d=detail,
        revealed=revealed,
        can_reveal=session.can(Permission.VIEW_PII),
        describe=describe,
        cases_for=cases_for,
        kind=kind,
        reason_text=views.reason_text,
    )


@router.get("/decisions/{decision_id}/replay")
def replay_page(
    request: Request,
    decision_id: str,
    session: Annotated[ConsoleSession, Depends(need(Permission.READ_DECISION))],
) -> Response:
    try:
        result = views.replay(_engine(request), decision_id)
    except FengkongError as exc:
        raise refused(exc, session, "Cannot replay" if exc.code == "not_replayable" else "Decision not found") from None
    return page(request, "replay.html", session, r=result)


# ------------------------------------------------------------------------------------------ customers


@router.get("/customers")
def find_customer(
    session: Annotated[ConsoleSession, Depends(need(Permission.READ_DECISION))],
    customer_id: Id = "",
) -> Response:
    from urllib.parse import quote

    target = customer_id.strip()
    if not target:
        return redirect("/console/decisions")
    return redirect(f"/console/customers/{quote(target, safe='')}")


@router.get("/customers/{customer_id}")
def customer_page(
    request: Request,
    customer_id: str,
    session: Annotated[ConsoleSession, Depends(need(Permission.READ_DECISION))],
    reveal: bool = False,
) -> Response:
    engine = _engine(request)
    revealed = _reveal_allowed(engine, session, reveal, customer_id)
    identity = views.customer_identity(engine, customer_id, revealed)
    timeline = views.customer_timeline(engine, customer_id, session.can)
    group = views.linked_group(engine, customer_id)
    lines = engine.lines.for_customer(customer_id) if session.can(Permission.READ_LINE) else []
    loans = views.customer_loans(engine, customer_id) if session.can(Permission.READ_LOAN) else []
    if not timeline and not identity and not group.shown:
        raise PageError(404, "Customer not found", f"Nothing is recorded for customer {customer_id!r}.", session)
    picture = svg.graph_picture(group.nodes, group.edges, f"Linked group of {customer_id}")
    return page(
        request,
        "customer.html",
        session,
        customer_id=customer_id,
        identity=identity,
        revealed=revealed,
        can_reveal=session.can(Permission.VIEW_PII),
        timeline=timeline,
        group=group,
        group_svg=picture,
        lines=lines,
        loans=loans,
    )


# ------------------------------------------------------------------------------------------ the rest


@router.get("/alerts")
def alerts_page(
    request: Request,
    session: Annotated[ConsoleSession, Depends(need(Permission.READ_DECISION))],
    status: Annotated[Literal["", "open", "closed"], Query()] = "",
) -> Response:
    rows = _engine(request).list_alerts(None, status or None, 200)
    return page(request, "alerts.html", session, rows=rows, status=status)


@router.get("/portfolio")
def portfolio_page(
    request: Request,
    session: Annotated[ConsoleSession, Depends(need(Permission.READ_DECISION))],
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> Response:
    return page(request, "portfolio.html", session, p=views.portfolio(_engine(request), days))


@router.get("/policies")
def policies_page(
    request: Request, session: Annotated[ConsoleSession, Depends(need(Permission.READ_POLICY))]
) -> Response:
    return page(request, "policies.html", session, rows=_engine(request).list_policies())


@router.get("/audit")
def audit_page(
    request: Request,
    session: Annotated[ConsoleSession, Depends(need(Permission.VERIFY_AUDIT))],
    verify: bool = False,
) -> Response:
    """The chain's status. Verifying walks the whole chain (about 0.1 s per 1,000 entries), so the last result is
    kept for the process and the auditor asks for a fresh walk with the button."""
    engine = _engine(request)
    cached = getattr(request.app.state, "console_audit", None)
    if verify or cached is None:
        cached = (dt.datetime.now(dt.UTC), engine.verify_audit())
        request.app.state.console_audit = cached
    verified_at, report = cached
    return page(
        request,
        "audit.html",
        session,
        report=report,
        verified_at=verified_at,
        entries=views.audit_recent(engine),
    )
