"""The doors of policy simulation: `fengkong policy simulate` and ``POST /v1/policies/{version}/simulate``.

Both read their inputs, check them before any work starts (unknown versions, unreadable files, missing columns
are refused with the field at fault), call :func:`fengkong.policy.simulate.simulate` once, and give the same
report: JSON, Markdown, or a self-contained HTML page with charts.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from fengkong.errors import FengkongError
from fengkong.policy.compiler import CompiledPolicy
from fengkong.policy.simulate import MAX_SEGMENT_VALUES, SimulationReport, simulate

#: A real calendar date from 1970-01-01 to 2199-12-31 (leap days included), for a ``since`` in a URL.
_YEAR = r"(19[7-9][0-9]|20[0-9]{2}|21[0-9]{2})"
_LEAP = r"(19[79][26]|198[048]|20[02468][048]|20[13579][26]|21[02468][48]|21[2468]0|21[13579][26])"
_DAY = r"((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)"
DATE_PATTERN = rf"^({_YEAR}-{_DAY}|{_LEAP}-02-29)$"

#: Segment columns used when none are named and the table has them (at most MAX_SEGMENT_VALUES values each).
DEFAULT_SEGMENTS = ("channel", "product", "region", "segment", "income_band", "age_band", "application_month")


def read_table(path: Path, field: str) -> pl.LazyFrame:
    """A Parquet or CSV file as a lazy scan (only the columns a simulation needs are read)."""
    if not path.exists():
        raise FengkongError("file_not_found", f"no such file: {path}", field, 404)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pl.scan_csv(path, try_parse_dates=True, infer_schema_length=10_000)
        elif suffix in (".parquet", ".pq"):
            frame = pl.scan_parquet(path)
        else:
            raise FengkongError(
                "unsupported_file", f"{path}: give a .parquet or .csv file (got {suffix or 'no suffix'})", field, 422
            )
        frame.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FengkongError("unreadable_file", f"{path} cannot be read as {suffix[1:]}: {first}", field, 422) from None
    return frame


def default_segments(frame: pl.LazyFrame | pl.DataFrame) -> list[str]:
    """The :data:`DEFAULT_SEGMENTS` the table has with few enough distinct values to report on."""
    present = [c for c in DEFAULT_SEGMENTS if c in frame.lazy().collect_schema()]
    if not present:
        return []
    counts = frame.lazy().select(pl.col(c).n_unique() for c in present).collect().row(0)
    return [c for c, n in zip(present, counts, strict=True) if n <= MAX_SEGMENT_VALUES]


def _segments(arg: str | None, frame: pl.LazyFrame | pl.DataFrame) -> list[str]:
    if arg is None:
        return default_segments(frame)
    return [c.strip() for c in arg.split(",") if c.strip()]


def _as_of(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise FengkongError("invalid_value", f"{value!r} is not a date (YYYY-MM-DD)", "as_of", 422) from None


def write_report(report: SimulationReport, folder: Path) -> list[Path]:
    """simulation.md, simulation.html and, when kept, the swap rows as swaps.parquet."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "simulation.md", folder / "simulation.html"]
    written[0].write_text(report.markdown(), encoding="utf-8")
    written[1].write_text(report.html(), encoding="utf-8")
    if report.swaps is not None:
        written.append(folder / "swaps.parquet")
        report.swaps.write_parquet(written[-1])
    return written


# ---------------------------------------------------------------------------------------------- CLI


