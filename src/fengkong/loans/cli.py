"""`fengkong loan ...` and `fengkong collections ...`: schedules, the loan book, delinquency and collections."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import polars as pl
import typer
from rich.table import Table

from fengkong.cli import AsJson, DatabaseUrl, _engine, _fail, err, out
from fengkong.errors import FengkongError
from fengkong.loans.delinquency import BUCKETS, ROLL_TARGETS
from fengkong.loans.schedule import build_schedule, parse_apr, totals

loan_app: typer.Typer = typer.Typer(
    help="Loans: repayment schedules, the loan book, days past due, roll rates.", no_args_is_help=True
)
collections_app: typer.Typer = typer.Typer(
    help="Collections: the queue, contacts through the hard limits, the contact log, pauses.", no_args_is_help=True
)

Method = Annotated[
    str,
    typer.Option(
        "--method", help="equal_instalment (等额本息), equal_principal (等额本金) or interest_only (先息后本)"
    ),
]
Apr = Annotated[
    str,
    typer.Option("--apr", help="annual rate as a fraction, 0.12 for 12 % (or '12%'); a bare 12 is refused"),
]


#: How every schedule is computed (docs/loans.md), printed with it.
CONVENTIONS = {
    "day_count": "monthly: each period is one month at APR / 12 whatever its days (30/360); penalty interest "
    "on overdue principal is daily at penalty APR / 360",
    "rounding": "ROUND_HALF_UP to 0.01 on every figure paid",
    "due_dates": "monthly from the start date, clamped to the month's last day",
    "last_instalment": "absorbs rounding: principal sums exactly to the amount lent",
}


def _date(text: str | None, field: str) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise FengkongError(
            "invalid_field", f"{field}: not a date, use YYYY-MM-DD (got {text!r})", field, 422
        ) from None


def _day(text: str, field: str) -> dt.date:
    day = _date(text, field)
    assert day is not None
    return day


def _dump(value: Any) -> None:
    out.print_json(json.dumps(value, ensure_ascii=False, default=str))


@loan_app.command("schedule")
def schedule(
    principal: Annotated[str, typer.Option("--principal", help="amount lent, at most 2 decimals, e.g. 10000")],
    apr: Apr,
    term: Annotated[int, typer.Option("--term", help="months")],
    method: Method,
    start: Annotated[str | None, typer.Option("--start", help="start date YYYY-MM-DD (default: today)")] = None,
    as_json: AsJson = False,
) -> None:
    """Print a repayment schedule: period, due date, principal, interest, payment, balance.

    Money is rounded ROUND_HALF_UP to 0.01; interest is one month at APR / 12 per period; due dates are monthly
    from the start date, clamped to the month's end; the last instalment absorbs rounding, so the principal
    column sums exactly to the principal."""
    try:
        first = _date(start, "start") or dt.date.today()
        rows = build_schedule(principal, apr, term, method, first)
        rate = parse_apr(apr)
    except FengkongError as exc:
        _fail(exc, as_json)
        return
    sums = totals(rows)
    if as_json:
        _dump(
            {
                "principal": sums["principal"],
                "apr": float(rate),
                "term": term,
                "method": method,
                "start": first.isoformat(),
                "conventions": CONVENTIONS,
                "schedule": [r.as_dict() for r in rows],
                "totals": sums,
            }
        )
        return
    table = Table(
        "period",
        "due date",
        "principal",
        "interest",
        "payment",
        "balance",
        title=f"{method} · {sums['principal']:,.2f} at {(rate * 100).normalize():f}% APR · {term} months",
        caption="; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in CONVENTIONS.items()),
    )
    for r in rows:
        table.add_row(
            str(r.period),
            r.due_date.isoformat(),
            f"{r.principal:,.2f}",
            f"{r.interest:,.2f}",
            f"{r.payment:,.2f}",
            f"{r.balance:,.2f}",
        )
    table.add_section()
    table.add_row("total", "", f"{sums['principal']:,.2f}", f"{sums['interest']:,.2f}", f"{sums['payment']:,.2f}", "")
    out.print(table)


@loan_app.command("open")
def open_loan(
    customer: Annotated[str, typer.Argument(help="customer id")],
    principal: Annotated[str, typer.Option("--principal")],
    apr: Apr,
    term: Annotated[int, typer.Option("--term", help="months")],
    method: Method,
    start: Annotated[str | None, typer.Option("--start", help="YYYY-MM-DD (default: today)")] = None,
    loan_id: Annotated[str | None, typer.Option("--loan-id", help="your id for the loan")] = None,
    timezone: Annotated[str, typer.Option("--timezone", help="the customer's IANA time zone")] = "Asia/Shanghai",
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Book a loan disbursed outside a credit line (loans on a line come from drawdowns)."""
    try:
        loan = _engine(database_url).loans.open_loan(
            customer,
            principal,
            apr,
            term,
            method,
            _date(start, "start"),
            loan_id=loan_id,
            timezone=timezone,
            actor="cli",
        )
    except FengkongError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        _dump(loan)
    else:
        out.print(
            f"loan {loan['loan_id']} opened for {loan['customer_id']}: {loan['principal']:,.2f} over {term} months"
        )


