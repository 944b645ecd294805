"""Days past due, buckets and roll rates, as of any date: one loan in Python, a whole book in polars.

Definitions (docs/loans.md):

- an instalment is **paid** as of a date when its interest and principal were paid in full on or before that
  date (``paid_on <= as_of``); unpaid penalty interest alone does not make a loan past due;
- **days past due** (DPD) as of a date = days from the due date of the oldest instalment unpaid at the end of
  that date: an instalment due on 31 March and unpaid is 0 DPD on 31 March, 1 DPD on 1 April, 29 on 29 April;
- **buckets**: ``current`` (0), ``M1`` (1–30), ``M2`` (31–60), ``M3`` (61–90), ``M3+`` (more than 90);
- **max DPD** as of a date = the worst DPD the loan reached on any day up to then;
- a loan is **on book** as of a date from its start date until the day it is paid off or closed (a written-off
  loan stays on book: it is still owed and worked by collections);
- **roll rates** from date A to date B: for the loans on book at A, the share in each bucket at A that is in each
  bucket at B, or has left the book (``paid_off``, ``closed``) by B. Counts of loans, not balances.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import polars as pl

BUCKETS = ("current", "M1", "M2", "M3", "M3+")
EXITS = ("paid_off", "closed")
ROLL_TARGETS = BUCKETS + EXITS
_BOOK_EXITS = ("paid_off", "closed")


def bucket_of(dpd: int) -> str:
    if dpd <= 0:
        return "current"
    if dpd <= 30:
        return "M1"
    if dpd <= 60:
        return "M2"
    if dpd <= 90:
        return "M3"
    return "M3+"


def bucket_expr(dpd: pl.Expr) -> pl.Expr:
    return (
        pl.when(dpd <= 0)
        .then(pl.lit("current"))
        .when(dpd <= 30)
        .then(pl.lit("M1"))
        .when(dpd <= 60)
        .then(pl.lit("M2"))
        .when(dpd <= 90)
        .then(pl.lit("M3"))
        .otherwise(pl.lit("M3+"))
    )


def loan_dpd(instalments: Iterable[tuple[dt.date, dt.date | None]], as_of: dt.date) -> int:
    """DPD of one loan from its (due_date, paid_on) pairs."""
    ages = [(as_of - due).days for due, paid in instalments if due < as_of and (paid is None or paid > as_of)]
    return max(ages, default=0)


def loan_max_dpd(instalments: Iterable[tuple[dt.date, dt.date | None]], as_of: dt.date) -> int:
    """The worst DPD the loan reached on any day up to ``as_of``."""
    worst = 0
    for due, paid in instalments:
        if due >= as_of:
            continue
        end = as_of if paid is None or paid > as_of else paid
        worst = max(worst, (end - due).days)
    return worst


def on_book(start: dt.date, status: str, status_on: dt.date | None, as_of: dt.date) -> bool:
    return start <= as_of and not (status in _BOOK_EXITS and status_on is not None and status_on <= as_of)


# ------------------------------------------------------------------------------------------------ columnar

INSTALMENT_SCHEMA = {"loan_id": pl.String, "due_date": pl.Date, "paid_on": pl.Date}
LOAN_SCHEMA = {
    "loan_id": pl.String,
    "customer_id": pl.String,
    "start_date": pl.Date,
    "status": pl.String,
    "status_on": pl.Date,
}


def _lazy(frame: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


def dpd_frame(
    instalments: pl.DataFrame | pl.LazyFrame, loans: pl.DataFrame | pl.LazyFrame, as_of: dt.date
) -> pl.LazyFrame:
    """One row per loan on book at ``as_of``: loan_id, customer_id, dpd, max_dpd, bucket, missed_first.

    ``instalments`` needs loan_id, due_date, paid_on (and period for ``missed_first``: the first instalment was not
    paid by its due date); ``loans`` needs loan_id, customer_id, start_date, status, status_on."""
    t = pl.lit(as_of, dtype=pl.Date)
    due, paid = pl.col("due_date"), pl.col("paid_on")
    age = (t - due).dt.total_days()
    reached = (pl.min_horizontal(paid.fill_null(t), t) - due).dt.total_days()
    cols = _lazy(instalments).collect_schema().names()
    aggs = [
        pl.when(paid.is_null() | (paid > t)).then(age).max().fill_null(0).alias("dpd"),
        reached.max().clip(lower_bound=0).alias("max_dpd"),
    ]
    if "period" in cols:
        first_missed = (pl.col("period") == 1) & (paid.is_null() | (paid > due))
        aggs.append(first_missed.any().alias("missed_first"))
    else:
        aggs.append(pl.lit(False).alias("missed_first"))
    per_loan = _lazy(instalments).filter(due < t).group_by("loan_id").agg(aggs)
    book = _lazy(loans).filter(
        (pl.col("start_date") <= t)
        & ~(pl.col("status").is_in(_BOOK_EXITS) & pl.col("status_on").is_not_null() & (pl.col("status_on") <= t))
    )
    return (
        book.select("loan_id", "customer_id", "status")
        .join(per_loan, on="loan_id", how="left")
        .with_columns(
            pl.col("dpd").fill_null(0).cast(pl.Int32),
            pl.col("max_dpd").fill_null(0).cast(pl.Int32),
            pl.col("missed_first").fill_null(False),
        )
        .with_columns(bucket_expr(pl.col("dpd")).alias("bucket"))
    )


def bucket_summary(dpd: pl.DataFrame) -> list[dict[str, Any]]:
    counts = dict(dpd.group_by("bucket").len().iter_rows())
    total = dpd.height
    return [
        {"bucket": b, "loans": int(counts.get(b, 0)), "share": (counts.get(b, 0) / total) if total else 0.0}
        for b in BUCKETS
    ]


@dataclass(frozen=True, slots=True)
class RollRates:
    start: dt.date
    end: dt.date
    counts: dict[str, dict[str, int]]

    @property
    def rates(self) -> dict[str, dict[str, float]]:
        out = {}
        for source, row in self.counts.items():
            total = sum(row.values())
            out[source] = {target: (n / total if total else 0.0) for target, n in row.items()}
        return out

    def forward(self) -> dict[str, float | None]:
        """The headline rolls a collections team tracks: the share of each bucket that rolled one bucket worse
        (current→M1, M1→M2, M2→M3, M3→M3+); None for a bucket that held no loan."""
        out: dict[str, float | None] = {}
        for source, target in itertools.pairwise(BUCKETS):
            total = sum(self.counts[source].values())
            out[f"{source}->{target}"] = self.counts[source][target] / total if total else None
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "from_states": list(BUCKETS),
            "to_states": list(ROLL_TARGETS),
            "loans": sum(sum(r.values()) for r in self.counts.values()),
            "counts": self.counts,
            "rates": self.rates,
            "forward": self.forward(),
        }


def roll_rates(
    instalments: pl.DataFrame | pl.LazyFrame, loans: pl.DataFrame | pl.LazyFrame, start: dt.date, end: dt.date
) -> RollRates:
    """The bucket×bucket transition matrix of the loans on book at ``start``, seen again at ``end``."""
    inst, book = _lazy(instalments), _lazy(loans)
    before = dpd_frame(inst, book, start).select("loan_id", pl.col("bucket").alias("from"))
    after = dpd_frame(inst, book, end).select("loan_id", pl.col("bucket").alias("on_book_bucket"))
    exits = book.select(
        "loan_id",
        pl.when(pl.col("status").is_in(_BOOK_EXITS) & (pl.col("status_on") <= pl.lit(end, dtype=pl.Date)))
        .then(pl.col("status"))
        .otherwise(None)
        .alias("exit"),
    )
    moved = (
        before.join(after, on="loan_id", how="left")
        .join(exits, on="loan_id", how="left")
        .select("from", pl.coalesce("on_book_bucket", "exit").alias("to"))
        .group_by("from", "to")
        .len()
        .collect()
    )
    counts = {b: dict.fromkeys(ROLL_TARGETS, 0) for b in BUCKETS}
    for source, target, n in moved.iter_rows():
        counts[source][target] = int(n)
    return RollRates(start, end, counts)
