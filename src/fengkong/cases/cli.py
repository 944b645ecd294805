"""`fengkong cases list|show|claim|release|resolve|approve|open|sweep` and `fengkong appeal file|status|view`.

The CLI works on the database directly (whoever runs it holds the admin role), so the analyst is named with
``--analyst``; steps are recorded as ``cli:<name>``, and four eyes still needs two different names.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from fengkong.cli import AsJson, DatabaseUrl, _engine, _fail, out
from fengkong.errors import FengkongError

cases_app: typer.Typer = typer.Typer(
    help="The case queue: reviews, held drawdowns, alerts, appeals, complaints.", no_args_is_help=True
)
appeal_app: typer.Typer = typer.Typer(help="Customers' appeals and their view of a decision.", no_args_is_help=True)

Analyst = Annotated[str, typer.Option("--analyst", help="who works the case (recorded as cli:NAME)")]
Note = Annotated[str, typer.Option("--note", help="required: what you checked and why you decided so")]


def _who(name: str) -> str:
    return name if ":" in name else f"cli:{name}"


def _print_json(value: Any) -> None:
    out.print_json(json.dumps(value, ensure_ascii=False, default=str))


def _print_case(case: dict[str, Any]) -> None:
    who = f" by {case['assignee']}" if case.get("assignee") else ""
    late = " [bold red]OVERDUE[/]" if case.get("overdue") else ""
    out.print(
        f"[bold]{case['case_id']}[/] {case['type']} {case['status']}{escape(who)} priority {case['priority']} "
        f"due {case['due_at']}{late}",
        highlight=False,
    )
    if case.get("outcome"):
        out.print(f"  outcome: {case['outcome']}  result: {json.dumps(case.get('result'), ensure_ascii=False)}")
    if case.get("proposal"):
        p = case["proposal"]
        out.print(f"  waiting for a second analyst: {p['outcome']} by {p['by']} ({p['why']})", highlight=False)
    for f in case.get("follow_ups") or []:
        out.print(f"  [yellow]follow-up[/] {f['effect']}: {escape(str(f.get('message')))}", highlight=False)


@cases_app.command("list")
def cases_list(
    status: Annotated[list[str] | None, typer.Option(help="open, claimed, pending_second_approval, resolved")] = None,
    type_: Annotated[list[str] | None, typer.Option("--type", help="review, fraud_alert, appeal, ...")] = None,
    assignee: Annotated[str | None, typer.Option(help="only cases claimed by this analyst")] = None,
    overdue: Annotated[bool | None, typer.Option("--overdue/--not-overdue", help="past due and unresolved")] = None,
    customer: Annotated[str | None, typer.Option(help="only this customer's cases")] = None,
    limit: Annotated[int, typer.Option(help="at most this many", min=1, max=1000)] = 100,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """The queue, most urgent first (priority, then due time)."""
    try:
        rows = _engine(database_url).cases.list(
            status=status or None,
            type=type_ or None,
            assignee=_who(assignee) if assignee else None,
            overdue=overdue,
            customer_id=customer,
            limit=limit,
        )
    except FengkongError as exc:
        _fail(exc, as_json)
    if as_json:
        _print_json(rows)
        return
    table = Table("case", "type", "status", "prio", "customer", "assignee", "due (UTC)", "late", box=box.SIMPLE_HEAD)
    table.columns[0].no_wrap = True  # the id is what one copies into the next command: never cut it short
    table.columns[0].min_width = 30
    for r in rows:
        table.add_row(
            r["case_id"],
            r["type"],
            r["status"],
            str(r["priority"]),
            r["customer_id"],
            r["assignee"] or "",
            r["due_at"][:16].replace("T", " "),
            "yes" if r["overdue"] else "",
        )
    out.print(table)


@cases_app.command("show")
def cases_show(
    case_id: Annotated[str, typer.Argument(help="a case id, e.g. cas_01J...")],
    reveal_pii: Annotated[bool, typer.Option(help="show identifiers unmasked")] = False,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """A case with everything needed to decide it: steps, decision, replay, alert, customer history."""
    try:
        case = _engine(database_url).cases.get(case_id, reveal_pii=reveal_pii)
    except FengkongError as exc:
        _fail(exc, as_json)
    if as_json:
        _print_json(case)
        return
    _print_case(case)
    if case.get("message"):
        out.print(f"  customer says: {escape(case['message'])}", highlight=False)
    decision = case.get("decision")
    if decision:
        out.print(f"  decision: {escape(decision['explanation']['analyst']['summary'])}", highlight=False)
    replay = case.get("replay")
    if replay:
        out.print(
            f"  replay under {replay['policy_version']}: reproduced={replay['reproduced']} ({escape(replay['why'])})",
            highlight=False,
        )
    if case.get("allowed_outcomes"):
        out.print("  outcomes: " + ", ".join(case["allowed_outcomes"]), highlight=False)
    table = Table("seq", "at", "actor", "action", "outcome", "note", title="steps")
    for s in case["steps"]:
        table.add_row(str(s["seq"]), s["at"], s["actor"], s["action"], s["outcome"] or "", s["note"] or "")
    out.print(table)
    others = case["customer"]["decisions"]
    if others:
        out.print(f"  customer's decisions: {', '.join(d['decision_id'] + ' ' + d['outcome'] for d in others)}")


@cases_app.command("claim")
def cases_claim(
    case_id: Annotated[str, typer.Argument()],
    analyst: Analyst,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Take a case from the queue."""
    try:
        case = _engine(database_url).cases.claim(case_id, _who(analyst))
    except FengkongError as exc:
        _fail(exc, as_json)
    _print_json(case) if as_json else _print_case(case)


