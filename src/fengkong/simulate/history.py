"""A synthetic table of historical credit applications with realised outcomes, for policy simulation.

``history_frame(rows, seed)`` returns one row per past application: every feature the bundled policy reads
(applicant, identity, bureau, velocity, graph and list features, with nulls where a value was not known), a few
segment columns (``channel``, ``region``, ``application_month``, ``income_band``) and the realised outcome
``bad``: 1 went bad (e.g. 90+ days past due within 12 months), 0 good, null when the loan was never booked (the
application was declined at the time) or has not matured yet (booked in the last months of the window).

Outcomes are drawn from a hidden probability of default that rises with debt, inquiries, delinquency, links to
fraud and a thin file, so a stricter policy really does book fewer bad loans. Everything is a function of
``rows`` and ``seed`` (numpy's PCG64); the wall clock is never read.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from fengkong.features.registry import EMPLOYMENT_TYPES

EMPLOYMENT_P = (0.55, 0.12, 0.08, 0.12, 0.04, 0.05, 0.04)  # in EMPLOYMENT_TYPES order
AMOUNTS = (3000, 5000, 10000, 20000, 30000, 50000, 80000, 100000, 200000)
AMOUNTS_P = (0.08, 0.15, 0.22, 0.2, 0.12, 0.12, 0.05, 0.04, 0.02)
CHANNELS = ("app", "partner", "web")
CHANNELS_P = (0.6, 0.3, 0.1)
REGIONS = ("east", "south", "north", "west", "central")
REGIONS_P = (0.3, 0.25, 0.2, 0.1, 0.15)
MONTHS = tuple(f"2025-{m:02d}" for m in range(1, 13))
MATURED_MONTHS = 9  # applications of the first nine months have a 12-month outcome at the end of the window


def history_frame(rows: int, seed: int = 20261108) -> pl.DataFrame:
    """``rows`` historical applications with features, segments and the realised outcome ``bad``."""
    rng = np.random.default_rng(seed)
    n = rows
    age = np.clip(np.rint(rng.normal(36, 10.5, n)), 16, 75)
    income = np.round(rng.lognormal(9.05, 0.6, n), -2)
    rich = rng.random(n) < 0.005
    income[rich] = np.round(rng.uniform(100_000, 300_000, int(rich.sum())), -3)
    employment = rng.choice(np.array(EMPLOYMENT_TYPES), size=n, p=EMPLOYMENT_P)
    months = np.floor(rng.exponential(40, n))
    months[(rng.random(n) < 0.10) | np.isin(employment, ("student", "unemployed"))] = np.nan
    requested = rng.choice(np.array(AMOUNTS, dtype=float), size=n, p=AMOUNTS_P)
    requested[rng.random(n) < 0.15] = np.nan

    id_state = rng.random(n)  # ~1% sent only an ID hash (validity unknown), 0.5% a bad check digit
    id_known = id_state >= 0.01
    id_valid = id_state >= 0.015
    id_gap = np.where(rng.random(n) < 0.02, rng.choice([2.0, 3.0, 4.0], n), 0.0)
    id_gap[id_state < 0.015] = np.nan
    has_device = rng.random(n) >= 0.03

    bureau_hit = rng.random(n) >= 0.06
    inq90 = rng.poisson(3.0, n).astype(float)
    heavy = rng.random(n) < 0.05  # multi-head borrowers (多头借贷)
    inq90[heavy] = rng.integers(10, 40, int(heavy.sum()))
    inq30 = rng.binomial(inq90.astype(np.int64), 0.4).astype(float)
    inq7 = rng.binomial(inq30.astype(np.int64), 0.3).astype(float)
    loans = rng.poisson(1.5, n).astype(float)
    many = rng.random(n) < 0.03
    loans[many] = rng.integers(6, 15, int(many.sum()))
    debt = np.round(loans * rng.lognormal(9.6, 0.8, n), 2)
    u = rng.random(n)
    dpd = np.select(
        [u < 0.85, u < 0.93, u < 0.97],
        [np.zeros(n), rng.integers(1, 30, n), rng.integers(30, 90, n)],
        rng.integers(90, 365, n),
    ).astype(float)
    growth_inq = np.where(heavy, rng.integers(0, 12, n), rng.poisson(0.5, n)).astype(float)
    growth_loans = np.where(heavy | many, rng.integers(0, 6, n), rng.poisson(0.2, n)).astype(float)
    no_update = rng.random(n) < 0.5  # no bureau update in the window: the change windows are missing
    growth_inq[no_update] = np.nan
    growth_loans[no_update] = np.nan
    for column in (inq90, inq30, inq7, loans, debt, dpd, growth_inq, growth_loans):
        column[~bureau_hit] = np.nan

    ring = rng.random(n) < 0.01  # fraud-ring members share devices and cards and sit near a known fraudster

    def counts(values: tuple[float, ...], p: tuple[float, ...]) -> np.ndarray:
        return rng.choice(np.array(values, dtype=float), size=n, p=p)

    # velocity: families share a phone or a handset (2-3 customers), rings share much more
    device_customers = np.where(ring, rng.integers(2, 9, n).astype(float), counts((1, 2, 3), (0.9, 0.08, 0.02)))
    card_customers = np.where(ring, rng.integers(1, 5, n).astype(float), counts((1, 2), (0.98, 0.02)))
    card_customers[rng.random(n) < 0.2] = np.nan  # no bank card given
    phone_customers = counts((1, 2, 3, 4), (0.88, 0.09, 0.02, 0.01))
    device_apps = np.where(ring, rng.integers(1, 7, n).astype(float), counts((1, 2, 3, 4), (0.9, 0.08, 0.015, 0.005)))
    id_apps = counts((1, 2, 3, 5), (0.88, 0.09, 0.02, 0.01))
    ip_apps = np.where(ring, rng.integers(1, 30, n), rng.integers(1, 6, n)).astype(float)
    for column in (device_customers, device_apps):
        column[~has_device] = np.nan
    hops = np.full(n, np.nan)
    near = ring | (rng.random(n) < 0.02)
    hops[near] = rng.choice([0.0, 1.0, 2.0, 3.0, 4.0], int(near.sum()), p=[0.1, 0.3, 0.3, 0.2, 0.1])
    blacklist = rng.random(n) < 0.003
    watchlist = rng.random(n) < 0.01
    protected = rng.random(n) < 0.002

    # the hidden probability of default, and the applications booked and matured at the time
    dti = debt / (12 * income)
    logit = (
        -3.3
        + 0.9 * np.nan_to_num(np.minimum(dti, 3.0), nan=0.6)
        + 0.06 * np.nan_to_num(np.minimum(inq30, 20), nan=3.0)
        + 1.2 * np.nan_to_num(dpd >= 30, nan=0.5)
        + 0.5 * (income < 4000)
        + 0.4 * np.isin(employment, ("freelance", "student", "unemployed"))
        - 0.3 * np.nan_to_num(np.minimum(months, 60) / 60, nan=0.0)
        + 0.8 * ~bureau_hit
        + 2.0 * ring
        + 0.8 * (np.nan_to_num(hops, nan=9.0) <= 2)
    )
    true_pd = 1.0 / (1.0 + np.exp(-logit))
    went_bad = rng.random(n) < true_pd
    # the lender at the time: a looser, older policy with its own noise (some of today's declines were booked)
    hard_fail = (
        (age < 18)
        | (age > 65)
        | np.isin(employment, ("student", "unemployed"))
        | (income < 1500)
        | (np.nan_to_num(dpd) >= 120)
        | blacklist
    )
    booked = ~hard_fail & (rng.random(n) < np.where(true_pd < 0.15, 0.9, 0.5))
    month_index = rng.integers(0, len(MONTHS), n)
    matured = booked & (month_index < MATURED_MONTHS)

    frame = pl.DataFrame(
        {
            "application_month": np.array(MONTHS)[month_index],
            "channel": rng.choice(np.array(CHANNELS), size=n, p=CHANNELS_P),
            "region": rng.choice(np.array(REGIONS), size=n, p=REGIONS_P),
            "age": age,
            "monthly_income": income,
            "employment": employment,
            "employment_months": months,
            "requested_amount": requested,
            "id_number_valid": id_valid,
            "id_age_gap": id_gap,
            "has_device_id": has_device,
            "bureau_hit": bureau_hit,
            "bureau_inquiries_7d": inq7,
            "bureau_inquiries_30d": inq30,
            "bureau_inquiries_90d": inq90,
            "bureau_active_loans": loans,
            "bureau_total_debt": debt,
            "bureau_worst_dpd": dpd,
            "bureau_inquiries_30d_growth_90d": growth_inq,
            "bureau_active_loans_growth_90d": growth_loans,
            "device_applications_24h": device_apps,
            "device_distinct_customers_30d": device_customers,
            "bank_card_distinct_customers_30d": card_customers,
            "phone_distinct_customers_30d": phone_customers,
            "id_number_applications_30d": id_apps,
            "ip_applications_1h": ip_apps,
            "graph_hops_to_fraud": hops,
            "list_blacklist_hit": blacklist,
            "list_watchlist_hit": watchlist,
            "customer_protected": protected,
            "bad": went_bad,
            "_id_known": id_known,
            "_matured": matured,
        }
    )
    number = [c for c, t in frame.schema.items() if t == pl.Float64]
    return (
        frame.with_columns(pl.col(number).fill_nan(None))
        .with_columns(
            (pl.col("requested_amount") / pl.col("monthly_income")).alias("request_to_income"),
            (pl.col("bureau_total_debt") / (12 * pl.col("monthly_income"))).alias("debt_to_income"),
            pl.when(pl.col("_id_known")).then(pl.col("id_number_valid")).alias("id_number_valid"),
            pl.when(pl.col("_matured")).then(pl.col("bad").cast(pl.Int8)).alias("bad"),
            pl.when(pl.col("monthly_income") < 5000)
            .then(pl.lit("<5k"))
            .when(pl.col("monthly_income") < 10000)
            .then(pl.lit("5k-10k"))
            .when(pl.col("monthly_income") < 20000)
            .then(pl.lit("10k-20k"))
            .otherwise(pl.lit("20k+"))
            .alias("income_band"),
        )
        .drop("_id_known", "_matured")
    )
