"""``engine.loans``: loans, repayments, delinquency, early warning and collections, on the engine's store.

    loan = engine.loans.open_loan("cust-1", "10000", "0.12", 12, "equal_instalment", dt.date(2026, 1, 31))
    engine.loans.repay(loan["loan_id"], "rp-1", "888.49", dt.date(2026, 2, 28))
    engine.loans.get(loan["loan_id"], as_of=dt.date(2026, 4, 1))     # schedule, paid, DPD and bucket
    engine.loans.queue()                                              # collections, by expected recovery
    engine.loans.contact(loan_id, "call", "customer", collector="key:...")   # through the hard limits

Every state change is one transaction with its audit-chain entry. A mutating transaction starts by writing the
loan row it is about (an UPDATE that changes nothing): that takes the row lock on PostgreSQL and the write lock
on SQLite before anything is read, so two repayments of one loan, or two contacts with one customer, queue
instead of both passing a check that only one of them should pass.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl
import sqlalchemy as sa

from fengkong.domain import new_id
from fengkong.errors import FengkongError, not_found
from fengkong.loans import collections as coll
from fengkong.loans.delinquency import (
    RollRates,
    bucket_of,
    bucket_summary,
    dpd_frame,
    loan_dpd,
    loan_max_dpd,
    roll_rates,
)
from fengkong.loans.early_warning import (
    FORBIDDEN_PAYEES,
    INCOME_DAYS,
    INCOME_SCHEMA,
    LINE_SCHEMA,
    LOAN_FEATURES,
    REPAYMENT_SCHEMA,
    TRANSFER_SCHEMA,
    customer_features,
    no_loans,
)
from fengkong.loans.repayment import (
    MODES,
    InstalmentState,
    Terms,
    accrue_penalty,
    allocate,
    payoff_quote,
    reconcile,
)
from fengkong.loans.schedule import (
    Method,
    add_months,
    build_schedule,
    from_cents,
    parse_apr,
    parse_money,
    to_cents,
)
from fengkong.store import audit
from fengkong.store.tables import (
    collection_contacts,
    collection_pauses,
    credit_lines,
    events,
    loan_instalments,
    loan_repayments,
    loans,
)

if TYPE_CHECKING:
    from fengkong.service import Engine

BORROWERS_TTL = 60.0  # seconds

log = logging.getLogger("fengkong.loans")

_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")
STATUSES = ("active", "paid_off", "closed", "written_off")
CONTACT_RESULTS = (
    "promise_to_pay",
    "paid",
    "no_answer",
    "refused_to_pay",
    "wrong_number",
    "callback_requested",
    "message_sent",
)
PENALTY_MULTIPLE = Decimal("1.5")  # default penalty APR: the contract APR plus 50 % (罚息 上浮 50 %)
WRITE_OFF_MIN_DPD = 91


class LoanDesk:
    """The loan book, reached as ``engine.loans``. Methods return plain JSON-ready dicts."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: The moment "now" (UTC). Tests and simulations set it; a repayment cannot be dated after the local
        #: date it gives, and a contact's local hour is read from it (never from the caller).
        self.clock: Callable[[], dt.datetime] = _now
        # Customers with a loan, so that event triggers on loan_* features skip the loan book for the many customers
        # without one. Read again every BORROWERS_TTL seconds: a loan booked by another replica is seen within that.
        self._borrowers: set[str] = set()
        self._borrowers_read = -float("inf")
        # what the audit chain vouches for: re-hashed by verify_audit
        engine.audit_hashers.update(
            {"loan_opened": _loan_hashes, "loan_repaid": _repayment_hashes, "collection_contact": _contact_hashes}
        )

    # ------------------------------------------------------------------------------------------ opening

    def open_loan(
        self,
        customer_id: str,
        principal: Decimal | int | str | float,
        apr: Decimal | int | str | float,
        term: int,
        method: Method | str,
        start: dt.date | None = None,
        *,
        line_id: str | None = None,
        loan_id: str | None = None,
        penalty_apr: Decimal | int | str | float | None = None,
        timezone: str = coll.DEFAULT_TIMEZONE,
        actor: str = "python",
    ) -> dict[str, Any]:
        """Book a loan with its schedule; returns the loan as ``get`` shows it. Idempotent on ``loan_id``: the same
        terms again return the stored loan, other terms are a 409 ``loan_id_conflict``."""
        with self.engine.db.begin() as conn:
            loan_id = self.open_loan_in(
                conn,
                customer_id,
                principal,
                apr,
                term,
                method,
                start,
                line_id=line_id,
                loan_id=loan_id,
                penalty_apr=penalty_apr,
                timezone=timezone,
                actor=actor,
            )
        return self.get(loan_id)

    def open_loan_in(
        self,
        conn: sa.Connection,
        customer_id: str,
        principal: Decimal | int | str | float,
        apr: Decimal | int | str | float,
        term: int,
        method: Method | str,
        start: dt.date | None = None,
        *,
        line_id: str | None = None,
        loan_id: str | None = None,
        penalty_apr: Decimal | int | str | float | None = None,
        timezone: str = coll.DEFAULT_TIMEZONE,
        actor: str = "python",
    ) -> str:
        """``open_loan`` inside the caller's transaction (the drawdown takes from the line in the same one), so
        the loan and the line's balance commit or roll back together. Returns the loan id. The caller's line
        accounting is its own: this books the loan only."""
        _check_ref(customer_id, "customer_id")
        if line_id is not None:
            _check_ref(line_id, "line_id")
        if loan_id is not None:
            _check_ref(loan_id, "loan_id")
        zone = _zone(timezone)
        if start is None:
            start = self.clock().astimezone(zone).date()
        elif not isinstance(start, dt.date) or isinstance(start, dt.datetime):
            raise FengkongError("invalid_field", "start must be a date (YYYY-MM-DD)", "start", 422)
        schedule = build_schedule(principal, apr, term, method, start)
        rate = parse_apr(apr)
        if penalty_apr is not None:
            penalty = parse_apr(penalty_apr, "penalty_apr")
        else:
            penalty = min(rate * PENALTY_MULTIPLE, Decimal(1))
        p = parse_money(principal, "principal")
        terms = {
            "customer_id": customer_id,
            "line_id": line_id,
            "principal_cents": to_cents(p),
            "apr": str(rate),
            "penalty_apr": str(penalty.normalize() if penalty else Decimal(0)),
            "term": term,
            "method": Method(method).value,
            "start_date": start,
            "timezone": timezone,
        }
        request_hash = audit.content_hash({**terms, "start_date": start.isoformat()})
        if loan_id is not None:
            existing = conn.execute(sa.select(loans.c.request_hash).where(loans.c.id == loan_id)).scalar_one_or_none()
            if existing is not None:
                if existing != request_hash:
                    raise FengkongError(
                        "loan_id_conflict",
                        f"loan {loan_id!r} already exists with other terms; use a new loan_id for a new loan",
                        "loan_id",
                        409,
                    )
                return loan_id
        loan_id = loan_id or new_id("loan")
        now = self.clock()
        conn.execute(
            sa.insert(loans).values(
                id=loan_id,
                **terms,
                status="active",
                status_on=None,
                status_reason=None,
                last_repaid_on=None,
                request_hash=request_hash,
                created_at=now,
                created_by=actor[:64],
            )
        )
        conn.execute(
            sa.insert(loan_instalments),
            [
                {
                    "loan_id": loan_id,
                    "period": row.period,
                    "due_date": row.due_date,
                    "principal_cents": to_cents(row.principal),
                    "interest_cents": to_cents(row.interest),
                    "penalty_cents": 0,
                    "principal_paid_cents": 0,
                    "interest_paid_cents": 0,
                    "penalty_paid_cents": 0,
                    "penalty_to": None,
                    "paid_on": None,
                }
                for row in schedule
            ],
        )
        audit.append(conn, "loan_opened", loan_id, actor[:64], _loan_payload(loan_id, request_hash), now)
        log.info("loan %s opened term=%s method=%s", loan_id, term, terms["method"])
        self._borrowers.add(str(terms["customer_id"]))  # if the transaction rolls back, one needless look-up later
        return loan_id

    # ------------------------------------------------------------------------------------------ repayments

    def repay(
        self,
        loan_id: str,
        repayment_id: str,
        amount: Decimal | int | str | float,
        paid_on: dt.date | dt.datetime | None = None,
        mode: str = "instalment",
        *,
        customer_id: str | None = None,
        actor: str = "python",
        source: str | None = None,
    ) -> dict[str, Any]:
        """Apply a repayment (see ``fengkong.loans.repayment`` for the order and the two modes).

        Idempotent on ``repayment_id``: the same repayment again returns what it did (``replayed``); the id with
        other data is a 409. ``paid_on`` is a date, or an aware moment read in the loan's time zone (default:
        today there). A repayment may not be dated before the loan's start, before the last repayment applied
        (they are applied in date order) or after today. Refused repayments change nothing."""
        _check_ref(loan_id, "loan_id")
        _check_ref(repayment_id, "repayment_id")
        cents = to_cents(parse_money(amount, "amount"))
        if mode not in MODES:
            raise FengkongError("invalid_field", f"mode must be one of {', '.join(MODES)}", "mode", 422)
        with self.engine.db.begin() as conn:
            loan = self._lock_loan(conn, loan_id)
            if customer_id is not None and loan.customer_id != customer_id:
                raise FengkongError(
                    "loan_customer_mismatch", f"loan {loan_id} belongs to another customer", "loan_id", 422
                )
            zone = ZoneInfo(loan.timezone)
            today = self.clock().astimezone(zone).date()
            if paid_on is None:
                day = today
            elif isinstance(paid_on, dt.datetime):
                if paid_on.tzinfo is None:
                    raise FengkongError("invalid_field", "paid_on needs a time zone (or give a date)", "paid_on", 422)
                day = paid_on.astimezone(zone).date()
            else:
                day = paid_on
            request_hash = audit.content_hash(
                {"loan_id": loan_id, "amount_cents": cents, "paid_on": day.isoformat(), "mode": mode}
            )
            stored = conn.execute(sa.select(loan_repayments).where(loan_repayments.c.id == repayment_id)).one_or_none()
            if stored is not None:
                if stored.request_hash != request_hash:
                    raise FengkongError(
                        "repayment_id_conflict",
                        f"repayment {repayment_id!r} was already applied with other data; use a new repayment id",
                        "repayment_id",
                        409,
                    )
                return self._repayment_view(stored, replayed=True)
            if loan.status in ("paid_off", "closed"):
                raise FengkongError(
                    "loan_not_repayable", f"loan {loan_id} is {loan.status}: nothing is owed on it", "loan_id", 409
                )
            if day < loan.start_date:
                raise FengkongError(
                    "paid_on_not_allowed",
                    f"paid_on {day} is before the loan started ({loan.start_date})",
                    "paid_on",
                    409,
                )
            if loan.last_repaid_on is not None and day < loan.last_repaid_on:
                raise FengkongError(
                    "repayment_out_of_order",
                    f"paid_on {day} is before the last repayment applied ({loan.last_repaid_on}); "
                    "repayments are applied in date order",
                    "paid_on",
                    409,
                )
            if day > today:
                raise FengkongError(
                    "paid_on_not_allowed", f"paid_on {day} is in the future (today is {today})", "paid_on", 409
                )
            states = self._states(conn, loan_id)
            terms = _terms(loan)
            new, alloc = allocate(states, terms, cents, day, mode)
            reconcile(new, loan.principal_cents)
            self._write_states(conn, loan_id, states, new)
            now = self.clock()
            status = loan.status
            if status == "active" and all(s.owed == 0 for s in new):
                status = "paid_off"
            conn.execute(
                sa.update(loans)
                .where(loans.c.id == loan_id)
                .values(
                    last_repaid_on=day,
                    status=status,
                    status_on=day if status != loan.status else loan.status_on,
                    status_reason="repaid" if status != loan.status else loan.status_reason,
                )
            )
            record = {
                "id": repayment_id,
                "loan_id": loan_id,
                "customer_id": loan.customer_id,
                "amount_cents": cents,
                "paid_on": day,
                "mode": mode,
                "allocation": alloc.as_dict(),
                "source": (source or actor)[:80],
                "request_hash": request_hash,
                "created_at": now,
            }
            conn.execute(sa.insert(loan_repayments).values(**record))
            audit.append(conn, "loan_repaid", repayment_id, actor[:64], _repayment_payload(record), now)
            if status != loan.status:
                audit.append(
                    conn,
                    "loan_paid_off",
                    loan_id,
                    actor[:64],
                    audit.content_hash({"loan_id": loan_id, "status": status, "on": day.isoformat()}),
                    now,
                )
            principal = alloc.total("principal")
            if principal and loan.line_id is not None:
                # the line's available amount comes back in the same transaction as the repayment
                self.engine.lines.on_principal_repaid(conn, loan.line_id, float(from_cents(principal)), now)
            stored = conn.execute(sa.select(loan_repayments).where(loan_repayments.c.id == repayment_id)).one()
        log.info("repayment %s on loan %s mode=%s", repayment_id, loan_id, mode)
        return self._repayment_view(stored, replayed=False)

    def payoff_quote(self, loan_id: str, on: dt.date | None = None) -> dict[str, Any]:
        """What settles the loan on ``on`` (default today in its time zone) with a ``prepayment``: everything due,
        the current month's interest and the principal not yet due; penalty counted to that day."""
        with self.engine.db.connect() as conn:
            loan = self._loan(conn, loan_id)
            states = self._states(conn, loan_id)
        day = on or self._today(loan.timezone)
        if loan.last_repaid_on is not None and day < loan.last_repaid_on:
            raise FengkongError(
                "quote_date_not_allowed",
                f"a quote cannot be dated before the last repayment ({loan.last_repaid_on})",
                "on",
                409,
            )
        accrue_penalty(states, _terms(loan), day)
        owed = 0 if loan.status in ("paid_off", "closed") else payoff_quote(states, day)
        return {"loan_id": loan_id, "on": day.isoformat(), "amount": float(from_cents(owed)), "status": loan.status}

    # ------------------------------------------------------------------------------------------ reading

    def get(self, loan_id: str, as_of: dt.date | None = None) -> dict[str, Any]:
        """The loan with its schedule, what was paid, penalty to ``as_of``, DPD and bucket as of ``as_of``.

        DPD, bucket and instalment states are as of ``as_of`` (any date); amounts are as recorded now, with
        penalty interest counted up to ``as_of`` when that is later than its last accrual."""
        _check_ref(loan_id, "loan_id")
        with self.engine.db.connect() as conn:
            loan = self._loan(conn, loan_id)
            states = self._states(conn, loan_id)
            repayments = conn.execute(
                sa.select(loan_repayments)
                .where(loan_repayments.c.loan_id == loan_id)
                .order_by(loan_repayments.c.paid_on, loan_repayments.c.created_at)
            ).all()
        day = as_of or self._today(loan.timezone)
        if loan.status in ("active", "written_off"):
            accrue_penalty(states, _terms(loan), day)
        pairs = [(s.due_date, s.paid_on) for s in states]
        dpd = loan_dpd(pairs, day) if day >= loan.start_date else 0
        quote = payoff_quote(states, day) if loan.status in ("active", "written_off") else 0
        return {
            **_loan_summary(loan),
            "as_of": day.isoformat(),
            "dpd": dpd,
            "bucket": bucket_of(dpd),
            "max_dpd": loan_max_dpd(pairs, day),
            "outstanding": {
                "principal": _money(sum(s.principal_due for s in states)),
                "overdue": _money(sum(s.owed for s in states if s.due_date < day)),
                "due_by_as_of": _money(sum(s.owed for s in states if s.due_date <= day)),
                "penalty": _money(sum(s.penalty_due for s in states)),
                "payoff": _money(quote),
            },
            "paid": {
                "principal": _money(sum(s.principal_paid for s in states)),
                "interest": _money(sum(s.interest_paid for s in states)),
                "penalty": _money(sum(s.penalty_paid for s in states)),
            },
            "instalments": [_instalment_view(s, day) for s in states],
            "repayments": [_repayment_summary(r) for r in repayments],
        }

    def for_customer(self, customer_id: str, as_of: dt.date | None = None) -> list[dict[str, Any]]:
        """The customer's loans, newest first, each with DPD and bucket as of ``as_of`` (default today)."""
        _check_ref(customer_id, "customer_id")
        with self.engine.db.connect() as conn:
            rows = conn.execute(
                sa.select(loans)
                .where(loans.c.customer_id == customer_id)
                .order_by(loans.c.start_date.desc(), loans.c.created_at.desc())
            ).all()
            out = []
            for loan in rows:
                states = self._states(conn, loan.id)
                day = as_of or self._today(loan.timezone)
                dpd = loan_dpd([(s.due_date, s.paid_on) for s in states], day) if day >= loan.start_date else 0
                out.append(
                    {
                        **_loan_summary(loan),
                        "as_of": day.isoformat(),
                        "dpd": dpd,
                        "bucket": bucket_of(dpd),
                        "principal_outstanding": _money(sum(s.principal_due for s in states)),
                    }
                )
        return out

    # ------------------------------------------------------------------------------------------ status

    def close(self, loan_id: str, reason: str, on: dt.date | None = None, actor: str = "python") -> dict[str, Any]:
        """Close an active loan by hand (cancelled in a cooling-off period, settled by agreement): nothing more
        is owed. Audited with its reason."""
        return self._set_status(loan_id, "closed", reason, on, actor)

    def write_off(self, loan_id: str, reason: str, on: dt.date | None = None, actor: str = "python") -> dict[str, Any]:
        """Write off a loan more than 90 days past due. It stays on book for collections; repayments on it
        are still taken (recoveries)."""
        return self._set_status(loan_id, "written_off", reason, on, actor)

    def _set_status(self, loan_id: str, status: str, reason: str, on: dt.date | None, actor: str) -> dict[str, Any]:
        _check_ref(loan_id, "loan_id")
        if not isinstance(reason, str) or not _REF.match(reason):
            raise FengkongError("invalid_field", "reason: a short code such as settled or cooling_off", "reason", 422)
        with self.engine.db.begin() as conn:
            loan = self._lock_loan(conn, loan_id)
            day = on or self.clock().astimezone(ZoneInfo(loan.timezone)).date()
            if loan.status != "active":
                raise FengkongError(
                    "loan_not_active",
                    f"loan {loan_id} is {loan.status}; only an active loan can be {status}",
                    "loan_id",
                    409,
                )
            if day < loan.start_date or (loan.last_repaid_on is not None and day < loan.last_repaid_on):
                raise FengkongError("date_not_allowed", f"{day} is before the loan's last recorded activity", "on", 409)
            today = self.clock().astimezone(ZoneInfo(loan.timezone)).date()
            if day > today:
                raise FengkongError("date_not_allowed", f"{day} is in the future (today is {today})", "on", 409)
            if status == "written_off":
                dpd = loan_dpd([(s.due_date, s.paid_on) for s in self._states(conn, loan_id)], day)
                if dpd < WRITE_OFF_MIN_DPD:
                    raise FengkongError(
                        "write_off_too_early",
                        f"loan {loan_id} is {dpd} days past due; a write-off needs more than 90 (M3+)",
                        "loan_id",
                        409,
                    )
            conn.execute(
                sa.update(loans).where(loans.c.id == loan_id).values(status=status, status_on=day, status_reason=reason)
            )
            audit.append(
                conn,
                f"loan_{status}",
                loan_id,
                actor[:64],
                audit.content_hash({"loan_id": loan_id, "status": status, "on": day.isoformat(), "reason": reason}),
                self.clock(),
            )
        return self.get(loan_id)

    # ------------------------------------------------------------------------------------------ the book

    def frames(self, customer_id: str | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(loans, instalments) as polars tables, all of the book or one customer's."""
        q_loans = sa.select(
            loans.c.id.label("loan_id"),
            loans.c.customer_id,
            loans.c.line_id,
            loans.c.start_date,
            loans.c.status,
            loans.c.status_on,
            loans.c.principal_cents,
        )
        q_inst = sa.select(
            loan_instalments.c.loan_id,
            loan_instalments.c.period,
            loan_instalments.c.due_date,
            loan_instalments.c.paid_on,
            loan_instalments.c.principal_cents,
            loan_instalments.c.principal_paid_cents,
            loan_instalments.c.interest_cents,
            loan_instalments.c.interest_paid_cents,
            loan_instalments.c.penalty_cents,
            loan_instalments.c.penalty_paid_cents,
        )
        if customer_id is not None:
            q_loans = q_loans.where(loans.c.customer_id == customer_id)
            q_inst = q_inst.join(loans, loans.c.id == loan_instalments.c.loan_id).where(
                loans.c.customer_id == customer_id
            )
        with self.engine.db.connect() as conn:
            loan_rows = conn.execute(q_loans).all()
            inst_rows = conn.execute(q_inst).all()
        loan_frame = pl.DataFrame(
            [tuple(r) for r in loan_rows],
            schema={
                "loan_id": pl.String,
                "customer_id": pl.String,
                "line_id": pl.String,
                "start_date": pl.Date,
                "status": pl.String,
                "status_on": pl.Date,
                "principal_cents": pl.Int64,
            },
            orient="row",
        )
        inst_frame = pl.DataFrame(
            [tuple(r) for r in inst_rows],
            schema={
                "loan_id": pl.String,
                "period": pl.Int32,
                "due_date": pl.Date,
                "paid_on": pl.Date,
                "principal_cents": pl.Int64,
                "principal_paid_cents": pl.Int64,
                "interest_cents": pl.Int64,
                "interest_paid_cents": pl.Int64,
                "penalty_cents": pl.Int64,
                "penalty_paid_cents": pl.Int64,
            },
            orient="row",
        )
        return loan_frame, inst_frame

    def dpd_table(self, as_of: dt.date | None = None) -> pl.DataFrame:
        """Every loan on book at ``as_of``: loan_id, customer_id, status, dpd, max_dpd, bucket, missed_first."""
        day = as_of or self._today(coll.DEFAULT_TIMEZONE)
        loan_frame, inst_frame = self.frames()
        return dpd_frame(inst_frame, loan_frame, day).sort("loan_id").collect()

    def delinquency(self, as_of: dt.date | None = None) -> dict[str, Any]:
        """Loans on book by bucket as of a date."""
        day = as_of or self._today(coll.DEFAULT_TIMEZONE)
        table = self.dpd_table(day)
        return {"as_of": day.isoformat(), "loans": table.height, "buckets": bucket_summary(table)}

    def roll_rates(self, start: dt.date, end: dt.date) -> RollRates:
        loan_frame, inst_frame = self.frames()
        return roll_rates(inst_frame, loan_frame, start, end)

    def roll_rate_series(self, end: dt.date, months: int) -> list[RollRates]:
        """Roll rates month by month over the ``months`` months to ``end``: (end − k months → end − k + 1 months),
        the same day of the month clamped to the month's end (so month ends stay month ends from a 31st)."""
        if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= 60:
            raise FengkongError("invalid_field", "months must be a whole number from 1 to 60", "months", 422)
        try:
            days = [add_months(end, -k) for k in range(months, -1, -1)]
        except ValueError:
            raise FengkongError("invalid_field", "to: too early for that many months", "to", 422) from None
        loan_frame, inst_frame = self.frames()
        return [roll_rates(inst_frame, loan_frame, a, b) for a, b in itertools.pairwise(days)]

    def line_delinquency(self, as_of: dt.date) -> pl.DataFrame:
        """Per credit line, for line review: line_days_past_due (worst now over its loans), line_max_dpd_12m
        (worst reached in the last 365 days), line_missed_payments_12m (instalments due in the last 365 days and
        not paid in full by their due date)."""
        loan_frame, inst_frame = self.frames()
        on_line = loan_frame.filter(pl.col("line_id").is_not_null())
        t = pl.lit(as_of, dtype=pl.Date)
        since = pl.lit(as_of - dt.timedelta(days=365), dtype=pl.Date)
        now = dpd_frame(inst_frame, on_line, as_of).join(on_line.lazy().select("loan_id", "line_id"), on="loan_id")
        end = pl.min_horizontal(pl.col("paid_on").fill_null(t), t)
        history = (
            inst_frame.lazy()
            .join(on_line.lazy().select("loan_id", "line_id"), on="loan_id")
            .filter(pl.col("due_date") < t)
            .group_by("line_id")
            .agg(
                pl.when(end >= since)
                .then((end - pl.col("due_date")).dt.total_days())
                .otherwise(0)
                .max()
                .clip(lower_bound=0)
                .alias("line_max_dpd_12m"),
                (
                    (pl.col("due_date") >= since)
                    & (pl.col("paid_on").is_null() | (pl.col("paid_on") > pl.col("due_date")))
                )
                .sum()
                .alias("line_missed_payments_12m"),
            )
        )
        return (
            now.group_by("line_id")
            .agg(pl.col("dpd").max().alias("line_days_past_due"))
            .join(history, on="line_id", how="full", coalesce=True)
            .select(
                "line_id",
                pl.col("line_days_past_due").fill_null(0).cast(pl.Float64),
                pl.col("line_max_dpd_12m").fill_null(0).cast(pl.Float64),
                pl.col("line_missed_payments_12m").fill_null(0).cast(pl.Float64),
            )
            .sort("line_id")
            .collect()
        )

    # ------------------------------------------------------------------------------------------ early warning

    def has_loans(self, customer_id: str) -> bool:
        """Whether the customer has any loan in the book (cached; see ``BORROWERS_TTL``)."""
        now = time.monotonic()
        if now - self._borrowers_read > BORROWERS_TTL:
            with self.engine.db.connect() as conn:
                self._borrowers = set(conn.execute(sa.select(loans.c.customer_id).distinct()).scalars())
            self._borrowers_read = now
        return customer_id in self._borrowers

    def customer_features(
        self,
        customer_id: str,
        at: dt.datetime | dt.date | None = None,
        *,
        batch: Sequence[tuple[Any, dt.datetime, Any, Mapping[str, Any]]] | None = None,
    ) -> dict[str, Any]:
        """The loan_* features of one customer as of ``at`` (a moment is read in Asia/Shanghai time).

        ``batch``: the events door's current batch as (event, occurred, keys, stored payload); the door writes a
        batch while its triggers run, so its transfers are counted from here, not only from the events table."""
        _check_ref(customer_id, "customer_id")
        day = self._as_date(at)
        loan_frame, inst_frame = self.frames(customer_id)
        if loan_frame.is_empty():
            return no_loans()
        table = customer_features(loan_frame, inst_frame, as_of=day, **self._early_inputs(day, customer_id, batch))
        if table.is_empty():
            return no_loans()
        row = table.row(0, named=True)
        return {name: row[name] for name in LOAN_FEATURES}

    def features_table(self, as_of: dt.date | None = None) -> pl.DataFrame:
        """customer_id and the loan_* features of every customer with a loan, as of a date."""
        day = as_of or self._today(coll.DEFAULT_TIMEZONE)
        loan_frame, inst_frame = self.frames()
        return customer_features(loan_frame, inst_frame, as_of=day, **self._early_inputs(day))

    def early_warning(self, as_of: dt.date | None = None, actor: str = "early_warning") -> dict[str, Any]:
        """The daily scan: every trigger of the active policy whose condition reads only loan_* features is
        evaluated over the whole book as of ``as_of``, columnar; each customer it holds for gets an alert with the
        trigger's action and reason (stored like an event trigger's, so cases pick up ``early_warning`` and
        ``open_case`` ones), unless an open alert of that trigger is already there."""
        from fengkong.policy import expressions as ex
        from fengkong.policy.compiler import compile_columnar, normalize_frame
        from fengkong.store.tables import alerts

        day = as_of or self._today(coll.DEFAULT_TIMEZONE)
        policy = self.engine.policy()
        triggers = []
        for trigger in policy.spec.triggers:
            tree = ex.parse(trigger.when)
            names = ex.references(tree)
            if names and all(name in LOAN_FEATURES for name in names):
                triggers.append((trigger, tree, sorted(names)))
        table = self.features_table(day)
        scan_id = f"ews:{day.isoformat()}"
        rows: list[dict[str, Any]] = []
        if triggers and not table.is_empty():
            with self.engine.db.connect() as conn:
                open_pairs = {
                    (r.customer_id, r.trigger_id)
                    for r in conn.execute(
                        sa.select(alerts.c.customer_id, alerts.c.trigger_id).where(
                            alerts.c.status == "open", alerts.c.trigger_id.in_([t.id for t, _, _ in triggers])
                        )
                    )
                }
            now = self.clock()
            for trigger, tree, refs in triggers:
                frame = normalize_frame(table.lazy(), self.engine.features, refs)
                hits = frame.filter(compile_columnar(tree).fill_null(False)).collect()
                for hit in hits.iter_rows(named=True):
                    if (hit["customer_id"], trigger.id) in open_pairs:
                        continue
                    rows.append(
                        {
                            "id": new_id("alr"),
                            "created_at": now,
                            "customer_id": hit["customer_id"],
                            "event_id": scan_id,
                            "trigger_id": trigger.id,
                            "action": trigger.action,
                            "reason": trigger.reason,
                            "policy_version": policy.version,
                            "features": {k: hit[k] for k in refs},
                            "status": "open",
                        }
                    )
        if rows:
            self.engine._store_alerts(rows, actor)
        return {
            "as_of": day.isoformat(),
            "customers": table.height,
            "triggers": [t.id for t, _, _ in triggers],
            "alerts": [{"id": r["id"], "customer_id": r["customer_id"], "trigger_id": r["trigger_id"]} for r in rows],
        }

    def _early_inputs(
        self,
        day: dt.date,
        customer_id: str | None = None,
        batch: Sequence[tuple[Any, dt.datetime, Any, Mapping[str, Any]]] | None = None,
    ) -> dict[str, pl.DataFrame]:
        """What the early-warning features read besides loans and instalments (``customer_features`` keywords):
        transfers to a forbidden use in the last 30 days, the principal part of each repayment, the customer's
        credit lines, incomes verified in the last year; all of the book or one customer's."""
        zone = ZoneInfo(coll.DEFAULT_TIMEZONE)
        transfers = []
        for customer, on, payload in self._events_since(day, 32, "transfer_out", customer_id, batch):
            if payload.get("payee_category") in FORBIDDEN_PAYEES:
                transfers.append(
                    (customer, on.astimezone(zone).date(), float(payload["amount"]), payload["payee_category"])
                )
        incomes = [
            (customer, on.astimezone(zone).date(), float(payload["monthly_income"]))
            for customer, on, payload in self._events_since(day, INCOME_DAYS + 2, "bureau_update", customer_id, batch)
            if payload.get("monthly_income") is not None
        ]
        q_repaid = sa.select(loan_repayments.c.loan_id, loan_repayments.c.paid_on, loan_repayments.c.allocation)
        q_lines = sa.select(
            credit_lines.c.customer_id,
            credit_lines.c.id,
            credit_lines.c.status,
            credit_lines.c.limit_amount,
            credit_lines.c.opened_at,
            credit_lines.c.opening,
        )
        if customer_id is not None:
            q_repaid = q_repaid.where(loan_repayments.c.customer_id == customer_id)
            q_lines = q_lines.where(credit_lines.c.customer_id == customer_id)
        with self.engine.db.connect() as conn:
            repaid = [
                (r.loan_id, r.paid_on, to_cents(Decimal(str(r.allocation.get("principal", 0)))))
                for r in conn.execute(q_repaid)
            ]
            lines = [
                (
                    r.customer_id,
                    r.id,
                    r.status,
                    float(r.limit_amount),
                    _aware(r.opened_at).astimezone(zone).date(),
                    _income((r.opening or {}).get("monthly_income")),
                )
                for r in conn.execute(q_lines)
            ]
        return {
            "transfers": pl.DataFrame(transfers, schema=TRANSFER_SCHEMA, orient="row"),
            "repayments": pl.DataFrame(repaid, schema=REPAYMENT_SCHEMA, orient="row"),
            "lines": pl.DataFrame(lines, schema=LINE_SCHEMA, orient="row"),
            "incomes": pl.DataFrame(incomes, schema=INCOME_SCHEMA, orient="row"),
        }

    def _events_since(
        self,
        day: dt.date,
        days: int,
        kind: str,
        customer_id: str | None,
        batch: Sequence[tuple[Any, dt.datetime, Any, Mapping[str, Any]]] | None,
    ) -> list[tuple[str, dt.datetime, Mapping[str, Any]]]:
        """(customer, aware moment, stored payload) of the events of one type from ``days`` before ``day`` to just
        after it (a little wider: local dates are cut later), from the events table and from ``batch``: the
        events door's batch may still be being written while its triggers read this. Each event counted once."""
        since = dt.datetime.combine(day - dt.timedelta(days=days), dt.time(), dt.UTC)
        until = dt.datetime.combine(day + dt.timedelta(days=2), dt.time(), dt.UTC)
        query = sa.select(events.c.event_id, events.c.customer_id, events.c.occurred_at, events.c.payload).where(
            (events.c.type == kind) & (events.c.occurred_at >= since) & (events.c.occurred_at < until)
        )
        if customer_id is not None:
            query = query.where(events.c.customer_id == customer_id)
        with self.engine.db.connect() as conn:
            found = {r.event_id: (r.customer_id, _aware(r.occurred_at), r.payload) for r in conn.execute(query)}
        for event, occurred, _keys, payload in batch or ():
            mine = customer_id is None or event.customer_id == customer_id
            if event.type == kind and mine and since <= occurred < until:
                found.setdefault(event.event_id, (event.customer_id, _aware(occurred), payload))
        return list(found.values())

    # ------------------------------------------------------------------------------------------ events

    def on_events(self, stored: Sequence[Any], actor: str) -> list[dict[str, Any]]:
        """The events door's hook, given each batch's newly stored events before its triggers run.

        A ``repayment`` naming a loan in this book is applied to it (repayment id = event id, paid on the event's
        local date, mode instalment); a loan id the book does not hold is left alone (the lender may keep its
        loans elsewhere). One that cannot be applied (another customer's loan, paid off, more than owed, dated
        before the last repayment...) stays stored as an event and raises a REPAYMENT_UNMATCHED alert for
        operations, returned for the caller to store with the triggers' alerts. (A ``complaint`` about a
        collector pauses collections: the engine writes that pause with the batch's cases, see
        :meth:`record_pauses`.) Ingestion never fails here."""
        repayments = [e for e in stored if e.type == "repayment" and getattr(e, "loan_id", None)]
        raised: list[dict[str, Any]] = []
        if repayments:
            with self.engine.db.connect() as conn:
                booked = set(
                    conn.execute(sa.select(loans.c.id).where(loans.c.id.in_({e.loan_id for e in repayments}))).scalars()
                )
            for event in repayments:
                if event.loan_id in booked:
                    alert = self._apply_repayment_event(event, actor)
                    if alert is not None:
                        raised.append(alert)
        return raised

    def _apply_repayment_event(self, event: Any, actor: str) -> dict[str, Any] | None:
        try:
            self.repay(
                event.loan_id,
                event.event_id,
                parse_money(event.amount, "amount"),
                event.occurred_at,
                "instalment",
                customer_id=event.customer_id,
                actor=actor,
                source=f"event:{event.event_id}",
            )
            return None
        except Exception as exc:  # any failure leaves the event stored and says so in an alert
            code = exc.code if isinstance(exc, FengkongError) else "internal_error"
            log.warning("repayment event %s not applied: %s", event.event_id, code)
            return {
                "id": new_id("alr"),
                "created_at": _now(),
                "customer_id": event.customer_id,
                "event_id": event.event_id,
                "trigger_id": "LOAN_REPAYMENT",
                "action": "alert",
                "reason": "REPAYMENT_UNMATCHED",
                "policy_version": self.engine.policy().version,
                "features": {"loan_id": event.loan_id, "error": code},
                "status": "open",
            }

    # ------------------------------------------------------------------------------------------ collections

    def queue(self, as_of: dt.date | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Delinquent loans to work, highest expected recovery first (outstanding × the bucket's recovery rate;
        outstanding = principal not yet repaid + interest and penalty due). Customers whose collections are
        paused are left out."""
        if not 1 <= limit <= 10_000:
            raise FengkongError("invalid_field", "limit must be from 1 to 10000", "limit", 422)
        day = as_of or self._today(coll.DEFAULT_TIMEZONE)
        loan_frame, inst_frame = self.frames()
        t = pl.lit(day, dtype=pl.Date)
        owed = inst_frame.group_by("loan_id").agg(
            (pl.col("principal_cents") - pl.col("principal_paid_cents")).sum().alias("principal_due"),
            pl.when(pl.col("due_date") <= t)
            .then(
                pl.col("interest_cents")
                - pl.col("interest_paid_cents")
                + pl.col("penalty_cents")
                - pl.col("penalty_paid_cents")
            )
            .otherwise(0)
            .sum()
            .alias("charges_due"),
        )
        table = (
            dpd_frame(inst_frame, loan_frame, day)
            .filter((pl.col("dpd") > 0) & pl.col("status").is_in(coll.COLLECTABLE_STATUSES))
            .join(owed.lazy(), on="loan_id", how="left")
            .with_columns((pl.col("principal_due") + pl.col("charges_due")).alias("outstanding"))
            .collect()
        )
        with self.engine.db.connect() as conn:
            paused = self._paused(conn, None)
            today_counts = self._contacts_on(conn, day)
        entries = []
        for row in table.iter_rows(named=True):
            if row["customer_id"] in paused:
                continue
            strategy = coll.STRATEGIES[row["bucket"]]
            entries.append(
                {
                    "loan_id": row["loan_id"],
                    "customer_id": row["customer_id"],
                    "status": row["status"],
                    "dpd": row["dpd"],
                    "bucket": row["bucket"],
                    "outstanding": _money(row["outstanding"]),
                    "recovery_rate": coll.RECOVERY_RATES[row["bucket"]],
                    "expected_recovery": _money(coll.expected_recovery(row["outstanding"], row["bucket"])),
                    "channels": list(strategy.channels),
                    "emergency_contact": strategy.emergency_contact,
                    "strategy": strategy.note,
                    "contacts_today": today_counts.get(row["customer_id"], 0),
                }
            )
        entries.sort(key=lambda e: (-e["expected_recovery"], -e["dpd"], e["loan_id"]))
        return entries[:limit]

    def contact(
        self, loan_id: str, channel: str, party: str, collector: str, result: str | None = None
    ) -> dict[str, Any]:
        """Ask to contact about a loan, now. Every attempt goes through ``collections.check_contact`` (the hard
        limits, then the bucket's strategy) and is logged and audited, allowed or refused with its reason.
        Malformed requests (unknown loan, channel or party) are errors and log nothing."""
        _check_ref(loan_id, "loan_id")
        if channel not in coll.CHANNELS:
            raise FengkongError("invalid_field", f"channel must be one of {', '.join(coll.CHANNELS)}", "channel", 422)
        if party not in coll.PARTIES:
            raise FengkongError("invalid_field", f"party must be one of {', '.join(coll.PARTIES)}", "party", 422)
        if result is not None and result not in CONTACT_RESULTS:
            raise FengkongError("invalid_field", f"result must be one of {', '.join(CONTACT_RESULTS)}", "result", 422)
        with self.engine.db.begin() as conn:
            loan = self._loan(conn, loan_id)
            # every loan of the customer: contacts with one person are counted and limited together
            conn.execute(sa.update(loans).where(loans.c.customer_id == loan.customer_id).values(status=loans.c.status))
            loan = self._loan(conn, loan_id)
            now = self.clock()
            local = now.astimezone(ZoneInfo(loan.timezone))
            day = local.date()
            dpd = loan_dpd([(s.due_date, s.paid_on) for s in self._states(conn, loan_id)], day)
            counts = conn.execute(
                sa.select(collection_contacts.c.party, sa.func.count())
                .where(
                    (collection_contacts.c.customer_id == loan.customer_id)
                    & (collection_contacts.c.local_date == day)
                    & collection_contacts.c.allowed
                )
                .group_by(collection_contacts.c.party)
            ).all()
            by_party = {p: int(n) for p, n in counts}
            context = coll.ContactContext(
                local_time=local,
                loan_status=loan.status,
                dpd=dpd,
                bucket=bucket_of(dpd),
                paused=loan.customer_id in self._paused(conn, [loan.customer_id]),
                contacts_today=sum(by_party.values()),
                emergency_today=by_party.get("emergency_contact", 0),
            )
            refusal = coll.check_contact(channel, party, context)
            record = {
                "id": new_id("ctc"),
                "loan_id": loan_id,
                "customer_id": loan.customer_id,
                "attempted_at": now,
                "local_date": day,
                "channel": channel,
                "party": party,
                "dpd": dpd,
                "bucket": context.bucket,
                "collector": collector[:64],
                "allowed": refusal is None,
                "refusal": refusal,
                "result": result if refusal is None else None,
            }
            conn.execute(sa.insert(collection_contacts).values(**record))
            audit.append(conn, "collection_contact", record["id"], collector[:64], _contact_payload(record), now)
        if refusal is not None:
            log.info("contact refused loan=%s reason=%s", loan_id, refusal)
        return {
            "contact_id": record["id"],
            "loan_id": loan_id,
            "customer_id": loan.customer_id,
            "allowed": refusal is None,
            "refusal": refusal,
            "message": coll.REFUSALS[refusal] if refusal else "go ahead",
            "local_time": local.isoformat(timespec="minutes"),
            "channel": channel,
            "party": party,
            "dpd": dpd,
            "bucket": context.bucket,
            "contacts_today": context.contacts_today + (refusal is None),
        }

    def contacts(self, customer_id: str) -> list[dict[str, Any]]:
        """The contact log of a customer (allowed and refused attempts), oldest first."""
        _check_ref(customer_id, "customer_id")
        with self.engine.db.connect() as conn:
            rows = conn.execute(
                sa.select(collection_contacts)
                .where(collection_contacts.c.customer_id == customer_id)
                .order_by(collection_contacts.c.attempted_at, collection_contacts.c.id)
            ).all()
        return [
            {
                "contact_id": r.id,
                "loan_id": r.loan_id,
                "attempted_at": audit.timestamp_text(r.attempted_at),
                "local_date": r.local_date.isoformat(),
                "channel": r.channel,
                "party": r.party,
                "dpd": r.dpd,
                "bucket": r.bucket,
                "collector": r.collector,
                "allowed": r.allowed,
                "refusal": r.refusal,
                "result": r.result,
            }
            for r in rows
        ]

    def pause_collections(
        self,
        customer_id: str,
        reason: str = "collector_complaint",
        *,
        actor: str = "python",
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """Stop all contact with a customer (a complaint about a collector) and open a complaint case. The pause
        holds until the case is resolved or someone lifts it (``resume_collections``). One pause per complaint
        event: the same event again returns the same pause."""
        return self.pause_many([(customer_id, event_id)], reason, actor)[0]

    def pause_many(self, asked: Sequence[tuple[str, str | None]], reason: str, actor: str) -> list[dict[str, Any]]:
        """Pauses for (customer, complaint event) pairs, with their complaint cases opened in one batch and the
        pauses written in one transaction."""
        for customer_id, _event in asked:
            _check_ref(customer_id, "customer_id")
        if not isinstance(reason, str) or not _REF.match(reason):
            raise FengkongError("invalid_field", "reason: a short code such as collector_complaint", "reason", 422)
        with self.engine.db.connect() as conn:
            answers, fresh = self._plan_pauses(conn, asked, reason, actor)
        if fresh:
            case_ids = self._open_complaint_cases(fresh, reason, actor)
            with self.engine.db.begin() as conn:
                self._write_pauses(conn, fresh, case_ids, reason, actor)
            by_pause = dict(zip((p["id"] for p in fresh), case_ids, strict=True))
            for answer in answers:
                if answer["pause_id"] in by_pause:
                    answer["case_id"] = by_pause[answer["pause_id"]]
        return answers

    def record_pauses(
        self, conn: sa.Connection, complaints: Sequence[tuple[str, str]], case_ids: Mapping[str, str], actor: str
    ) -> None:
        """Inside the caller's transaction: pause contact for each (customer, collector-complaint event), linked
        to the complaint case the caller opened for that event (``case_ids`` by event id). Idempotent per event."""
        _answers, fresh = self._plan_pauses(conn, complaints, "collector_complaint", actor)
        linked = [case_ids.get(p["event_id"] or "") for p in fresh]
        self._write_pauses(conn, fresh, linked, "collector_complaint", actor)

    @staticmethod
    def collector_complaints(stored: Sequence[Any]) -> list[tuple[str, str]]:
        """(customer, event id) of the complaints about a collector among these events: each pauses contact."""
        return [
            (e.customer_id, e.event_id)
            for e in stored
            if e.type == "complaint" and getattr(e, "category", None) == "collector"
        ]

    def _plan_pauses(
        self, conn: sa.Connection, asked: Sequence[tuple[str, str | None]], reason: str, actor: str
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The answer for each asked pause (an event already paused gives its pause) and the pauses to write."""
        sources = [f"event:{event_id}" if event_id else f"manual:{actor}"[:80] for _c, event_id in asked]
        wanted = [s for (_c, e), s in zip(asked, sources, strict=True) if e is not None]
        known = {
            row.source: {"pause_id": row.id, "customer_id": row.customer_id, "case_id": row.case_id}
            for row in conn.execute(sa.select(collection_pauses).where(collection_pauses.c.source.in_(wanted)))
        }
        fresh: list[dict[str, Any]] = []
        answers: list[dict[str, Any]] = []
        for (customer_id, event_id), source in zip(asked, sources, strict=True):
            if event_id is not None and source in known:
                answers.append(known[source])
                continue
            pause = {"id": new_id("pau"), "customer_id": customer_id, "source": source, "event_id": event_id}
            fresh.append(pause)
            answer = {"pause_id": pause["id"], "customer_id": customer_id, "case_id": None}
            if event_id is not None:
                known[source] = answer
            answers.append(answer)
        return answers, fresh

    def _write_pauses(
        self,
        conn: sa.Connection,
        fresh: Sequence[Mapping[str, Any]],
        case_ids: Sequence[str | None],
        reason: str,
        actor: str,
    ) -> None:
        if not fresh:
            return
        now = self.clock()
        conn.execute(
            sa.insert(collection_pauses),
            [
                {
                    "id": p["id"],
                    "customer_id": p["customer_id"],
                    "reason": reason,
                    "source": p["source"],
                    "case_id": case_id,
                    "paused_at": now,
                    "lifted_at": None,
                    "lifted_by": None,
                }
                for p, case_id in zip(fresh, case_ids, strict=True)
            ],
        )
        for p, case_id in zip(fresh, case_ids, strict=True):
            audit.append(
                conn,
                "collections_paused",
                p["id"],
                actor[:64],
                audit.content_hash(
                    {"customer_id": p["customer_id"], "reason": reason, "source": p["source"], "case": case_id}
                ),
                now,
            )
            log.info("collections paused pause=%s case=%s", p["id"], case_id)

    def resume_collections(self, customer_id: str, actor: str = "python") -> int:
        """Lift every pause of a customer by hand; returns how many were lifted. Audited."""
        _check_ref(customer_id, "customer_id")
        now = self.clock()
        with self.engine.db.begin() as conn:
            ids = list(
                conn.execute(
                    sa.select(collection_pauses.c.id).where(
                        (collection_pauses.c.customer_id == customer_id) & collection_pauses.c.lifted_at.is_(None)
                    )
                ).scalars()
            )
            if ids:
                conn.execute(
                    sa.update(collection_pauses)
                    .where(collection_pauses.c.id.in_(ids))
                    .values(lifted_at=now, lifted_by=actor[:64])
                )
            for pause_id in ids:
                audit.append(
                    conn,
                    "collections_resumed",
                    pause_id,
                    actor[:64],
                    audit.content_hash({"pause_id": pause_id, "lifted_by": actor}),
                    now,
                )
        return len(ids)

    def paused(self, customer_id: str) -> bool:
        with self.engine.db.connect() as conn:
            return customer_id in self._paused(conn, [customer_id])

    def _open_complaint_cases(self, pauses: Sequence[Mapping[str, Any]], reason: str, actor: str) -> list[str | None]:
        """The complaint case of each pause (the complaint event's own case when there is one)."""
        requests = [
            {
                "type": "complaint",
                "customer_id": p["customer_id"],
                "event_id": p["event_id"],
                "evidence": {"category": "collector", "collections_pause": p["id"], "reason": reason},
                "priority": 2,
                "source": None if p["event_id"] else f"complaint:collections_pause:{p['id']}",
            }
            for p in pauses
        ]
        try:
            opened = self.engine.cases.open_many(requests, actor[:64] or "system")
        except Exception as exc:  # the pause must hold even when the case cannot be opened now (cases.sweep)
            log.error("complaint cases for %d pauses not opened: %s", len(pauses), type(exc).__name__)
            return [None] * len(pauses)
        return [str(case["case_id"]) for case in opened]

    def _paused(self, conn: sa.Connection, customer_ids: Sequence[str] | None) -> set[str]:
        """Customers with a pause in force: not lifted, and its complaint case (if any) not resolved."""
        query = sa.select(collection_pauses.c.customer_id, collection_pauses.c.case_id).where(
            collection_pauses.c.lifted_at.is_(None)
        )
        if customer_ids is not None:
            query = query.where(collection_pauses.c.customer_id.in_(list(customer_ids)))
        rows = conn.execute(query).all()
        case_ids = [r.case_id for r in rows if r.case_id]
        resolved: set[str] = set()
        if case_ids:
            from fengkong.store import tables

            case_table = getattr(tables, "cases", None)
            if case_table is not None:
                resolved = set(
                    conn.execute(
                        sa.select(case_table.c.id).where(
                            case_table.c.id.in_(case_ids) & (case_table.c.status == "resolved")
                        )
                    ).scalars()
                )
        paused = {r.customer_id for r in rows if r.case_id is None or r.case_id not in resolved}
        # A stored complaint about a collector pauses contact even if its pause was never recorded (a crash
        # between the event and the pause): it counts until a pause for it exists and is lifted or resolved.
        complaints = sa.select(events.c.event_id, events.c.customer_id, events.c.payload).where(
            events.c.type == "complaint"
        )
        if customer_ids is not None:
            complaints = complaints.where(events.c.customer_id.in_(list(customer_ids)))
        collector = {
            r.event_id: r.customer_id for r in conn.execute(complaints) if r.payload.get("category") == "collector"
        }
        if collector:
            recorded = set(
                conn.execute(
                    sa.select(collection_pauses.c.source).where(
                        collection_pauses.c.source.in_([f"event:{e}" for e in collector])
                    )
                ).scalars()
            )
            paused |= {c for e, c in collector.items() if f"event:{e}" not in recorded}
        return paused

    def _contacts_on(self, conn: sa.Connection, day: dt.date) -> dict[str, int]:
        rows = conn.execute(
            sa.select(collection_contacts.c.customer_id, sa.func.count())
            .where((collection_contacts.c.local_date == day) & collection_contacts.c.allowed)
            .group_by(collection_contacts.c.customer_id)
        ).all()
        return {c: int(n) for c, n in rows}

    # ------------------------------------------------------------------------------------------ internals

    def _today(self, timezone: str) -> dt.date:
        return self.clock().astimezone(ZoneInfo(timezone)).date()

    def _as_date(self, at: dt.datetime | dt.date | None) -> dt.date:
        if at is None:
            return self._today(coll.DEFAULT_TIMEZONE)
        if isinstance(at, dt.datetime):
            moment = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
            return moment.astimezone(ZoneInfo(coll.DEFAULT_TIMEZONE)).date()
        return at

    def _loan(self, conn: sa.Connection, loan_id: str) -> Any:
        row = conn.execute(sa.select(loans).where(loans.c.id == loan_id)).one_or_none()
        if row is None:
            raise not_found("loan", loan_id, "loan_id")
        return row

    def _lock_loan(self, conn: sa.Connection, loan_id: str) -> Any:
        """Write the loan row first (changing nothing): the lock is held before anything is read."""
        done = conn.execute(sa.update(loans).where(loans.c.id == loan_id).values(status=loans.c.status)).rowcount
        if not done:
            raise not_found("loan", loan_id, "loan_id")
        return self._loan(conn, loan_id)

    @staticmethod
    def _states(conn: sa.Connection, loan_id: str) -> list[InstalmentState]:
        rows = conn.execute(
            sa.select(loan_instalments).where(loan_instalments.c.loan_id == loan_id).order_by(loan_instalments.c.period)
        ).all()
        return [
            InstalmentState(
                period=r.period,
                due_date=r.due_date,
                principal=r.principal_cents,
                interest=r.interest_cents,
                penalty=r.penalty_cents,
                principal_paid=r.principal_paid_cents,
                interest_paid=r.interest_paid_cents,
                penalty_paid=r.penalty_paid_cents,
                penalty_to=r.penalty_to,
                paid_on=r.paid_on,
            )
            for r in rows
        ]

    @staticmethod
    def _write_states(
        conn: sa.Connection, loan_id: str, before: Sequence[InstalmentState], after: Sequence[InstalmentState]
    ) -> None:
        for old, new in zip(before, after, strict=True):
            if old == new:
                continue
            conn.execute(
                sa.update(loan_instalments)
                .where((loan_instalments.c.loan_id == loan_id) & (loan_instalments.c.period == new.period))
                .values(
                    principal_cents=new.principal,
                    interest_cents=new.interest,
                    penalty_cents=new.penalty,
                    principal_paid_cents=new.principal_paid,
                    interest_paid_cents=new.interest_paid,
                    penalty_paid_cents=new.penalty_paid,
                    penalty_to=new.penalty_to,
                    paid_on=new.paid_on,
                )
            )

    def _repayment_view(self, row: Any, replayed: bool) -> dict[str, Any]:
        return {**_repayment_summary(row), "replayed": replayed, "loan": self.get(row.loan_id, row.paid_on)}


# ---------------------------------------------------------------------------------------------- helpers


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(moment: dt.datetime) -> dt.datetime:
    """A stored moment with its zone (SQLite gives UTC back without one)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _income(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else None


def _money(cents: int) -> float:
    return float(from_cents(int(cents)))


def _check_ref(value: Any, field: str) -> None:
    if not isinstance(value, str) or not _REF.match(value):
        raise FengkongError(
            "invalid_field",
            f"{field}: 1 to 64 letters, digits or . _ : - (starting with a letter or digit)",
            field,
            422,
        )


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise FengkongError(
            "invalid_field", f"unknown time zone {name!r}; use an IANA name such as Asia/Shanghai", "timezone", 422
        ) from None


def _terms(loan: Any) -> Terms:
    return Terms(Decimal(loan.apr), Decimal(loan.penalty_apr), Method(loan.method))


def _loan_summary(loan: Any) -> dict[str, Any]:
    return {
        "loan_id": loan.id,
        "customer_id": loan.customer_id,
        "line_id": loan.line_id,
        "principal": _money(loan.principal_cents),
        "apr": float(loan.apr),
        "penalty_apr": float(loan.penalty_apr),
        "term": loan.term,
        "method": loan.method,
        "start_date": loan.start_date.isoformat(),
        "timezone": loan.timezone,
        "status": loan.status,
        "status_on": loan.status_on.isoformat() if loan.status_on else None,
        "status_reason": loan.status_reason,
    }


def _instalment_view(s: InstalmentState, day: dt.date) -> dict[str, Any]:
    if s.paid_on is not None and s.paid_on <= day:
        state = "paid"
    elif s.due_date < day:
        state = "overdue"
    elif s.due_date == day:
        state = "due"
    else:
        state = "upcoming"
    return {
        "period": s.period,
        "due_date": s.due_date.isoformat(),
        "principal": _money(s.principal),
        "interest": _money(s.interest),
        "payment": _money(s.principal + s.interest),
        "penalty": _money(s.penalty),
        "principal_paid": _money(s.principal_paid),
        "interest_paid": _money(s.interest_paid),
        "penalty_paid": _money(s.penalty_paid),
        "paid_on": s.paid_on.isoformat() if s.paid_on else None,
        "state": state,
    }


def _repayment_summary(row: Any) -> dict[str, Any]:
    return {
        "repayment_id": row.id,
        "loan_id": row.loan_id,
        "amount": _money(row.amount_cents),
        "paid_on": row.paid_on.isoformat(),
        "mode": row.mode,
        "allocation": row.allocation,
        "source": row.source,
    }


def _loan_payload(loan_id: str, request_hash: str) -> str:
    return audit.content_hash({"loan_id": loan_id, "terms": request_hash})


def _loan_hashes(conn: sa.Connection, ids: list[str]) -> Mapping[str, str]:
    """Recompute what a loan_opened entry vouches for, from the loan's terms as stored now."""
    rows = conn.execute(sa.select(loans).where(loans.c.id.in_(ids))).all()
    out = {}
    for r in rows:
        terms = {
            "customer_id": r.customer_id,
            "line_id": r.line_id,
            "principal_cents": r.principal_cents,
            "apr": r.apr,
            "penalty_apr": r.penalty_apr,
            "term": r.term,
            "method": r.method,
            "start_date": r.start_date.isoformat(),
            "timezone": r.timezone,
        }
        out[r.id] = _loan_payload(r.id, audit.content_hash(terms))
    return out


def _repayment_payload(record: Mapping[str, Any]) -> str:
    return audit.content_hash(
        {
            "id": record["id"],
            "loan_id": record["loan_id"],
            "amount_cents": record["amount_cents"],
            "paid_on": record["paid_on"].isoformat(),
            "mode": record["mode"],
            "allocation": record["allocation"],
        }
    )


def _repayment_hashes(conn: sa.Connection, ids: list[str]) -> Mapping[str, str]:
    rows = conn.execute(sa.select(loan_repayments).where(loan_repayments.c.id.in_(ids))).mappings().all()
    return {r["id"]: _repayment_payload(dict(r)) for r in rows}


_CONTACT_FIELDS = (
    "id",
    "loan_id",
    "customer_id",
    "channel",
    "party",
    "dpd",
    "bucket",
    "collector",
    "allowed",
    "refusal",
)


def _contact_payload(record: Mapping[str, Any]) -> str:
    payload = {k: record[k] for k in _CONTACT_FIELDS}
    payload["attempted_at"] = audit.timestamp_text(record["attempted_at"])
    payload["local_date"] = record["local_date"].isoformat()
    payload["result"] = record["result"]
    return audit.content_hash(payload)


def _contact_hashes(conn: sa.Connection, ids: list[str]) -> Mapping[str, str]:
    rows = conn.execute(sa.select(collection_contacts).where(collection_contacts.c.id.in_(ids))).mappings().all()
    return {r["id"]: _contact_payload(dict(r)) for r in rows}