@cases_app.command("release")
def cases_release(
    case_id: Annotated[str, typer.Argument()],
    analyst: Analyst,
    note: Annotated[str | None, typer.Option(help="why it goes back")] = None,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Put a claimed case back in the queue."""
    try:
        case = _engine(database_url).cases.release(case_id, _who(analyst), note)
    except FengkongError as exc:
        _fail(exc, as_json)
    _print_json(case) if as_json else _print_case(case)


@cases_app.command("resolve")
def cases_resolve(
    case_id: Annotated[str, typer.Argument()],
    analyst: Analyst,
    outcome: Annotated[str, typer.Option(help="an outcome of the case's type (cases show lists them)")],
    note: Note,
    limit: Annotated[float | None, typer.Option(help="approvals: the limit to grant")] = None,
    apr: Annotated[float | None, typer.Option(help="approvals: the APR, e.g. 0.12")] = None,
    reason: Annotated[list[str] | None, typer.Option(help="declines: a reason code (repeat for more)")] = None,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Resolve a claimed case; an override of a decline or a limit above the four-eyes limit waits for approval."""
    try:
        case = _engine(database_url).cases.resolve(
            case_id, _who(analyst), outcome, note, limit=limit, apr=apr, reasons=reason or None
        )
    except FengkongError as exc:
        _fail(exc, as_json)
    _print_json(case) if as_json else _print_case(case)


@cases_app.command("approve")
def cases_approve(
    case_id: Annotated[str, typer.Argument()],
    analyst: Analyst,
    note: Note,
    reject: Annotated[bool, typer.Option("--reject", help="send the resolution back instead")] = False,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """The second analyst (four eyes): approve a pending resolution, or send it back with --reject."""
    try:
        case = _engine(database_url).cases.approve(case_id, _who(analyst), note, approve=not reject)
    except FengkongError as exc:
        _fail(exc, as_json)
    _print_json(case) if as_json else _print_case(case)


@cases_app.command("open")
def cases_open(
    type_: Annotated[str, typer.Argument(metavar="TYPE", help="review, held_drawdown, fraud_alert, ...")],
    customer: Annotated[str, typer.Option(help="the customer the case is about")],
    analyst: Analyst,
    note: Note,
    decision: Annotated[str | None, typer.Option(help="a decision id")] = None,
    alert: Annotated[str | None, typer.Option(help="an alert id")] = None,
    line: Annotated[str | None, typer.Option(help="a line id")] = None,
    priority: Annotated[int | None, typer.Option(help="1 (urgent) to 4 (low)")] = None,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Open a case by hand (one per decision or alert and type: opening it again shows the existing one)."""
    try:
        case = _engine(database_url).cases.open(
            type_,
            customer,
            decision_id=decision,
            alert_id=alert,
            line_id=line,
            priority=priority,
            note=note,
            actor=_who(analyst),
        )
    except FengkongError as exc:
        _fail(exc, as_json)
    _print_json(case) if as_json else _print_case(case)


@cases_app.command("sweep")
def cases_sweep(as_json: AsJson = False, database_url: DatabaseUrl = None) -> None:
    """Open the cases that decisions, alerts or complaints should have opened and did not (safe to repeat)."""
    counts = _engine(database_url).cases.sweep(actor="cli")
    if as_json:
        _print_json(counts)
    else:
        out.print(
            f"opened {counts['review']} review, {counts['alerts']} alert and {counts['complaints']} complaint cases"
        )


@appeal_app.command("file")
def appeal_file(
    customer: Annotated[str, typer.Option(help="the customer who appeals")],
    message: Annotated[str, typer.Option(help="the customer's own words")],
    decision: Annotated[str | None, typer.Option(help="the decision appealed")] = None,
    line_action: Annotated[str | None, typer.Option(help="the line restriction appealed")] = None,
    language: Annotated[str, typer.Option(help="zh or en")] = "zh",
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """File an appeal for human review of a decision or a line action."""
    try:
        appeal = _engine(database_url).cases.appeal(
            customer,
            decision_id=decision,
            line_action_id=line_action,
            message=message,
            language=language,
            actor="cli",
        )
    except FengkongError as exc:
        _fail(exc, as_json)
    if as_json:
        _print_json(appeal)
    else:
        out.print(f"[bold]{appeal['case_id']}[/] {appeal['status']}: {escape(appeal['message'])}", highlight=False)


@appeal_app.command("status")
def appeal_status(
    case_id: Annotated[str, typer.Argument()],
    customer: Annotated[str, typer.Option(help="the customer who filed it")],
    language: Annotated[str, typer.Option(help="zh or en")] = "zh",
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """How an appeal stands, as the customer is told."""
    try:
        view = _engine(database_url).cases.appeal_status(case_id, customer, language)
    except FengkongError as exc:
        _fail(exc, as_json)
    if as_json:
        _print_json(view)
        return
    out.print(f"{view['status']}: {escape(view['message'])}", highlight=False)
    for r in view["reasons"]:
        out.print(f"  - {escape(r['text'])} {escape(r['advice'])}", highlight=False)


@appeal_app.command("view")
def appeal_view(
    reference: Annotated[str, typer.Argument(help="a decision id (dec_...) or a line change id (lact_...)")],
    customer: Annotated[str, typer.Option(help="the customer the decision is about")],
    language: Annotated[str, typer.Option(help="zh or en")] = "zh",
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """A decision or a line change as its customer sees it: what was decided, why, what they can do, how to
    appeal."""
    try:
        desk = _engine(database_url).cases
        if reference.startswith("lact_"):
            view = desk.line_action_view(reference, customer, language)
        else:
            view = desk.customer_view(reference, customer, language)
    except FengkongError as exc:
        _fail(exc, as_json)
    if as_json:
        _print_json(view)
        return
    out.print(escape(view["headline"]), highlight=False)
    for r in view["reasons"]:
        out.print(f"  - {escape(r['text'])} {escape(r['advice'])}", highlight=False)
    appeal = view["appeal"]
    says = appeal.get("message") or appeal.get("how")
    if says:
        out.print(escape(says), highlight=False)
