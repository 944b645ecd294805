"""The command line: `fengkong serve | decide | explain | policy | audit | apikey | db`.

The CLI talks to the database directly, so whoever can run it with the database URL holds the admin role;
give analysts and systems API keys instead.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fengkong.domain import Language, Role
from fengkong.errors import FengkongError
from fengkong.policy.errors import PolicyError
from fengkong.runtime import own_process, tune_for_service

app = typer.Typer(
    help="fengkong (风控): open, explainable credit risk control.", no_args_is_help=True, pretty_exceptions_enable=False
)
policy_app = typer.Typer(help="Check, publish and list policies.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit chain.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys for the HTTP door.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(audit_app, name="audit")
app.add_typer(apikey_app, name="apikey")
app.add_typer(db_app, name="db")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="FENGKONG_DATABASE_URL",
        help="SQLAlchemy URL; default: fengkong.db in the working directory",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]


def _engine(url: str | None, policy: Path | None = None) -> Any:
    from fengkong.service import Engine

    return Engine(url, policy=policy)


def _fail(exc: FengkongError | PolicyError, as_json: bool = False) -> None:
    if isinstance(exc, PolicyError):
        payload: dict[str, Any] = {
            "code": "invalid_policy",
            "message": str(exc),
            "field": exc.problems[0].where if exc.problems else None,
            "errors": [{"field": p.where, "message": p.render(exc.source)} for p in exc.problems],
        }
    else:
        payload = exc.as_dict()
    if as_json:
        out.print_json(json.dumps(payload, ensure_ascii=False))
    else:
        # escape: a message quotes the user's text (e.g. `x in [a]`), which rich would otherwise read as markup
        err.print(f"[bold red]error[/] {payload['code']}: {escape(payload['message'])}", highlight=False, markup=True)
        for problem in payload.get("errors") or []:
            if problem.get("message") and problem["message"] not in payload["message"]:
                err.print(f"  - {problem.get('field')}: {problem['message']}", highlight=False, markup=False)
    raise typer.Exit(2 if isinstance(exc, FengkongError) and exc.status >= 500 else 1)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    policy: Annotated[Path | None, typer.Option(help="publish and activate this policy file at start")] = None,
    database_url: DatabaseUrl = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
    line_scheduler_every: Annotated[
        float,
        typer.Option(help="seconds between passes of the line scheduler (frozen lines due, notices); 0: off"),
    ] = 3600.0,
) -> None:
    """Start the HTTP service (API under /v1, health at /healthz, metrics at /metrics)."""
    import uvicorn

    from fengkong.api import create_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        engine = _engine(database_url, policy)
    except (FengkongError, PolicyError) as exc:
        _fail(exc)
    err.print(
        f"fengkong on http://{host}:{port}  database={engine.db.url.render_as_string(hide_password=True)}  "
        f"policy={engine.active_policy_version()}",
        highlight=False,
    )
    if line_scheduler_every > 0:
        from fengkong.lines.scheduler import LineScheduler

        LineScheduler(engine, every=line_scheduler_every).start()  # frozen lines reviewed by their date
    tune_for_service()  # the service owns its process (see fengkong.runtime)
    uvicorn.run(create_app(engine), host=host, port=port, log_level=log_level.lower(), access_log=False)


@app.command()
def decide(
    file: Annotated[Path, typer.Argument(help="application JSON file, or - for standard input")],
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Decide a credit application from a JSON file (same body as POST /v1/applications)."""
    body = sys.stdin.read() if str(file) == "-" else _read(file)
    try:
        decision = _engine(database_url).decide_json(body, actor="cli")
    except FengkongError as exc:
        _fail(exc, as_json)
    response = decision.response()
    if as_json:
        out.print_json(json.dumps(response, ensure_ascii=False))
        return
    colour = {"approve": "green", "review": "yellow", "decline": "red"}[response["outcome"]]
    out.print(f"[bold {colour}]{response['outcome'].upper()}[/]  decision {response['decision_id']}")
    if response["limit"] is not None:
        out.print(f"limit {response['currency']} {response['limit']:,.0f}   APR {response['apr']:.2%}")
    for r in response["reasons"]:
        out.print(f"  {r['code']}: {r['text']}", highlight=False)
    out.print(f"policy {response['policy_version']}  model {response['model_version']}", style="dim")


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        err.print(f"[bold red]error[/] cannot read {file}: {exc.strerror}")
        raise typer.Exit(1) from None


