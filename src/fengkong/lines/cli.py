"""`fengkong lines review | show | act`: portfolio line review and actions on single lines."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from fengkong.cli import AsJson, DatabaseUrl, _engine, _fail, err, out
from fengkong.domain import Language
from fengkong.errors import FengkongError

lines_app: typer.Typer = typer.Typer(help="Live credit lines: portfolio review and actions.", no_args_is_help=True)


def _print_json(value: Any) -> None:
    out.print_json(json.dumps(value, ensure_ascii=False, default=str))


def _parse_date(value: str | None, field: str) -> dt.date | None:
    if value is None:
        return None
    try:
        day = dt.date.fromisoformat(value)
        if not dt.date(2000, 1, 1) <= day <= dt.date(2199, 12, 31):
            raise ValueError
        return day
    except ValueError:
        raise FengkongError(
            "invalid_value", f"{value!r} is not a date (YYYY-MM-DD) from 2000 to 2199", field, 422
        ) from None


@lines_app.command("review")
def review(
    apply: Annotated[bool, typer.Option("--apply", help="write the actions and notices (default: dry run)")] = False,
    as_of: Annotated[str | None, typer.Option("--as-of", help="review date YYYY-MM-DD (default: today)")] = None,
    resume: Annotated[str | None, typer.Option("--resume", help="finish an interrupted run by its id")] = None,
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="lines per transaction when applying")] = 1000,
    report: Annotated[Path | None, typer.Option("--report", help="also write the report as Markdown here")] = None,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Review every line under the active policy's line strategy and guardrails."""
    try:
        engine = _engine(database_url)
        day = _parse_date(as_of, "as_of")
        with Progress(
            TextColumn("applying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=as_json or not apply,
        ) as progress:
            task = progress.add_task("apply", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            run = engine.lines.review(
                day, apply=apply, actor="cli", chunk_size=chunk_size, resume=resume, on_chunk=advance
            )
    except FengkongError as exc:
        _fail(exc, as_json)
        return
    if report is not None:
        report.write_text(run.report.markdown(), encoding="utf-8")
    if as_json:
        _print_json({"run_id": run.run_id, "applied": run.applied, "resumed": run.resumed, **run.report.as_dict()})
        return
    r = run.report
    table = Table(title=f"line review, policy {r.policy_version}, as of {r.as_of.isoformat()}")
    table.add_column("action")
    table.add_column("lines", justify="right")
    table.add_column("top reasons")
    for action, n in r.actions.items():
        if n:
            top = ", ".join(f"{c} {k:,}" for c, k in list(r.reasons.get(action, {}).items())[:3])
            table.add_row(action, f"{n:,}", top)
    out.print(table)
    out.print(
        f"exposure {r.limit_before:,.0f} → {r.limit_after:,.0f}; first-time restrictions {r.first_time:,}; "
        + (f"blocked by guardrails: {r.blocked}" if r.blocked else "no action held back by guardrails")
    )
    if apply:
        out.print(f"applied {run.applied:,} actions in run {run.run_id}" + (" (resumed)" if run.resumed else ""))
    else:
        out.print("dry run: nothing written (add --apply to act)")


@lines_app.command("show")
def show(
    line_id: str,
    language: Annotated[Language, typer.Option("--language")] = Language.ZH,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """A line's status, limit, available amount, reasons and history."""
    try:
        line = _engine(database_url).lines.get(line_id, language)
    except FengkongError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        _print_json(line)
        return
    out.print(
        f"{line['line_id']} [{line['status']}] limit {line['limit']:,.0f} available {line['available']:,.0f} "
        f"outstanding {line['outstanding']:,.0f}"
    )
    for h in line["history"]:
        out.print(
            f"  {h['at']} {h['action']:<18} {h['limit_after']:>10,.0f} {h['actor_kind']}:{h['actor']} {h['reasons']}"
        )


@lines_app.command("act")
def act(
    line_id: str,
    action: Annotated[str, typer.Argument(help="increase | decrease | freeze | unfreeze | close | restore")],
    note: Annotated[str, typer.Option("--note", help="why (required)")],
    new_limit: Annotated[float | None, typer.Option("--new-limit")] = None,
    reason: Annotated[list[str] | None, typer.Option("--reason", help="reason code (repeatable)")] = None,
    actor: Annotated[str, typer.Option("--actor", help="who acts")] = "cli",
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Act on one line by hand, within the policy's guardrails."""
    try:
        line = _engine(database_url).lines.act(
            line_id, action, actor=actor, reasons=reason or (), new_limit=new_limit, note=note
        )
    except FengkongError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        _print_json(line)
    else:
        out.print(f"{line['line_id']} is {line['status']}, limit {line['limit']:,.0f}")
