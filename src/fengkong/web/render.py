"""Rendering console pages: one Jinja2 environment with autoescape on, and the security headers every page has."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from fengkong.web.users import ConsoleSession

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

# No script runs on a console page (none is needed), nothing is framed, forms post only back to the console.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'none'; object-src 'none'; img-src 'self' data:; style-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages hold personal data: never kept in a shared or back-button cache
}

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every {{ value }} is HTML-escaped; only server-built SVG is marked safe
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(value: Any) -> str:
    """A moment as 'YYYY-MM-DD HH:MM UTC' (SQLite gives naive datetimes in UTC, PostgreSQL aware ones)."""
    if value is None:
        return ""
    moment: dt.datetime
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    else:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _money(value: Any) -> str:
    if value is None:
        return "—"
    return f"{float(value):,.0f}"


def _pct(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{float(value):.{digits}%}"


def _span(seconds: float) -> str:
    """A duration in words: '45 min', '3 h 10 min', '2 d 4 h'."""
    seconds = abs(seconds)
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _show(value: Any) -> str:
    """Evidence and results for people: 'limit: 25,000; reasons: A, B' rather than a Python repr."""
    if value is None:
        return "—"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_show(v)}" for k, v in value.items()) or "—"
    if isinstance(value, list | tuple):
        return ", ".join(_show(v) for v in value) or "—"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"
    return str(value)


_env.filters.update(when=_when, money=_money, pct=_pct, span=_span, show=_show)


def render_text(template: str, **context: Any) -> str:
    return _env.get_template(template).render(**context)


def page(
    request: Request,
    template: str,
    session: ConsoleSession | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A console page with the layout's navigation for what the user may see, and the security headers."""
    from fengkong.web.guard import nav_for

    context.setdefault("notice", "")
    context.setdefault("problem", "")
    body = render_text(
        template,
        request=request,
        session=session,
        nav=nav_for(session),
        path=request.url.path,
        **context,
    )
    return HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)


def redirect(url: str, *, headers: dict[str, str] | None = None) -> RedirectResponse:
    """303 See Other: after a POST the browser GETs the result page (a reload does not post again)."""
    response = RedirectResponse(url, status_code=303)
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


class ConsoleStatic(StaticFiles):
    """The console's CSS, with nosniff so a browser never reads it as anything else."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                message["headers"] = headers
            await send(message)

        await super().__call__(scope, receive, send_with_headers)
