"""Post-loan features per customer, columnar: what event triggers and the daily early-warning scan read.

The same function serves one customer (an event trigger, rows of that customer only) and the whole book (the
daily scan), so a trigger means the same thing in both places. Features are registered in
``fengkong.features.registry`` (group ``loan``); a policy names them in ``triggers:`` like any other feature.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from fengkong.loans.delinquency import bucket_expr, dpd_frame

LOAN_FEATURES = (
    "loan_active_count",
    "loan_outstanding",
    "loan_dpd",
    "loan_max_dpd",
    "loan_bucket",
    "loan_missed_first_payment",
    "loan_new_loans_30d",
    "loan_proceeds_forbidden_share_30d",
)
FORBIDDEN_PAYEES = ("lender", "securities", "property")  # consumer credit may not fund these (nor re-lending)
RECENT_DAYS = 30

TRANSFER_SCHEMA = {"customer_id": pl.String, "on": pl.Date, "amount": pl.Float64, "payee_category": pl.String}


def customer_features(
    loans: pl.DataFrame, instalments: pl.DataFrame, transfers: pl.DataFrame, as_of: dt.date
) -> pl.DataFrame:
    """One row per customer with a loan started on or before ``as_of``; columns ``customer_id`` + LOAN_FEATURES.

    ``loans``: loan_id, customer_id, start_date, status, status_on, principal_cents; ``instalments``: loan_id,
    period, due_date, paid_on, principal_cents, principal_paid_cents; ``transfers``: customer_id, on (local
    date), amount, payee_category (transfer_out events)."""
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
        .agg(pl.col("amount").sum().alias("moved"))
    )
    customers = started.select("customer_id").unique()
    return (
        customers.join(on_book, on="customer_id", how="left")
        .join(ever, on="customer_id", how="left")
        .join(recent, on="customer_id", how="left")
        .join(moved, on="customer_id", how="left")
        .with_columns(
            pl.col("loan_active_count").fill_null(0.0),
            pl.col("loan_outstanding").fill_null(0.0),
            pl.col("loan_dpd").fill_null(0.0),
            pl.col("loan_max_dpd").fill_null(0.0),
            pl.col("loan_missed_first_payment").fill_null(False),
            pl.col("loan_new_loans_30d").fill_null(0.0),
            pl.when(pl.col("recent_principal") > 0)
            .then(pl.min_horizontal(pl.col("moved").fill_null(0.0) / pl.col("recent_principal"), pl.lit(1.0)))
            .otherwise(None)
            .alias("loan_proceeds_forbidden_share_30d"),
        )
        .with_columns(bucket_expr(pl.col("loan_dpd")).alias("loan_bucket"))
        .select("customer_id", *LOAN_FEATURES)
        .sort("customer_id")
        .collect()
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
    }
