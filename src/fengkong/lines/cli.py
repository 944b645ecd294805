"""`fengkong lines review | show | act`: portfolio line review and actions on single lines."""

from __future__ import annotations

import contextlib
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
from fengkong.policy.errors import PolicyError

lines_app: typer.Typer = typer.Typer(help="Live credit lines: portfolio review and actions.", no_args_is_help=True)


def _print_json(value: Any) -> None:
    out.print_json(json.dumps(value, ensure_ascii=False, default=str))


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


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


def _read_table(path: Path, field: str) -> Any:
    import polars as pl

    if not path.exists():
        raise FengkongError("file_not_found", f"no such file: {path}", field, 404)
    try:
        if path.suffix.lower() == ".csv":
            return pl.read_csv(path, try_parse_dates=True)
        return pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise FengkongError("invalid_file", f"{path}: cannot read it as a table ({exc})", field, 422) from None


def _write_table(frame: Any, path: Path) -> None:
    """The per-line plan: Parquet, or CSV (reasons joined by ``;``) when the name ends in .csv."""
    import polars as pl

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        frame.with_columns(pl.col("reasons").list.join(";")).write_csv(path)
    else:
        frame.write_parquet(path)


@lines_app.command("review")
def review(
    apply: Annotated[bool, typer.Option("--apply", help="write the actions and notices (default: dry run)")] = False,
    as_of: Annotated[str | None, typer.Option("--as-of", help="review date YYYY-MM-DD (default: today)")] = None,
    resume: Annotated[str | None, typer.Option("--resume", help="finish an interrupted run by its id")] = None,
    due: Annotated[
        bool, typer.Option("--due", help="only the frozen lines whose review date has come (the daily job)")
    ] = False,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="dry-run a candidate policy file instead of the active policy")
    ] = None,
    lines_file: Annotated[
        Path | None,
        typer.Option(
            "--lines",
            help="review a table of lines (Parquet/CSV) instead of the database; a bad or bad_next_12m column "
            "adds the over-restriction report (see `fengkong lines portfolio`)",
        ),
    ] = None,
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="lines per transaction when applying")] = 1000,
    report: Annotated[Path | None, typer.Option("--report", help="also write the report as Markdown here")] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="write the per-line plan here (Parquet, or CSV by its name)")
    ] = None,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Review every line under the active policy's line strategy and guardrails (a dry run unless --apply)."""
    try:
        day = _parse_date(as_of, "as_of")
        candidate = None
        if policy is not None:
            from fengkong.policy.loader import load_policy_file

            candidate = load_policy_file(policy)
        if lines_file is not None:
            run = _review_file(lines_file, candidate, day, apply or resume is not None or due, database_url)
        else:
            engine = _engine(database_url)
            with Progress(
                TextColumn("applying"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err,
                disable=as_json or not apply or not err.is_terminal,
            ) as progress:
                task = progress.add_task("apply", total=None)

                def advance(done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

                run = engine.lines.review(
                    day,
                    apply=apply,
                    actor="cli",
                    chunk_size=chunk_size,
                    resume=resume,
                    on_chunk=advance,
                    policy=candidate,
                    due_only=due,
                )
    except (FengkongError, PolicyError) as exc:
        _fail(exc, as_json)
        return
    except KeyboardInterrupt:
        unfinished = _engine(database_url).lines.unfinished_run() if apply or resume else None
        hint = f": finish it with --resume {unfinished['run_id']}" if unfinished else ""
        err.print(f"interrupted; every chunk written so far is complete{hint}", highlight=False, markup=False)
        raise typer.Exit(130) from None
    if report is not None:
        report.write_text(run.report.markdown(), encoding="utf-8")
    if out_file is not None:
        _write_table(run.table, out_file)
    if as_json:
        _print_json(
            {
                "run_id": run.run_id,
                "applied": run.applied,
                "skipped": run.skipped,
                "resumed": run.resumed,
                **run.report.as_dict(),
            }
        )
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
        f"limit exposure {r.limit_before:,.0f} → {r.limit_after:,.0f}; available to draw "
        f"{r.available_before:,.0f} → {r.available_after:,.0f}; first-time restrictions {r.first_time:,}; "
        + (f"blocked by guardrails: {r.blocked}" if r.blocked else "no action held back by guardrails"),
        highlight=False,
    )
    if r.outcomes is not None:
        o = r.outcomes
        out.print(
            f"over-restriction: {o.restricted_good:,} of {o.restricted:,} lines restricted later performed well; "
            f"{o.restricted_bad:,} of {o.bad_total:,} lines that went bad were restricted",
            highlight=False,
        )
    if apply or resume is not None:
        out.print(
            f"applied {run.applied:,} actions in run {run.run_id}"
            + (f", {run.skipped:,} skipped (the line moved since the plan)" if run.skipped else "")
            + (" (resumed)" if run.resumed else ""),
            highlight=False,
        )
    else:
        out.print("dry run: nothing written (add --apply to act)")


def _review_file(path: Path, candidate: Any, day: dt.date | None, applying: bool, database_url: str | None) -> Any:
    """A dry review of a table of lines from a file, with over-restriction when it carries outcomes."""

    from fengkong.lines.compare import outcomes_of
    from fengkong.lines.desk import ReviewRun
    from fengkong.lines.review import summarise
    from fengkong.lines.strategy import check_line_table, line_strategy

    if applying:
        raise FengkongError(
            "invalid_value",
            "a table from a file is reviewed as a dry run only (no --apply, --resume or --due)",
            "lines",
            422,
        )
    table = _read_table(path, "lines")
    policy = candidate if candidate is not None else _engine(database_url).policy()
    strategy = line_strategy(policy)
    as_of = day or _today()
    table = check_line_table(table, strategy)
    outcomes = outcomes_of(table)  # 0, 1 or empty only, refused by column name before anything is computed
    result = strategy.review_frame(table, as_of)
    return ReviewRun(summarise(result, policy.version, as_of, outcomes), table=result)


@lines_app.command("run")
def run_show(
    run_id: Annotated[str, typer.Argument(help="a review run id (rev_...)")],
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """An applied review run: status (running or completed), how many lines it acted on, its report."""
    try:
        found = _engine(database_url).lines.get_run(run_id)
    except FengkongError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        _print_json(found)
        return
    out.print(
        f"{found['run_id']} [{found['status']}] scope {found['scope']} as of {found['as_of']} policy "
        f"{found['policy_version']}: acted on {found['lines_acted']:,} of {found['lines_total']:,} lines reviewed",
        markup=False,
        highlight=False,
    )
    if found["status"] != "completed":
        out.print(f"unfinished: finish it with `fengkong lines review --resume {found['run_id']}`", highlight=False)


@lines_app.command("scheduler")
def scheduler(
    every: Annotated[float, typer.Option("--every", help="seconds between passes", min=1)] = 3600.0,
    once: Annotated[bool, typer.Option("--once", help="one pass, then exit (for cron)")] = False,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Review the frozen lines whose review date has come and let due notices take effect, now and every --every
    seconds (`fengkong serve` runs the same in-process)."""
    import logging

    from fengkong.lines.scheduler import LineScheduler

    try:
        engine = _engine(database_url)
        runner = LineScheduler(engine, every=every, actor="scheduler")
        if once:
            tick = runner.tick()
        else:
            logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s %(message)s")
            err.print(f"line scheduler: a pass every {every:g} s (Ctrl-C to stop)", highlight=False)
            with contextlib.suppress(KeyboardInterrupt):
                runner.run_forever()
            return
    except FengkongError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        _print_json(tick.__dict__)
    else:
        out.print(
            f"{tick.settled} notice(s) took effect; {tick.due} frozen line(s) due, {tick.applied} acted on"
            + (f" in run {tick.run_id}" if tick.run_id else "")
            + (f"; waiting for unfinished run {tick.waiting_for}" if tick.waiting_for else ""),
            highlight=False,
        )
    if tick.waiting_for:
        raise typer.Exit(1)


@lines_app.command("portfolio")
def portfolio(
    out_file: Annotated[Path, typer.Option("--out", help="where to write it (Parquet, or CSV by its name)")],
    rows: Annotated[int, typer.Option("--rows", help="how many lines", min=1, max=50_000_000)] = 100_000,
    seed: Annotated[int, typer.Option("--seed", help="the same seed gives the same table", min=0)] = 20261123,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="the review date it is built for (default: today)")
    ] = None,
) -> None:
    """Write a simulated portfolio of lines with ground truth (bad_next_12m), for `lines review --lines` and
    `policy simulate --lines`: how many lines a strategy restricts that later performed well."""
    from fengkong.simulate.portfolio import portfolio_frame

    try:
        day = _parse_date(as_of, "as_of") or _today()
    except FengkongError as exc:
        _fail(exc)
        return
    frame = portfolio_frame(rows, seed=seed, as_of=day)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    if out_file.suffix.lower() == ".csv":
        frame.write_csv(out_file)
    else:
        frame.write_parquet(out_file)
    out.print(f"wrote {rows:,} lines as of {day.isoformat()} to {out_file}", highlight=False)


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
        f"outstanding {line['outstanding']:,.0f}",
        markup=False,
        highlight=False,
    )
    for h in line["history"]:
        out.print(
            f"  {h['at']} {h['action']:<18} {h['limit_after']:>10,.0f} {h['actor_kind']}:{h['actor']} {h['reasons']}",
            markup=False,
            highlight=False,
        )


@lines_app.command("act")
def act(
    line_id: str,
    action: Annotated[str, typer.Argument(help="increase | decrease | freeze | unfreeze | close | restore | reverse")],
    note: Annotated[str, typer.Option("--note", help="why (required)")],
    new_limit: Annotated[float | None, typer.Option("--new-limit")] = None,
    reverses: Annotated[
        str | None, typer.Option("--reverses", help="reverse: the id of the decrease to undo (lact_...)")
    ] = None,
    reason: Annotated[list[str] | None, typer.Option("--reason", help="reason code (repeatable)")] = None,
    actor: Annotated[str, typer.Option("--actor", help="who acts")] = "cli",
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Act on one line by hand, within the policy's guardrails (`reverse --reverses ID` undoes a decrease)."""
    try:
        line = _engine(database_url).lines.act(
            line_id, action, actor=actor, reasons=reason or (), new_limit=new_limit, note=note, reverses=reverses
        )
    except FengkongError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        _print_json(line)
    else:
        out.print(f"{line['line_id']} is {line['status']}, limit {line['limit']:,.0f}", highlight=False)
