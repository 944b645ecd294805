"""Who may open a console page: the session cookie, the permission each page needs, and CSRF on every form.

Every page route depends on :func:`need` with the permission it needs (the same roles and permissions as the
API, from ``fengkong.security``); a missing or expired session goes to the sign-in page, a missing permission
gets a 403 page. Every POST goes through :func:`posted_form`, which refuses a form without the session's CSRF
token before anything is read or changed.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.datastructures import FormData

from fengkong.security import Permission
from fengkong.web.users import ConsoleSession

SESSION_COOKIE = "fk_console_session"
FORM_COOKIE = "fk_console_form"  # double-submit token for the forms shown before sign-in (login, appeal)
COOKIE_PATH = "/console"
MAX_FORM_BYTES = 64 * 1024


class LoginRequired(Exception):  # a signal to redirect, not an error
    """No live session: answered with a redirect to the sign-in page that comes back to ``next_path``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageError(Exception):
    """A refusal shown as a page: status, a title and a message that says what to do."""

    def __init__(self, status: int, title: str, message: str, session: ConsoleSession | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.session = session


CSRF_REFUSED = (
    "This form did not carry a valid security token (it may come from an old page, another tab after you "
    "signed out, or another site). Nothing was changed. Reload the page and try again."
)


def current_session(request: Request) -> ConsoleSession | None:
    cached = getattr(request.state, "console_session", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    session: ConsoleSession | None = request.app.state.engine.console.session(request.cookies.get(SESSION_COOKIE))
    request.state.console_session = session
    return session


def need(permission: Permission | None = None) -> Callable[[Request], ConsoleSession]:
    """A dependency: the signed-in user, who must hold ``permission`` (None: any signed-in user)."""

    def dependency(request: Request) -> ConsoleSession:
        session = current_session(request)
        if session is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequired(target if request.method == "GET" else "/console")
        if permission is not None and not session.can(permission):
            raise PageError(
                403,
                "Not allowed",
                f"Your role ({session.role.value}) may not {permission.value.replace('_', ' ')}. "
                "Ask an administrator if you need this.",
                session,
            )
        return session

    return dependency


async def read_form(request: Request) -> FormData:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise PageError(413, "Form too large", f"A console form may carry at most {MAX_FORM_BYTES // 1024} KiB.")
    return await request.form(max_files=0, max_fields=50)


async def posted_form(request: Request, session: ConsoleSession) -> FormData:
    """The posted form, after checking its CSRF token against the session's."""
    form = await read_form(request)
    sent = form.get("csrf")
    if not isinstance(sent, str) or not session.csrf_ok(sent):
        raise PageError(403, "Form refused", CSRF_REFUSED, session)
    return form


def form_token(request: Request) -> tuple[str, bool]:
    """The pre-sign-in form token: the cookie's value if it has one, else a new one (True: set the cookie)."""
    existing = request.cookies.get(FORM_COOKIE)
    if existing and 20 <= len(existing) <= 64:
        return existing, False
    return secrets.token_urlsafe(24), True


def form_token_ok(request: Request, form: FormData) -> bool:
    cookie = request.cookies.get(FORM_COOKIE)
    sent = form.get("csrf")
    return bool(cookie) and isinstance(sent, str) and hmac.compare_digest(sent, str(cookie))


def cookie_options(request: Request) -> dict[str, Any]:
    """HttpOnly, SameSite=Strict, scoped to /console; Secure whenever the console is reached over HTTPS (run
    uvicorn with --proxy-headers behind a TLS proxy so the scheme is seen)."""
    return {
        "httponly": True,
        "samesite": "strict",
        "secure": request.url.scheme == "https",
        "path": COOKIE_PATH,
    }


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    path: str
    permission: Permission


NAV: tuple[NavItem, ...] = (
    NavItem("Cases", "/console/cases", Permission.READ_CASES),
    NavItem("Decisions", "/console/decisions", Permission.READ_DECISION),
    NavItem("Alerts", "/console/alerts", Permission.READ_DECISION),
    NavItem("Portfolio", "/console/portfolio", Permission.READ_DECISION),
    NavItem("Policies", "/console/policies", Permission.READ_POLICY),
    NavItem("Audit", "/console/audit", Permission.VERIFY_AUDIT),
)


def nav_for(session: ConsoleSession | None) -> list[NavItem]:
    if session is None:
        return []
    return [item for item in NAV if session.can(item.permission)]


def safe_next(target: str | None) -> str:
    """Where to go after signing in: only a path inside the console (never another site: ``//evil``, ``\\evil``)."""
    if (
        target
        and target.startswith("/console")
        and not target.startswith("//")
        and "\\" not in target
        and "\n" not in target
        and "\r" not in target
        and not target.startswith("/console/login")
    ):
        return target
    return "/console"