@app.command()
def explain(
    decision_id: Annotated[str, typer.Argument(help="a decision id, e.g. dec_01J...")],
    lang: Annotated[Language, typer.Option(help="language of the customer view")] = Language.ZH,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Explain a stored decision: the analyst view and the customer view."""
    try:
        detail = _engine(database_url).explain(decision_id)
    except FengkongError as exc:
        _fail(exc, as_json)
    if as_json:
        out.print_json(json.dumps(detail, ensure_ascii=False))
        return
    analyst = detail["explanation"]["analyst"]
    out.print(f"[bold]{detail['decision_id']}[/]  {analyst['summary']}", highlight=False)
    out.print(f"reproduced under its policy version: {detail['reproduced']}")
    if analyst["rule_hits"]:
        table = Table("rule", "action", "reason", "condition", "values", title="rules fired")
        for hit in analyst["rule_hits"]:
            table.add_row(hit["id"], hit["action"], hit["reason"], hit["condition"], json.dumps(hit["values"]))
        out.print(table)
    score = analyst["score"]  # None for a drawdown: its drawdown rules alone decide it
    if score is not None:
        table = Table(
            "characteristic",
            "value",
            "bin",
            "points",
            "lost",
            "reason",
            title=f"score {score['value']:g} ({score['model_version']})",
        )
        for line in score["characteristics"]:
            table.add_row(
                line["name"],
                str(line["value"]),
                line["bin"],
                f"{line['points']:g}",
                f"{line['points_lost']:g}",
                line["reason"],
            )
        out.print(table)
    customer = detail["explanation"]["customer"][lang.value]
    out.print(f"\n[bold]customer ({lang.value})[/]: {customer['headline']}", highlight=False)
    for r in customer["reasons"]:
        out.print(f"  - {r['text']} {r['advice']}", highlight=False)
    out.print(f"  {customer['appeal']}", highlight=False)


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(help="JSON Lines file of events (one event per line), or - for stdin")],
    batch: Annotated[int, typer.Option(help="events per transaction", min=1, max=10_000)] = 2000,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Ingest events (same as POST /v1/events): stored once each, counted in the online features.

    A line that is not valid JSON or not a valid event is reported with its line number and skipped; the
    other lines are kept. Exits 1 if any line was refused.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    engine = _engine(database_url)
    tune_for_service()  # this command owns its process (see fengkong.runtime)
    text = sys.stdin.read() if str(file) == "-" else _read(file)
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0}
    errors: list[dict[str, Any]] = []
    columns = (TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, disable=as_json or not err.is_terminal) as progress:
        task = progress.add_task("ingest", total=len(lines))
        for start in range(0, len(lines), batch):
            chunk = lines[start : start + batch]
            items: list[Any] = []
            numbers: list[int] = []
            for number, line in chunk:
                try:
                    items.append(json.loads(line))
                    numbers.append(number)
                except json.JSONDecodeError as exc:
                    totals["rejected"] += 1
                    errors.append(
                        {
                            "line": number,
                            "code": "malformed_json",
                            "field": None,
                            "message": f"not valid JSON: {exc.msg}",
                        }
                    )
            result = engine.ingest(items, actor="cli")
            totals["accepted"] += len(result.accepted)
            totals["duplicates"] += len(result.duplicates)
            totals["rejected"] += len(result.rejected)
            for r in result.rejected:
                errors.append(
                    {
                        "line": numbers[r.index],
                        "event_id": r.event_id,
                        "code": r.code,
                        "field": r.field,
                        "message": r.message,
                    }
                )
            progress.advance(task, len(chunk))
    if as_json:
        out.print_json(json.dumps({**totals, "errors": errors}, ensure_ascii=False))
    else:
        out.print(
            f"accepted {totals['accepted']}, duplicates {totals['duplicates']} (not counted twice), "
            f"rejected {totals['rejected']}"
        )
        for e in errors[:50]:
            err.print(
                f"  line {e['line']}: {e['code']} {e.get('field') or ''}: {e['message']}", highlight=False, markup=False
            )
    if totals["rejected"]:
        raise typer.Exit(1)


@app.command()
def alerts(
    customer: Annotated[str | None, typer.Option(help="only this customer")] = None,
    limit: Annotated[int, typer.Option(help="at most this many, newest first")] = 50,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Alerts raised by the active policy's event triggers."""
    rows = _engine(database_url).list_alerts(customer, None, limit)
    if as_json:
        out.print_json(json.dumps(rows, ensure_ascii=False, default=str))
        return
    table = Table("created", "customer", "trigger", "action", "reason", "event")
    for r in rows:
        table.add_row(r["created_at"], r["customer_id"], r["trigger_id"], r["action"], r["reason"], r["event_id"])
    out.print(table)


from fengkong.simulate.cli import simulate  # noqa: E402 - registered beside the other commands

app.command()(simulate)

graph_app = typer.Typer(help="The customer link graph.", no_args_is_help=True)
app.add_typer(graph_app, name="graph")


@graph_app.command("communities")
def graph_communities(
    min_size: Annotated[int, typer.Option(help="smallest community to record", min=2)] = 3,
    seed: Annotated[int, typer.Option(help="seed of the Louvain method (same graph + seed: same groups)")] = 0,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """The periodic batch job: find communities (Louvain) in the link graph and store their group ids."""
    summary = _engine(database_url).find_communities(min_size=min_size, seed=seed, actor="cli")
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        out.print(
            f"{summary['groups']} communities of {min_size}+ customers ({summary['customers']} customers, "
            f"largest {summary['largest']}) in {summary['seconds']} s"
        )


lists_app = typer.Typer(help="Internal blacklist and watchlist; victim protection.", no_args_is_help=True)
app.add_typer(lists_app, name="lists")


@lists_app.command("add")
def lists_add(
    list_name: Annotated[str, typer.Option("--list", help="blacklist or watchlist")],
    kind: Annotated[str, typer.Option(help="customer, device, phone, id_number, bank_card, ip or payee")],
    value: Annotated[str, typer.Option(help="the raw identifier (hashed at once) or the customer id")],
    reason: Annotated[str, typer.Option(help="why, e.g. confirmed_fraud")],
    source: Annotated[str, typer.Option(help="who says so")] = "cli",
    database_url: DatabaseUrl = None,
) -> None:
    """Put an identifier or a customer on a list (refused for protected victims)."""
    try:
        entry = _engine(database_url).add_to_list(list_name, kind, value, reason, source, actor="cli")
    except FengkongError as exc:
        _fail(exc)
    out.print(f"listed {entry}")


@lists_app.command("protect")
def lists_protect(
    customer_id: Annotated[str, typer.Argument(help="the customer to protect")],
    reason: Annotated[str, typer.Option(help="scam_victim, identity_theft or other")] = "scam_victim",
    database_url: DatabaseUrl = None,
) -> None:
    """Record a customer as a victim: protected, reviewed by a person, never listed as a fraudster."""
    _engine(database_url).protect_customer(customer_id, reason, actor="cli")
    out.print(f"protected {customer_id}")


@policy_app.command("check")
def policy_check(
    file: Annotated[Path, typer.Argument(help="policy YAML file")],
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Validate a policy file: syntax, feature names, types, reason codes, tables and scorecard (or registered
    model: the database is read only when the policy names a model no file provides)."""
    from fengkong.models.desk import registry_resolver
    from fengkong.policy.loader import load_policy_file

    try:
        compiled = load_policy_file(file, models=registry_resolver(database_url))
    except PolicyError as exc:
        _fail(exc, as_json)
    summary = {
        "ok": True,
        "policy": compiled.name,
        "version": compiled.version,
        "rules": len(compiled.spec.rules),
        "model_version": compiled.model_version,
        "features": compiled.inputs,
        "content_hash": compiled.content_hash,
    }
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        out.print(
            f"[green]OK[/] {file}: policy {compiled.name} {compiled.version}, {len(compiled.spec.rules)} rules, "
            f"scorecard {compiled.model_version}",
            highlight=False,
        )


@policy_app.command("publish")
def policy_publish(
    file: Annotated[Path, typer.Argument(help="policy YAML file")],
    activate: Annotated[bool, typer.Option("--activate", help="make it the policy new decisions use")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Store a policy version (immutable once published), optionally activating it."""
    from fengkong.policy.loader import load_policy_file

    try:
        engine = _engine(database_url)
        compiled = load_policy_file(file, models=engine.models.resolve)  # may name a registered model
        version = engine.publish_policy(compiled, actor="cli", activate=activate)
    except (FengkongError, PolicyError) as exc:
        _fail(exc)
    out.print(f"published {version}{' (active)' if activate else ''}")


@policy_app.command("list")
def policy_list(as_json: AsJson = False, database_url: DatabaseUrl = None) -> None:
    """List published policy versions."""
    rows = _engine(database_url).list_policies()
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("version", "name", "role", "model", "created")
    for r in rows:
        role = (r["role"] or "") + (f" {r['share']:.0%}" if r["share"] else "")
        table.add_row(r["version"], r["name"], role, r["model_version"], r["created_at"])
    out.print(table)


@policy_app.command("diff")
def policy_diff(
    a: Annotated[str, typer.Argument(metavar="A", help="the old policy: a YAML file or a published version")],
    b: Annotated[str, typer.Argument(metavar="B", help="the new policy: a YAML file or a published version")],
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Show what changed from policy A to policy B: rules (added, removed, changed, moved), triggers, score
    cut-offs, limit table cells and APRs by band.

    A and B are each a policy file or, when no such file exists, a version published in the database.
    """
    from fengkong.policy.diff import diff_policies

    try:
        sides = _resolve_policies([("A", a), ("B", b)], database_url)
    except (FengkongError, PolicyError) as exc:
        _fail(exc, as_json)
    (old, old_info), (new, new_info) = sides
    diff = diff_policies(old.spec, new.spec, scorecard_hashes=(old.scorecard.content_hash, new.scorecard.content_hash))
    if as_json:
        result = diff.as_dict()
        result["a"] |= old_info | {"content_hash": old.content_hash}
        result["b"] |= new_info | {"content_hash": new.content_hash}
        out.print_json(json.dumps(result, ensure_ascii=False))
        return
    for label, compiled, info in (("A", old, old_info), ("B", new, new_info)):
        where = f"file {info['ref']}" if info["source"] == "file" else "published"
        where += ", active" if info.get("active") else ""
        heading = f"{label}  {compiled.name} {compiled.version}  ({where})"
        out.print(heading, style="bold", markup=False, highlight=False)
    styles = {"section": "bold underline", "+": "green", "-": "red", "~": "yellow", "detail": "dim", "note": "bold"}
    for kind, line in diff.lines():
        if kind in ("section", "note"):
            text = f"\n{line}"
        elif kind == "detail":
            text = f"      {line}"
        else:
            text = f"  {kind} {line}"
        out.print(text, style=styles[kind], markup=False, highlight=False)
    out.print(f"\n{diff.count} difference{'s' if diff.count != 1 else ''}", style="dim", highlight=False)


def _resolve_policies(refs: list[tuple[str, str]], database_url: str | None) -> list[tuple[Any, dict[str, Any]]]:
    """Each reference is a policy file or, when no such file exists, a version published in the database."""
    from sqlalchemy.engine import make_url

    from fengkong.policy.loader import load_policy_file
    from fengkong.store.db import database_url as resolve_url

    engine: Any = None
    sides: list[tuple[Any, dict[str, Any]]] = []
    try:
        for label, ref in refs:
            if Path(ref).exists():
                sides.append((load_policy_file(Path(ref)), {"ref": ref, "source": "file"}))
                continue
            if engine is None:
                url = make_url(resolve_url(database_url))
                missing_db = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
                if not (missing_db and not Path(str(url.database)).exists()):  # never create a database to look
                    engine = _engine(database_url)
            published = [] if engine is None else [r["version"] for r in engine.list_policies()]
            if ref not in published:
                known = f"published versions: {', '.join(published[-10:])}" if published else "none is published"
                raise FengkongError(
                    "unknown_policy",
                    f"{label}: {ref!r} is neither a policy file nor a published policy version ({known})",
                    label,
                    404,
                )
            active = engine.active_policy_version() == ref
            sides.append((engine.policy(ref), {"ref": ref, "source": "published", "active": active}))
    finally:
        if engine is not None:
            engine.close()
    return sides


@policy_app.command("simulate")
def policy_simulate(
    candidate: Annotated[str, typer.Argument(help="the candidate policy: a YAML file or a published version")],
    applications: Annotated[
        Path,
        typer.Option(
            help="historical applications: Parquet or CSV of feature columns, optionally a realised outcome column"
        ),
    ],
    against: Annotated[str | None, typer.Option(help="the policy to compare with (default: the active one)")] = None,
    outcome: Annotated[str, typer.Option(help="realised outcome column: 1 bad, 0 good, empty not matured")] = "bad",
    segments: Annotated[
        str | None,
        typer.Option(
            help="comma-separated segment columns for per-segment figures (default: those of channel, product, "
            "region, segment, income_band, age_band, application_month the table has; '' for none)"
        ),
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="write simulation.md, simulation.html and swaps.parquet to this folder")
    ] = None,
    lines: Annotated[
        Path | None,
        typer.Option(help="a table of live lines (Parquet or CSV): also re-run line review under both policies"),
    ] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="line review date YYYY-MM-DD (default today)")] = None,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Re-decide historical applications (and re-run line review) under the candidate and the current policy,
    side by side: approval rate, expected and realised bad rate, expected loss, exposure, swap-in and swap-out,
    decisions and line actions by reason, segments."""
    from fengkong.policy.doors import cli_simulate

    cli_simulate(candidate, applications, against, outcome, segments, report, lines, as_of, as_json, database_url)


@policy_app.command("activate")
def policy_activate(
    version: Annotated[str, typer.Argument(help="a published policy version")],
    database_url: DatabaseUrl = None,
) -> None:
    """Promote a published version to champion, or roll back to an earlier one (audited)."""
    try:
        _engine(database_url).activate_policy(version, actor="cli")
    except FengkongError as exc:
        _fail(exc)
    out.print(f"{version} is now the active policy")


@policy_app.command("role")
def policy_role(
    version: Annotated[str, typer.Argument(help="a published policy version")],
    challenger: Annotated[float | None, typer.Option(help="make it the challenger for this share of customers")] = None,
    shadow: Annotated[
        bool, typer.Option("--shadow", help="make it the shadow: decided and stored, never acted on")
    ] = False,
    clear: Annotated[bool, typer.Option("--clear", help="take its role away")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Give a published version a role beside the champion: challenger (a stable share of customers) or shadow."""
    chosen = [name for name, on in (("challenger", challenger is not None), ("shadow", shadow), ("clear", clear)) if on]
    if len(chosen) != 1:
        err.print("[bold red]error[/] give exactly one of --challenger SHARE, --shadow or --clear")
        raise typer.Exit(1)
    role = None if clear else chosen[0]
    try:
        _engine(database_url).set_policy_role(version, role, challenger, actor="cli")
    except FengkongError as exc:
        _fail(exc)
    out.print(f"{version}: {role or 'no role'}" + (f" ({challenger:.0%} of customers)" if role == "challenger" else ""))


@policy_app.command("compare")
def policy_compare(
    since: Annotated[
        str | None, typer.Option(help="only decisions from this date or time on (YYYY-MM-DD or ISO 8601)")
    ] = None,
    segments: Annotated[
        str | None,
        typer.Option(help="comma-separated request fields or features to break down by (default: product, employment)"),
    ] = None,
    report: Annotated[Path | None, typer.Option(help="write comparison.md and comparison.html to this folder")] = None,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Champion, challenger and shadow side by side, from the decisions they made live: the simulation's measures
    (approval, expected and realised bad rate, expected loss, exposure, reasons, line actions, segments, and the
    shadow's swap-in and swap-out)."""
    from fengkong.policy.doors import cli_compare

    cli_compare(since, segments, report, as_json, database_url)


@audit_app.command("verify")
def audit_verify(as_json: AsJson = False, database_url: DatabaseUrl = None) -> None:
    """Check the audit chain; exits 1 and names the first bad entry if anything was edited or removed."""
    report = _engine(database_url).verify_audit()
    if as_json:
        out.print_json(json.dumps(report.as_dict()))
    elif report.ok:
        out.print(f"[green]OK[/] audit chain intact: {report.entries} entries, head {report.head_hash}")
    else:
        first = report.first_bad_seq
        where = f"first bad entry: {first}" if first is not None else "rows were changed outside the audit chain"
        err.print(f"[bold red]TAMPERED[/] {where}")
        for f in report.findings:
            err.print(f"  seq {f.seq}: {f.problem}" + (f" ({f.subject_id})" if f.subject_id else ""), highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@apikey_app.command("create")
def apikey_create(
    role: Annotated[Role, typer.Option(help="system, analyst, supervisor, auditor or admin")],
    name: Annotated[str, typer.Option(help="who or what will use it")] = "",
    database_url: DatabaseUrl = None,
) -> None:
    """Create an API key. The key is printed once, as the last line; only its hash is stored."""
    key = _engine(database_url).create_api_key(role, name=name, actor="cli")
    err.print(f"created a {role.value} key; store it now, it cannot be shown again:")
    print(key)


@apikey_app.command("revoke")
def apikey_revoke(
    key_id: Annotated[str, typer.Argument(help="the 12-character id in the key: fk_<id>_...")],
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke an API key (takes effect within 10 seconds on running servers)."""
    try:
        _engine(database_url).revoke_api_key(key_id)
    except FengkongError as exc:
        _fail(exc)
    out.print(f"revoked {key_id}")


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrl = None) -> None:
    """Apply database migrations."""
    from fengkong.store.db import create_db_engine, current_revision, migrate
    from fengkong.store.db import database_url as resolve

    engine = create_db_engine(resolve(database_url))
    migrate(engine)
    out.print(f"schema at revision {current_revision(engine)}")


# Commands that live beside their subsystem, registered last because they use the helpers above.
# --- lines (issue 5)
from fengkong.lines.cli import lines_app  # noqa: E402

app.add_typer(lines_app, name="lines")
# --- models (issue 4)
from fengkong.models.cli import model_app  # noqa: E402

app.add_typer(model_app, name="model")
# --- loans (issue 6)
from fengkong.loans.cli import collections_app, loan_app  # noqa: E402

app.add_typer(loan_app, name="loan")
app.add_typer(collections_app, name="collections")
# --- cases (issue 7)
from fengkong.cases.cli import appeal_app, cases_app  # noqa: E402

app.add_typer(cases_app, name="cases")
app.add_typer(appeal_app, name="appeal")
# --- console users (issue 7)
from fengkong.web.cli import user_app  # noqa: E402

app.add_typer(user_app, name="user")


def main() -> None:
    own_process()
    app()
