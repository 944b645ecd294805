"""`fengkong model train | list | show | score | report | monitor | export`.

Exit codes: 0 done; 1 bad input or a refused model (the message names the field); 3 from ``monitor`` when an
alert fired (warnings alone exit 0), so a scheduler can page on it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from fengkong.cli import AsJson, DatabaseUrl, _engine, _fail, err, out
from fengkong.errors import FengkongError
from fengkong.models.desk import check_name

model_app: typer.Typer = typer.Typer(
    help="Scoring models: train, validate, register, score, monitor.", no_args_is_help=True
)

ALERT_EXIT = 3

Name = Annotated[str, typer.Option("--name", help="the model's name in the registry")]
Version = Annotated[str | None, typer.Option("--version", help="a registered version (default: the latest)")]


def _print_json(value: Any) -> None:
    out.print_json(json.dumps(value, ensure_ascii=False, default=str))


def _split_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _monotonic(items: list[str] | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in items or []:
        feature, sep, trend = item.partition("=")
        if not sep or not feature or trend not in ("asc", "desc"):
            raise FengkongError(
                "invalid_field", f"--monotonic {item!r}: write FEATURE=asc or FEATURE=desc", "monotonic", 422
            )
        found[feature] = trend
    return found


class _Bar:
    """A rich progress bar fed by the trainer's (task, done, total) calls."""

    def __init__(self, enabled: bool) -> None:
        from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(), console=err, disable=not enabled, transient=False,
        )  # fmt: skip
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, task: str, done: int, total: int) -> None:
        if task not in self.tasks:
            self.tasks[task] = self.progress.add_task(task, total=total)
        self.progress.update(self.tasks[task], completed=done, total=total)

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()


