"""Post-loan features per customer, columnar: what event triggers and the daily early-warning scan read.

The same function serves one customer (an event trigger, rows of that customer only) and the whole book (the
daily scan), so a trigger means the same thing in both places. Features are registered in
``fengkong.features.registry`` (group ``loan``); a policy names them in ``triggers:`` like any other feature.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from fengkong.loans.delinquency import bucket_expr, dpd_frame

FORBIDDEN_PAYEES = ("lender", "securities", "property")  # consumer credit may not fund these (nor re-lending)
LOAN_FEATURES = (
    "loan_active_count",
    "loan_outstanding",
    "loan_dpd",
    "loan_max_dpd",
    "loan_bucket",
    "loan_missed_first_payment",
    "loan_new_loans_30d",
    "loan_proceeds_forbidden_share_30d",
    *(f"loan_proceeds_{category}_share_30d" for category in FORBIDDEN_PAYEES),
    "loan_utilisation",
    "loan_utilisation_change_30d",
    "loan_income_change",
)
RECENT_DAYS = 30
INCOME_DAYS = 365  # an income verified more than a year ago says nothing about now

TRANSFER_SCHEMA = {"customer_id": pl.String, "on": pl.Date, "amount": pl.Float64, "payee_category": pl.String}
REPAYMENT_SCHEMA = {"loan_id": pl.String, "paid_on": pl.Date, "principal_cents": pl.Int64}
LINE_SCHEMA = {
    "customer_id": pl.String,
    "line_id": pl.String,
    "status": pl.String,
    "limit": pl.Float64,
    "opened_on": pl.Date,
    "opening_income": pl.Float64,
}
INCOME_SCHEMA = {"customer_id": pl.String, "on": pl.Date, "monthly_income": pl.Float64}


def customer_features(
    loans: pl.DataFrame,
    instalments: pl.DataFrame,
    transfers: pl.DataFrame,
    as_of: dt.date,
    *,
    repayments: pl.DataFrame | None = None,
    lines: pl.DataFrame | None = None,
    incomes: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per customer with a loan started on or before ``as_of``; columns ``customer_id`` + LOAN_FEATURES.

    ``loans``: loan_id, customer_id, start_date, status, status_on, principal_cents (and line_id for the
    utilisation features); ``instalments``: loan_id, period, due_date, paid_on, principal_cents,
    principal_paid_cents; ``transfers``: customer_id, on (local date), amount, payee_category (transfer_out
    events); ``repayments`` (REPAYMENT_SCHEMA): the principal part of each repayment and its day; ``lines``
    (LINE_SCHEMA): the customer's credit lines; ``incomes`` (INCOME_SCHEMA): incomes verified after opening
    (bureau_update events). Features that need a missing table are missing."""
    t = pl.lit(as_of, dtype=pl.Date)
    started = loans.lazy().filter(pl.col("start_date") <= t)
    per_loan = dpd_frame(instalments.lazy(), started, as_of)
    unpaid = (
        instalments.lazy()
        .group_by("loan_id")
        .agg((pl.col("principal_cents") - pl.col("principal_paid_cents")).sum().alias("principal_due"))
    )
    on_book = (
        per_loan.join(unpaid, on="loan_id", how="left")
        .group_by("customer_id")
        .agg(
            pl.len().cast(pl.Float64).alias("loan_active_count"),
            (pl.col("principal_due").fill_null(0).sum() / 100).alias("loan_outstanding"),
            pl.col("dpd").max().cast(pl.Float64).alias("loan_dpd"),
            pl.col("missed_first").any().alias("loan_missed_first_payment"),
        )
    )
    # worst DPD ever reached, also over loans since paid off
    ever = (
        dpd_frame(
            instalments.lazy(),
            started.with_columns(pl.lit("active").alias("status"), pl.lit(None, dtype=pl.Date).alias("status_on")),
            as_of,
        )
        .group_by("customer_id")
        .agg(pl.col("max_dpd").max().cast(pl.Float64).alias("loan_max_dpd"))
    )
    recent_from = as_of - dt.timedelta(days=RECENT_DAYS)
    recent = (
        started.filter(pl.col("start_date") > pl.lit(recent_from, dtype=pl.Date))
        .group_by("customer_id")
        .agg(
            pl.len().cast(pl.Float64).alias("loan_new_loans_30d"),
            (pl.col("principal_cents").sum() / 100).alias("recent_principal"),
            pl.col("start_date").min().alias("recent_first_start"),
        )
    )
    moved = (
        transfers.lazy()
        .filter(pl.col("payee_category").is_in(FORBIDDEN_PAYEES) & (pl.col("on") <= t))
        .join(recent.select("customer_id", "recent_first_start"), on="customer_id", how="inner")
        .filter(pl.col("on") >= pl.col("recent_first_start"))
        .group_by("customer_id")
        .agg(
            pl.col("amount").sum().alias("moved"),
            *(
                pl.col("amount").filter(pl.col("payee_category") == c).sum().alias(f"moved_{c}")
                for c in FORBIDDEN_PAYEES
            ),
        )
    )

    def share(column: str) -> pl.Expr:  # of the recent principal, at most 1; missing without a recent loan
        return (
            pl.when(pl.col("recent_principal") > 0)
            .then(pl.min_horizontal(pl.col(column).fill_null(0.0) / pl.col("recent_principal"), pl.lit(1.0)))
            .otherwise(None)
        )

    customers = started.select("customer_id").unique()
    return (
        customers.join(on_book, on="customer_id", how="left")
        .join(ever, on="customer_id", how="left")
        .join(recent, on="customer_id", how="left")
        .join(moved, on="customer_id", how="left")
        .join(_usage(started, repayments, lines, as_of), on="customer_id", how="left")
        .join(_income_change(lines, incomes, as_of), on="customer_id", how="left")
        .with_columns(
            pl.col("loan_active_count").fill_null(0.0),
            pl.col("loan_outstanding").fill_null(0.0),
            pl.col("loan_dpd").fill_null(0.0),
            pl.col("loan_max_dpd").fill_null(0.0),
            pl.col("loan_missed_first_payment").fill_null(False),
            pl.col("loan_new_loans_30d").fill_null(0.0),
            share("moved").alias("loan_proceeds_forbidden_share_30d"),
            *(share(f"moved_{c}").alias(f"loan_proceeds_{c}_share_30d") for c in FORBIDDEN_PAYEES),
        )
        .with_columns(bucket_expr(pl.col("loan_dpd")).alias("loan_bucket"))
        .select("customer_id", *LOAN_FEATURES)
        .sort("customer_id")
        .collect()
    )


