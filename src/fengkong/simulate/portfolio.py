"""A synthetic portfolio of live credit lines with ground truth, for line review tests, simulation and benchmarks.

``portfolio_frame(rows, seed, as_of)`` gives one row per line with every column a line review reads
(``fengkong.lines.strategy.LINE_COLUMNS`` and the behaviour features) and the truth ``bad_next_12m``: 1 if the
line went 90+ days past due in the following 12 months, 0 if it performed well. Outcomes are drawn from a hidden
probability of default that rises with delinquency, utilisation, multi-head growth, income loss and risk events,
so a strategy that restricts lines can be scored on the bad lines it caught AND on the good ones it hurt.
Everything is a function of ``rows``, ``seed`` and ``as_of`` (numpy's PCG64); the wall clock is never read.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

AS_OF = dt.date(2026, 11, 23)


def portfolio_frame(rows: int, seed: int = 20261123, as_of: dt.date = AS_OF) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = rows
    limit = rng.choice(np.array([2000.0, 5000.0, 8000.0, 10000.0, 15000.0, 20000.0, 35000.0, 50000.0]), n)
    utilisation = np.clip(rng.beta(1.2, 2.0, n), 0, 1)
    utilisation[rng.random(n) < 0.2] = 0.0
    outstanding = np.round(limit * utilisation, 2)
    months = rng.integers(0, 48, n)
    troubled = rng.random(n) < 0.08
    dpd = np.where(troubled, rng.choice(np.array([0, 3, 10, 20, 45, 75, 120]), n), 0)
    max_dpd = np.maximum(dpd, np.where(rng.random(n) < 0.1, rng.choice(np.array([1, 5, 20, 40]), n), 0))
    missed = np.where(max_dpd > 0, rng.integers(1, 4, n), 0)
    growth = np.clip(np.rint(rng.normal(0.5, 2.0, n)), -3, None)
    surging = rng.random(n) < 0.04
    growth[surging] += rng.integers(5, 12, int(surging.sum()))
    income_change = np.round(rng.normal(0.02, 0.15, n), 3)
    dropped = rng.random(n) < 0.05
    income_change[dropped] = np.round(rng.uniform(-0.7, -0.3, int(dropped.sum())), 3)
    unknown_income = rng.random(n) < 0.1
    risk_events = np.where(rng.random(n) < 0.015, rng.integers(1, 4, n), 0)

    status = np.where(rng.random(n) < 0.03, "frozen", np.where(rng.random(n) < 0.01, "closed", "active"))
    due_days = rng.integers(-20, 30, n)
    review_due = np.where(status == "frozen", due_days, 0)
    increased = rng.random(n) < 0.15
    last_increase = np.where(increased, rng.integers(1, 365, n), 0)
    decreases = np.where(rng.random(n) < 0.05, rng.integers(1, 3, n), 0)
    ever_restricted = (decreases > 0) | (status != "active") | (rng.random(n) < 0.03)

    logit = (
        -4.2
        + 0.035 * np.minimum(dpd, 120)
        + 0.02 * max_dpd
        + 1.6 * utilisation
        + 0.22 * np.maximum(growth, 0)
        - 2.5 * np.minimum(np.where(unknown_income, 0.0, income_change), 0)
        + 0.9 * risk_events
        - 0.02 * months
    )
    bad = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)

    as_of_days = (as_of - dt.date(1970, 1, 1)).days
    return pl.DataFrame(
        {
            "line_id": [f"line_{i:08d}" for i in range(n)],
            "customer_id": [f"cust_{i:08d}" for i in range(n)],
            "status": status,
            "limit": limit,
            "outstanding": outstanding,
            "review_due_on": pl.Series(as_of_days + review_due.astype(np.int64)).cast(pl.Date),
            "last_increase_on": pl.Series(as_of_days - last_increase.astype(np.int64)).cast(pl.Date),
            "decreases_in_window": decreases.astype(np.int64),
            "ever_restricted": ever_restricted,
            "line_months_on_book": months.astype(np.float64),
            "line_days_past_due": dpd.astype(np.float64),
            "line_max_dpd_12m": max_dpd.astype(np.float64),
            "line_missed_payments_12m": missed.astype(np.float64),
            "line_inquiries_growth": growth,
            "line_income_change": np.where(unknown_income, np.nan, income_change),
            "line_risk_events_30d": risk_events.astype(np.float64),
            "bad_next_12m": bad,
        }
    ).with_columns(
        pl.when(pl.col("status") == "frozen").then(pl.col("review_due_on")).otherwise(None).alias("review_due_on"),
        pl.when(pl.lit(pl.Series(increased)))
        .then(pl.col("last_increase_on"))
        .otherwise(None)
        .alias("last_increase_on"),
        pl.col("line_income_change").fill_nan(None),
    )