@model_app.command("train")
def model_train(
    data: Annotated[Path, typer.Argument(help="training table: .csv or .parquet, one row per account")],
    target: Annotated[str, typer.Option("--target", help="outcome column: 1/true = bad, 0/false = good")],
    name: Name,
    kind: Annotated[str, typer.Option("--kind", help="scorecard (optbinning) or gbdt (LightGBM)")] = "scorecard",
    version: Annotated[str | None, typer.Option("--version", help="default: the next whole number")] = None,
    time_col: Annotated[
        str | None, typer.Option("--time-col", help="out-of-time split: the latest rows by this column validate")
    ] = None,
    monotonic: Annotated[
        list[str] | None,
        typer.Option("--monotonic", help="FEATURE=asc (the bad rate rises with it) or FEATURE=desc; repeatable"),
    ] = None,
    features: Annotated[str | None, typer.Option("--features", help="comma-separated: only these columns")] = None,
    exclude: Annotated[str | None, typer.Option("--exclude", help="comma-separated columns to leave out")] = None,
    bad_value: Annotated[
        str | None, typer.Option("--bad-value", help="the target's bad label when it is not 0/1 (e.g. bad)")
    ] = None,
    valid_fraction: Annotated[float, typer.Option(help="share of rows held out for validation")] = 0.3,
    calibration: Annotated[str, typer.Option(help="PD calibration: platt or isotonic")] = "platt",
    seed: Annotated[int, typer.Option(help="random seed of the split and the trees")] = 0,
    base_points: Annotated[float, typer.Option(help="score at the base odds")] = 600.0,
    base_odds: Annotated[float, typer.Option(help="good:bad odds at the base points")] = 50.0,
    pdo: Annotated[float, typer.Option(help="points to double the odds")] = 20.0,
    min_iv: Annotated[float, typer.Option(help="scorecard: keep features with at least this IV")] = 0.02,
    rounds: Annotated[int, typer.Option(help="gbdt: at most this many boosting rounds (early stopping)")] = 500,
    prebin_rows: Annotated[
        int,
        typer.Option(
            help="pre-bin on a stratified sample of this many training rows when there are more (bin statistics "
            "still use every row); 0: pre-bin on every row"
        ),
    ] = 50_000,
    prebinning: Annotated[
        str, typer.Option(help="pre-bins of numbers: auto (CART on every row, quantiles of a sample), cart, quantile")
    ] = "auto",
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            help="threads for binning and boosting (default: binning one per core; boosting the cores other "
            "processes leave free)",
        ),
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="report folder; default model-reports/NAME@VERSION")
    ] = None,
    no_report: Annotated[bool, typer.Option("--no-report", help="write no validation report")] = False,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Train a scorecard or GBDT, validate it, write its report and register it; prints validation AUC and KS."""
    try:
        engine = _engine(database_url)
        check_name(name, version)  # before the name becomes part of the report folder's path
        resolved = version or engine.models.next_version(name)
        folder = None if no_report else (report or Path("model-reports") / f"{name}@{resolved}")
        with _Bar(enabled=not as_json) as bar:
            entry = engine.models.train(
                data,
                target=target,
                name=name,
                kind=kind,
                version=resolved,
                time_col=time_col,
                monotonic=_monotonic(monotonic),
                features=_split_list(features),
                exclude=_split_list(exclude) or (),
                bad_value=bad_value,
                valid_fraction=valid_fraction,
                calibration=calibration,
                seed=seed,
                base_points=base_points,
                base_odds=base_odds,
                pdo=pdo,
                min_iv=min_iv,
                rounds=rounds,
                prebin_rows=prebin_rows or None,
                prebinning=prebinning,
                n_jobs=jobs,
                report_dir=folder,
                actor="cli",
                progress=bar,
            )
    except FengkongError as exc:
        _fail(exc, as_json)
    if as_json:
        _print_json(entry)
        return
    v = entry["metrics"]["valid"]
    out.print(
        f"[green]registered[/] {entry['label']} ({entry['kind']}, {len(entry['features'])} features)  "
        f"validation AUC {v['auc']:.4f}  KS {v['ks']:.4f}  Gini {v['gini']:.4f}  Brier {v['brier']:.4f}",
        highlight=False,
    )
    out.print(f"sha256 {entry['content_sha256']}", style="dim", highlight=False)
    for path in entry["report"]:
        out.print(f"report {path}", highlight=False)


@model_app.command("list")
def model_list(as_json: AsJson = False, database_url: DatabaseUrl = None) -> None:
    """List registered models."""
    rows = _engine(database_url).models.list()
    if as_json:
        _print_json(rows)
        return
    # NAME@VERSION (what a policy names), kind, AUC and KS are never cut short; the hash and the time give way
    # on a narrow terminal (``--json`` has every field, the creator too)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column("model", no_wrap=True, min_width=max((len(r["label"]) for r in rows), default=5))
    table.add_column("kind", no_wrap=True, min_width=9)
    table.add_column("inputs", no_wrap=True, min_width=6)
    table.add_column("AUC", no_wrap=True, min_width=6)
    table.add_column("KS", no_wrap=True, min_width=6)
    table.add_column("sha256", no_wrap=True, overflow="ellipsis")
    table.add_column("created (UTC)", no_wrap=True, overflow="ellipsis")
    for r in rows:
        v = r["validation"]
        table.add_row(
            r["label"],
            r["kind"],
            str(len(r["features"])),
            "-" if v["auc"] is None else f"{v['auc']:.4f}",
            "-" if v["ks"] is None else f"{v['ks']:.4f}",
            r["content_sha256"][:12],
            r["created_at"][:16].replace("T", " "),
        )
    out.print(table)


@model_app.command("show")
def model_show(name: Name, version: Version = None, as_json: AsJson = False, database_url: DatabaseUrl = None) -> None:
    """A registered model with its metrics (checks its artefact's hash too)."""
    try:
        engine = _engine(database_url)
        entry = engine.models.get(name, version)
        engine.models.load(name, entry["version"])
    except FengkongError as exc:
        _fail(exc, as_json)
    if as_json:
        _print_json(entry)
        return
    out.print(f"[bold]{entry['label']}[/] {entry['kind']}  sha256 {entry['content_sha256']}", highlight=False)
    for part in ("train", "valid"):
        m = entry["metrics"][part]
        out.print(
            f"  {part:5}  AUC {m['auc']:.4f}  KS {m['ks']:.4f}  Gini {m['gini']:.4f}  Brier {m['brier']:.4f}  "
            f"rows {m['rows']:,.0f}  bad rate {m['bad_rate']:.2%}",
            highlight=False,
        )
    out.print(f"  features: {', '.join(entry['features'])}", highlight=False, markup=False)


@model_app.command("score")
def model_score(
    data: Annotated[Path, typer.Argument(help=".csv or .parquet table with the model's feature columns")],
    name: Name,
    out_file: Annotated[Path, typer.Option("--out", help="where to write: .csv or .parquet")],
    version: Version = None,
    reasons: Annotated[int, typer.Option(help="top reasons per row")] = 3,
    database_url: DatabaseUrl = None,
) -> None:
    """Score a file: its columns plus score, pd, reason_1..N (characteristic) and reason_code_1..N."""
    try:
        scored = _engine(database_url).models.score(name, data, version=version, out=out_file, reasons=reasons)
    except FengkongError as exc:
        _fail(exc)
    out.print(f"scored {scored.height:,} rows into {out_file}", highlight=False)


@model_app.command("report")
def model_report(
    name: Name,
    data: Annotated[Path, typer.Option("--data", help="labelled .csv or .parquet table")],
    out_dir: Annotated[Path, typer.Option("--out", help="report folder")] = Path("model-reports"),
    version: Version = None,
    target: Annotated[str | None, typer.Option(help="outcome column (default: the training target)")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Validation report (Markdown + HTML with plots) of a registered model on a labelled table.

    ``model train`` already writes one for the training and validation split."""
    try:
        result = _engine(database_url).models.report(name, data, out_dir, version=version, target=target)
    except FengkongError as exc:
        _fail(exc)
    m = result["metrics"]
    out.print(f"{result['model']}: AUC {m['auc']:.4f}  KS {m['ks']:.4f}  Brier {m['brier']:.4f}", highlight=False)
    for path in result["report"]:
        out.print(f"report {path}", highlight=False)


@model_app.command("monitor")
def model_monitor(
    model: Annotated[str, typer.Option("--model", help="registered model name (or NAME@VERSION)")],
    data: Annotated[Path, typer.Option("--data", help="recent applications: .parquet or .csv")],
    target: Annotated[str | None, typer.Option(help="outcome column, where outcomes have matured")] = None,
    psi_warn: Annotated[float, typer.Option(help="PSI at which to warn")] = 0.1,
    psi_alert: Annotated[float, typer.Option(help="PSI at which to alert")] = 0.25,
    auc_drop_warn: Annotated[float, typer.Option(help="realised AUC this far below validation: warn")] = 0.03,
    auc_drop_alert: Annotated[float, typer.Option(help="... alert")] = 0.05,
    ks_drop_warn: Annotated[float, typer.Option(help="realised KS this far below validation: warn")] = 0.05,
    ks_drop_alert: Annotated[float, typer.Option(help="... alert")] = 0.1,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Stability (PSI) of the score and every input, realised AUC/KS; exits 3 when an alert fires."""
    from fengkong.models.monitor import Thresholds

    name, _, version = model.partition("@")
    try:
        report = _engine(database_url).models.monitor(
            name,
            data,
            version=version or None,
            target=target,
            thresholds=Thresholds(psi_warn, psi_alert, auc_drop_warn, auc_drop_alert, ks_drop_warn, ks_drop_alert),
        )
    except FengkongError as exc:
        _fail(exc, as_json)
    if as_json:
        _print_json(report)
    else:
        style = {"ok": "green", "warn": "yellow", "alert": "bold red"}
        s = report["score"]
        out.print(
            f"{report['model']} on {report['rows']:,} rows: [{style[report['status']]}]{report['status'].upper()}[/]  "
            f"score PSI {s['psi']:.4f} ({s['reading']})",
            highlight=False,
        )
        table = Table("input", "PSI", "reading", "level")
        for f in report["features"]:
            table.add_row(escape(f["feature"]), f"{f['psi']:.4f}", f["reading"], f["level"])
        out.print(table)
        realised = report["realised"]
        if realised and "auc" in realised:
            out.print(
                f"realised on {realised['rows']:,} matured outcomes: AUC {realised['auc']:.4f} "
                f"(validation {realised['validation_auc']:.4f}), KS {realised['ks']:.4f} "
                f"(validation {realised['validation_ks']:.4f})",
                highlight=False,
            )
        elif realised:
            out.print(f"realised: {realised['note']}", highlight=False)
        for a in report["alerts"]:
            out.print(f"[{style[a['level']]}]{a['level']}[/] {escape(a['message'])}", highlight=False)
    if report["status"] == "alert":
        raise typer.Exit(ALERT_EXIT)


@model_app.command("export")
def model_export(
    name: Name,
    out_dir: Annotated[Path, typer.Option("--out", help="folder to write into")],
    version: Version = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Write a model's artefact (JSON; a GBDT also as LightGBM's .txt model) after checking its hash."""
    try:
        paths = _engine(database_url).models.export(name, out_dir, version=version)
    except FengkongError as exc:
        _fail(exc)
    for path in paths:
        out.print(f"wrote {path}", highlight=False)