def _usage(
    loans: pl.LazyFrame, repayments: pl.DataFrame | None, lines: pl.DataFrame | None, as_of: dt.date
) -> pl.LazyFrame:
    """customer_id, loan_utilisation, loan_utilisation_change_30d: principal drawn on the customer's credit lines
    and not yet repaid, over their limits (lines active or frozen), now and its change over 30 days (both measured
    against today's limits, so a limit cut does not read as borrowing)."""
    empty = pl.LazyFrame(
        schema={"customer_id": pl.String, "loan_utilisation": pl.Float64, "loan_utilisation_change_30d": pl.Float64}
    )
    if lines is None or lines.is_empty() or repayments is None or "line_id" not in loans.collect_schema().names():
        return empty
    before = as_of - dt.timedelta(days=RECENT_DAYS)
    on_lines = loans.filter(pl.col("line_id").is_not_null())

    def drawn(day: dt.date, name: str) -> pl.LazyFrame:
        d = pl.lit(day, dtype=pl.Date)
        repaid = (
            repayments.lazy()
            .filter(pl.col("paid_on") <= d)
            .group_by("loan_id")
            .agg(pl.col("principal_cents").sum().alias("repaid"))
        )
        left_book = pl.col("status").is_in(("paid_off", "closed")) & (pl.col("status_on") <= d)
        return (
            on_lines.filter((pl.col("start_date") <= d) & ~left_book.fill_null(False))
            .join(repaid, on="loan_id", how="left")
            .group_by("customer_id")
            .agg(((pl.col("principal_cents") - pl.col("repaid").fill_null(0)).sum() / 100).alias(name))
        )

    limits = (
        lines.lazy()
        .filter(pl.col("status").is_in(("active", "frozen")))
        .group_by("customer_id")
        .agg(pl.col("limit").sum().alias("limit"))
        .filter(pl.col("limit") > 0)
    )
    return (
        limits.join(drawn(as_of, "now"), on="customer_id", how="left")
        .join(drawn(before, "then"), on="customer_id", how="left")
        .select(
            "customer_id",
            (pl.col("now").fill_null(0.0) / pl.col("limit")).alias("loan_utilisation"),
            ((pl.col("now").fill_null(0.0) - pl.col("then").fill_null(0.0)) / pl.col("limit")).alias(
                "loan_utilisation_change_30d"
            ),
        )
    )


def _income_change(lines: pl.DataFrame | None, incomes: pl.DataFrame | None, as_of: dt.date) -> pl.LazyFrame:
    """customer_id, loan_income_change: the latest income verified in the last year (bureau_update events), against
    the income declared when the customer's oldest line still open (active or frozen) was opened (-0.4: down 40 %)."""
    empty = pl.LazyFrame(schema={"customer_id": pl.String, "loan_income_change": pl.Float64})
    if lines is None or incomes is None or lines.is_empty() or incomes.is_empty():
        return empty
    t = pl.lit(as_of, dtype=pl.Date)
    base = (
        lines.lazy()
        .filter((pl.col("opening_income") > 0) & pl.col("status").is_in(("active", "frozen")))
        .group_by("customer_id")
        .agg(
            pl.col("opening_income").sort_by("opened_on").first().alias("base"),
            pl.col("opened_on").min().alias("opened_on"),
        )
    )
    latest = (
        incomes.lazy()
        .filter(
            pl.col("monthly_income").is_not_null()
            & (pl.col("on") <= t)
            & (pl.col("on") > pl.lit(as_of - dt.timedelta(days=INCOME_DAYS), dtype=pl.Date))
        )
        .group_by("customer_id")
        .agg(
            pl.col("monthly_income").sort_by("on").last().alias("latest"),
            pl.col("on").max().alias("latest_on"),
        )
    )
    return (
        base.join(latest, on="customer_id", how="inner")
        .filter(pl.col("latest_on") >= pl.col("opened_on"))
        .select("customer_id", (pl.col("latest") / pl.col("base") - 1).alias("loan_income_change"))
    )


def no_loans() -> dict[str, object]:
    """The features of a customer without any loan: counts 0, nothing past due, shares missing."""
    return {
        "loan_active_count": 0.0,
        "loan_outstanding": 0.0,
        "loan_dpd": 0.0,
        "loan_max_dpd": 0.0,
        "loan_bucket": "current",
        "loan_missed_first_payment": False,
        "loan_new_loans_30d": 0.0,
        "loan_proceeds_forbidden_share_30d": None,
        **{f"loan_proceeds_{category}_share_30d": None for category in FORBIDDEN_PAYEES},
        "loan_utilisation": None,
        "loan_utilisation_change_30d": None,
        "loan_income_change": None,
    }