def cli_simulate(
    candidate: str,
    applications: Path,
    against: str | None,
    outcome: str,
    segments: str | None,
    report: Path | None,
    lines: Path | None,
    as_of: str | None,
    as_json: bool,
    database_url: str | None,
) -> None:
    """`fengkong policy simulate`: see the command's help."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from fengkong.cli import _engine, _fail, _resolve_policies, err, out
    from fengkong.policy.errors import PolicyError

    try:
        frame = read_table(applications, "applications")
        line_frame = read_table(lines, "lines") if lines is not None else None
        day = _as_of(as_of)
        if against is None:
            engine = _engine(database_url)
            try:
                against = engine.active_policy_version() or ""
            finally:
                engine.close()
        (cand, _), (curr, _) = _resolve_policies([("CANDIDATE", candidate), ("CURRENT", against)], database_url)
        columns = (TextColumn("simulate"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=err, disable=as_json or not err.is_terminal) as progress:
            task = progress.add_task("simulate", total=None)

            def on_progress(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            result = simulate(
                cand,
                curr,
                frame,
                outcome_column=outcome,
                segment_columns=_segments(segments, frame),
                on_progress=on_progress,
                lines=line_frame,
                as_of=day,
            )
    except (FengkongError, PolicyError) as exc:
        _fail(exc, as_json)
    written = write_report(result, report) if report is not None else []
    if as_json:
        out.print_json(json.dumps(result.as_dict(), ensure_ascii=False))
    else:
        out.print(result.markdown(), markup=False, highlight=False)
    if written and not as_json:
        err.print("wrote " + ", ".join(str(p) for p in written), markup=False, highlight=False)


# ---------------------------------------------------------------------------------------------- HTTP


def _frame(rows: Sequence[dict[str, Any]], field: str) -> pl.DataFrame:
    try:
        return pl.DataFrame(list(rows), infer_schema_length=None)
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        first_line = str(exc).split("\n")[0]
        raise FengkongError("invalid_field", f"{field}: not a table of values ({first_line})", field, 422) from None


def http_simulate(engine: Any, version: str, body: Any) -> dict[str, Any]:
    """``POST /v1/policies/{version}/simulate``: an unknown version in the path is 404, one in ``against`` 422."""
    candidate: CompiledPolicy = engine.policy_or_404(version)
    if body.against:
        try:
            current: CompiledPolicy = engine.policy(body.against)
        except FengkongError as exc:
            raise FengkongError(exc.code, exc.message, "against", exc.status) from None
    else:
        current = engine.policy()
    frame = _frame(body.applications, "applications")
    line_frame = _frame(body.lines, "lines") if body.lines else None
    if line_frame is not None:
        dates = [c for c in ("review_due_on", "last_increase_on") if c in line_frame.columns]
        try:  # JSON has no dates: ISO text (or null) in the date columns
            line_frame = line_frame.with_columns(pl.col(c).cast(pl.String).str.to_date() for c in dates)
        except pl.exceptions.PolarsError:
            raise FengkongError(
                "invalid_field", f"lines: {', '.join(dates)} must be dates (YYYY-MM-DD) or null", "lines", 422
            ) from None
    segments = body.segment_columns if body.segment_columns is not None else default_segments(frame)
    report = simulate(
        candidate,
        current,
        frame,
        outcome_column=body.outcome_column,
        segment_columns=segments,
        lines=line_frame,
        as_of=body.as_of,
    )
    return report.as_dict()


# ---------------------------------------------------------------------------------------------- compare


def parse_since(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        if not value[:4].isdigit() or len(value) < 10:  # a whole date at least: YYYY-MM-DD
            raise ValueError(value)
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise FengkongError(
            "invalid_value", f"{value!r} is not a date or time (YYYY-MM-DD or ISO 8601)", "since", 422
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def cli_compare(
    since: str | None, segments: str | None, report: Path | None, as_json: bool, database_url: str | None
) -> None:
    """`fengkong policy compare`: see the command's help."""
    from fengkong.cli import _engine, _fail, err, out
    from fengkong.policy.compare import live_comparison

    try:
        when = parse_since(since)
        columns = None if segments is None else [c.strip() for c in segments.split(",") if c.strip()]
        engine = _engine(database_url)
        try:
            result = live_comparison(engine, when, columns)
        finally:
            engine.close()
    except FengkongError as exc:
        _fail(exc, as_json)
    written: list[Path] = []
    if report is not None:
        report.mkdir(parents=True, exist_ok=True)
        written = [report / "comparison.md", report / "comparison.html"]
        written[0].write_text(result.markdown(), encoding="utf-8")
        written[1].write_text(result.html(), encoding="utf-8")
    if as_json:
        out.print_json(json.dumps(result.as_dict(), ensure_ascii=False))
    else:
        out.print(result.markdown(), markup=False, highlight=False)
        if written:
            err.print("wrote " + ", ".join(str(p) for p in written), markup=False, highlight=False)