@loan_app.command("show")
def show(
    loan_id: Annotated[str, typer.Argument()],
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM-DD (default: today)")] = None,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """A loan: its instalments, what was paid, DPD and bucket as of a date."""
    try:
        loan = _engine(database_url).loans.get(loan_id, _date(as_of, "as_of"))
    except FengkongError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        _dump(loan)
        return
    out.print(
        f"loan {loan['loan_id']} · customer {loan['customer_id']} · {loan['status']} · as of {loan['as_of']}: "
        f"{loan['dpd']} days past due ({loan['bucket']}), payoff {loan['outstanding']['payoff']:,.2f}"
    )
    table = Table("period", "due date", "payment", "paid", "penalty", "state", "paid on")
    for i in loan["instalments"]:
        table.add_row(
            str(i["period"]),
            i["due_date"],
            f"{i['payment']:,.2f}",
            f"{i['principal_paid'] + i['interest_paid']:,.2f}",
            f"{i['penalty']:,.2f}",
            i["state"],
            i["paid_on"] or "",
        )
    out.print(table)


@loan_app.command("repay")
def repay(
    loan_id: Annotated[str, typer.Argument()],
    repayment_id: Annotated[str, typer.Option("--id", help="the repayment's id: a retry is applied once")],
    amount: Annotated[str, typer.Option("--amount")],
    on: Annotated[str | None, typer.Option("--on", help="the day it was paid (default: today)")] = None,
    mode: Annotated[str, typer.Option("--mode", help="instalment or prepayment")] = "instalment",
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Apply a repayment: penalty, interest, principal, oldest instalment first."""
    try:
        result = _engine(database_url).loans.repay(loan_id, repayment_id, amount, _date(on, "on"), mode, actor="cli")
    except FengkongError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        _dump(result)
        return
    a = result["allocation"]
    note = " (already applied)" if result["replayed"] else ""
    out.print(
        f"repayment {result['repayment_id']}{note}: penalty {a['penalty']:,.2f}, interest {a['interest']:,.2f}, "
        f"principal {a['principal']:,.2f}; loan {result['loan']['status']}, "
        f"principal outstanding {result['loan']['outstanding']['principal']:,.2f}"
    )


@loan_app.command("close")
def close(
    loan_id: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option("--reason", help="a short code: settled, cooling_off...")],
    on: Annotated[str | None, typer.Option("--on", help="YYYY-MM-DD, not in the future (default: today)")] = None,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Close an active loan by hand: nothing more is owed on it (audited with the reason)."""
    _status(loan_id, "close", reason, on, as_json, database_url)


@loan_app.command("write-off")
def write_off(
    loan_id: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option("--reason", help="a short code, e.g. charged_off")],
    on: Annotated[str | None, typer.Option("--on", help="YYYY-MM-DD, not in the future (default: today)")] = None,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Write off a loan more than 90 days past due; it stays with collections and still takes repayments."""
    _status(loan_id, "write_off", reason, on, as_json, database_url)


def _status(loan_id: str, how: str, reason: str, on: str | None, as_json: bool, database_url: str | None) -> None:
    try:
        loans = _engine(database_url).loans
        change = loans.close if how == "close" else loans.write_off
        loan = change(loan_id, reason, _date(on, "on"), actor="cli")
    except FengkongError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        _dump(loan)
    else:
        out.print(f"loan {loan['loan_id']} {loan['status']} on {loan['status_on']} ({loan['status_reason']})")


@loan_app.command("dpd")
def dpd(
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM-DD (default: today)")] = None,
    loans: Annotated[bool, typer.Option("--loans", help="also list every delinquent loan")] = False,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Loans on book by delinquency bucket as of a date (current, M1 1-30, M2 31-60, M3 61-90, M3+ >90)."""
    try:
        day = _date(as_of, "as_of")
        engine = _engine(database_url)
        summary = engine.loans.delinquency(day)
        table = engine.loans.dpd_table(day).filter(pl.col("dpd") > 0) if loans else None
    except FengkongError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        _dump({**summary, **({"delinquent": table.to_dicts()} if table is not None else {})})
        return
    view = Table("bucket", "loans", "share", title=f"{summary['loans']} loans on book as of {summary['as_of']}")
    for b in summary["buckets"]:
        view.add_row(b["bucket"], str(b["loans"]), f"{b['share']:.1%}")
    out.print(view)
    if table is not None:
        rows = Table("loan", "customer", "dpd", "bucket", "max dpd")
        for r in table.iter_rows(named=True):
            rows.add_row(r["loan_id"], r["customer_id"], str(r["dpd"]), r["bucket"], str(r["max_dpd"]))
        out.print(rows)


@loan_app.command("roll-rates")
def roll_rates(
    end: Annotated[str, typer.Option("--to", help="YYYY-MM-DD")],
    start: Annotated[str | None, typer.Option("--from", help="YYYY-MM-DD (or give --months)")] = None,
    months: Annotated[
        int | None, typer.Option("--months", help="month by month over this many months to --to, instead of --from")
    ] = None,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """The bucket×bucket roll-rate matrix between two dates (share of loans in each bucket at --from that are in
    each bucket, or paid off / closed, at --to); with --months, the forward rolls month by month."""
    try:
        if (start is None) == (months is None):
            raise FengkongError("invalid_field", "give either --from or --months", "from", 422)
        loans = _engine(database_url).loans
        if months is not None:
            series = loans.roll_rate_series(_day(end, "to"), months)
        else:
            rates = loans.roll_rates(_day(str(start), "from"), _day(end, "to"))
    except FengkongError as exc:
        _fail(exc, as_json)
        return
    if months is not None:
        if as_json:
            _dump([r.as_dict() for r in series])
            return
        names = list(series[0].forward()) if series else []
        view = Table("from", "to", "loans", *names, title=f"forward roll rates, {months} month(s) to {end}")
        for r in series:
            rolls = r.forward()
            loans_on_book = sum(sum(row.values()) for row in r.counts.values())
            view.add_row(
                r.start.isoformat(),
                r.end.isoformat(),
                str(loans_on_book),
                *("-" if rolls[n] is None else f"{rolls[n]:.1%}" for n in names),
            )
        out.print(view)
        return
    if as_json:
        _dump(rates.as_dict())
        return
    table = Table("from \\ to", *ROLL_TARGETS, "loans", title=f"roll rates {start} → {end}")
    shares = rates.rates
    for source in BUCKETS:
        n = sum(rates.counts[source].values())
        table.add_row(source, *(f"{shares[source][t]:.1%}" if n else "-" for t in ROLL_TARGETS), str(n))
    out.print(table)


@loan_app.command("early-warning")
def early_warning(
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM-DD (default: today)")] = None,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the daily early-warning scan: the active policy's triggers on loan_* features, over the whole book."""
    try:
        result = _engine(database_url).loans.early_warning(_date(as_of, "as_of"), actor="cli")
    except FengkongError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        _dump(result)
        return
    out.print(
        f"{result['customers']} customers scanned as of {result['as_of']} with {len(result['triggers'])} "
        f"post-loan trigger(s); {len(result['alerts'])} alert(s) raised"
    )
    for a in result["alerts"][:50]:
        out.print(f"  {a['id']} {a['customer_id']} {a['trigger_id']}", highlight=False)


@collections_app.command("queue")
def queue(
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM-DD (default: today)")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 50,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Delinquent loans, highest expected recovery first (outstanding × recovery rate of the bucket)."""
    try:
        rows = _engine(database_url).loans.queue(_date(as_of, "as_of"), limit)
    except FengkongError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        _dump(rows)
        return
    table = Table("loan", "customer", "dpd", "bucket", "outstanding", "expected recovery", "channels", "today")
    for r in rows:
        channels = ", ".join(r["channels"]) + (" + emergency contact" if r["emergency_contact"] else "")
        table.add_row(
            r["loan_id"],
            r["customer_id"],
            str(r["dpd"]),
            r["bucket"],
            f"{r['outstanding']:,.2f}",
            f"{r['expected_recovery']:,.2f}",
            channels,
            str(r["contacts_today"]),
        )
    out.print(table)


@collections_app.command("contact")
def contact(
    loan_id: Annotated[str, typer.Argument()],
    channel: Annotated[str, typer.Option("--channel", help="sms, app or call")],
    party: Annotated[str, typer.Option("--party", help="customer or emergency_contact")] = "customer",
    collector: Annotated[str, typer.Option("--collector", help="who is contacting (logged)")] = "cli",
    result: Annotated[str | None, typer.Option("--result", help="what came of it, e.g. promise_to_pay")] = None,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Ask to contact now about a loan: the hard limits and the bucket's strategy answer; the attempt is logged.
    Exit code 2 when a limit refuses it."""
    try:
        answer = _engine(database_url).loans.contact(loan_id, channel, party, collector, result)
    except FengkongError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        _dump(answer)
    elif answer["allowed"]:
        out.print(f"go ahead: {channel} to {party} ({answer['bucket']}, {answer['local_time']} local)")
    else:
        err.print(f"refused ({answer['refusal']}): {answer['message']}")
    if not answer["allowed"]:
        raise typer.Exit(2)


@collections_app.command("log")
def contact_log(
    customer: Annotated[str, typer.Argument()],
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Every contact attempt with a customer, allowed or refused, oldest first."""
    try:
        rows = _engine(database_url).loans.contacts(customer)
    except FengkongError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        _dump(rows)
        return
    table = Table("when (UTC)", "loan", "channel", "party", "bucket", "collector", "allowed", "refusal / result")
    for r in rows:
        table.add_row(
            r["attempted_at"],
            r["loan_id"],
            r["channel"],
            r["party"],
            r["bucket"],
            r["collector"],
            "yes" if r["allowed"] else "no",
            r["refusal"] or r["result"] or "",
        )
    out.print(table)


@collections_app.command("pause")
def pause(
    customer: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option(help="a short code")] = "collector_complaint",
    database_url: DatabaseUrl = None,
) -> None:
    """Pause every contact with a customer (a complaint about a collector) and open a complaint case."""
    try:
        result = _engine(database_url).loans.pause_collections(customer, reason, actor="cli")
    except FengkongError as exc:
        _fail(exc)
        return
    out.print(f"collections paused for {customer} (pause {result['pause_id']}, case {result['case_id'] or '-'})")


@collections_app.command("resume")
def resume(customer: Annotated[str, typer.Argument()], database_url: DatabaseUrl = None) -> None:
    """Lift the pauses of a customer by hand."""
    try:
        lifted = _engine(database_url).loans.resume_collections(customer, actor="cli")
    except FengkongError as exc:
        _fail(exc)
        return
    if not lifted:
        err.print(f"no pause in force for {customer}")
        raise typer.Exit(1)
    out.print(f"{lifted} pause(s) lifted for {customer}")
