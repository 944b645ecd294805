"""Delinquency benchmark: days past due, buckets and roll rates for a whole loan book, columnar, beside the plain
row-by-row way measured in the same run.

    .venv/bin/python benchmarks/delinquency.py [--loans N] [--sample N] [--seed N]

Generates ``--loans`` loans (terms of 3, 6, 12 or 24 months, equal instalments, started over the two years before
the as-of date) and their instalment table: most instalments paid on time, some late by up to four months, some
never. Then, with ``fengkong.loans.delinquency`` (polars, lazy): DPD, max DPD and bucket of every loan on book as
of a date, the count by bucket, and the bucket×bucket roll-rate matrix between that date and 30 days earlier.

The plain ways, on a ``--sample`` of the same loans, timed and extrapolated: a Python loop that walks each loan's
instalments (``loan_dpd`` / ``loan_max_dpd``, the one-loan functions the API uses), and pandas ``groupby().apply``
with the same logic per loan. The columnar answers are checked against the Python loop on the sample.

A script that prints figures, not a timed test: the target is printed beside them, nothing fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import time
from collections import Counter, defaultdict

import numpy as np
import pandas as pd
import polars as pl

import fengkong
from fengkong.loans.delinquency import BUCKETS, bucket_of, bucket_summary, dpd_frame, loan_dpd, loan_max_dpd, roll_rates

TARGET_S = 5.0
AS_OF = dt.date(2026, 11, 30)


def book(n: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    start = pl.Series(np.datetime64(AS_OF) - rng.integers(0, 730, n).astype("timedelta64[D]")).cast(pl.Date)
    term = rng.choice(np.array([3, 6, 12, 24], dtype=np.int32), n, p=[0.2, 0.3, 0.4, 0.1])
    loans = pl.DataFrame(
        {
            "loan_id": pl.int_range(n, eager=True).cast(pl.String),
            "customer_id": pl.Series(rng.integers(0, n * 8 // 10, n)).cast(pl.String),
            "start_date": start,
            "term": term,
        }
    ).with_columns(pl.lit("active").alias("status"), pl.lit(None, dtype=pl.Date).alias("status_on"))
    # a borrower's habit: 85 % pay on time, 11 % pay late, 4 % stop paying at some instalment
    habit = rng.choice(np.array([0, 1, 2], dtype=np.int8), n, p=[0.85, 0.11, 0.04])
    stop_at = rng.integers(1, 25, n)
    inst = (
        loans.select("loan_id", "start_date", "term")
        .with_columns(
            pl.Series("habit", habit),
            pl.Series("stop_at", stop_at),
            pl.int_ranges(1, pl.col("term") + 1).alias("period"),
        )
        .explode("period")
        .with_columns(pl.col("start_date").dt.offset_by(pl.format("{}mo", pl.col("period"))).alias("due_date"))
    )
    m = inst.height
    early = pl.Series(rng.integers(0, 4, m)).cast(pl.Int64)
    late = pl.Series(rng.integers(1, 120, m)).cast(pl.Int64)
    paid = (
        pl.when((pl.col("habit") == 2) & (pl.col("period") >= pl.col("stop_at")))
        .then(None)
        .when(pl.col("habit") == 1)
        .then(pl.col("due_date") + pl.duration(days=late))
        .otherwise(pl.col("due_date") - pl.duration(days=early))
    )
    inst = inst.with_columns(paid.alias("paid_on")).select(
        "loan_id", pl.col("period").cast(pl.Int32), "due_date", "paid_on"
    )
    return loans.drop("term"), inst


def columnar(loans: pl.DataFrame, inst: pl.DataFrame) -> tuple[pl.DataFrame, list[dict[str, object]], object]:
    table = dpd_frame(inst, loans, AS_OF).collect()
    summary = bucket_summary(table)
    rates = roll_rates(inst, loans, AS_OF - dt.timedelta(days=30), AS_OF)
    return table, summary, rates


def python_loop(loans: pl.DataFrame, inst: pl.DataFrame) -> tuple[dict[str, tuple[int, int]], Counter[str], dict]:
    """The plain way: group instalments per loan in Python, walk each loan, count buckets and transitions."""
    by_loan: dict[str, list[tuple[dt.date, dt.date | None]]] = defaultdict(list)
    for loan_id, due, paid in inst.select("loan_id", "due_date", "paid_on").iter_rows():
        by_loan[loan_id].append((due, paid))
    before = AS_OF - dt.timedelta(days=30)
    out: dict[str, tuple[int, int]] = {}
    counts: Counter[str] = Counter()
    rolls: dict[str, Counter[str]] = {b: Counter() for b in BUCKETS}
    for loan_id, start in loans.select("loan_id", "start_date").iter_rows():
        if start > AS_OF:
            continue
        rows = by_loan[loan_id]
        dpd = loan_dpd(rows, AS_OF)
        out[loan_id] = (dpd, loan_max_dpd(rows, AS_OF))
        counts[bucket_of(dpd)] += 1
        if start <= before:
            rolls[bucket_of(loan_dpd(rows, before))][bucket_of(dpd)] += 1
    return out, counts, rolls


def pandas_apply(loans: pd.DataFrame, inst: pd.DataFrame) -> pd.DataFrame:
    """The plain way with pandas: groupby per loan and apply the same logic to each group."""
    as_of = pd.Timestamp(AS_OF)
    before = as_of - pd.Timedelta(days=30)

    def per_loan(g: pd.DataFrame) -> pd.Series:
        def dpd(t: pd.Timestamp) -> int:
            unpaid = g[(g.due_date < t) & (g.paid_on.isna() | (g.paid_on > t))]
            return 0 if unpaid.empty else int((t - unpaid.due_date.min()).days)

        now = dpd(as_of)
        end = g.paid_on.where(g.paid_on.notna() & (g.paid_on <= as_of), as_of)
        reached = ((end - g.due_date).dt.days.where(g.due_date < as_of, 0)).clip(lower=0)
        return pd.Series({"dpd": now, "max_dpd": int(reached.max()), "before": dpd(before)})

    merged = inst.merge(loans[["loan_id", "start_date"]], on="loan_id")
    merged = merged[merged.start_date <= as_of]
    result = merged.groupby("loan_id").apply(per_loan, include_groups=False)
    result["bucket"] = result.dpd.map(bucket_of)
    return result


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loans", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    print("fengkong delinquency benchmark")
    print(
        f"fengkong {fengkong.__version__}, polars {pl.__version__}, pandas {pd.__version__}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, polars threads {pl.thread_pool_size()}"
    )
    print(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}; seed {args.seed}")
    started = time.perf_counter()
    loans, inst = book(args.loans, args.seed)
    print(
        f"generated {loans.height:,} loans and {inst.height:,} instalments in {time.perf_counter() - started:.1f} s "
        f"(as of {AS_OF}; roll rates from {AS_OF - dt.timedelta(days=30)})"
    )

    columnar(loans.head(1000), inst.filter(pl.col("loan_id").is_in(loans.head(1000)["loan_id"].implode())))  # warm
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        table = dpd_frame(inst, loans, AS_OF).collect()
        summary = bucket_summary(table)
        t1 = time.perf_counter()
        rates = roll_rates(inst, loans, AS_OF - dt.timedelta(days=30), AS_OF)
        t2 = time.perf_counter()
        runs.append((t1 - t0, t2 - t1, t2 - t0))
    best = min(runs, key=lambda r: r[2])
    print()
    print(f"fengkong, columnar (polars), best of 3 on {loans.height:,} loans:")
    print(f"  DPD, max DPD and bucket of every loan as of {AS_OF}, count by bucket: {best[0]:.2f} s")
    print(f"  roll-rate matrix (two as-of dates, joined, counted):                  {best[1]:.2f} s")
    print(
        f"  total {best[2]:.2f} s (target ≤ {TARGET_S:.0f} s on 2 cores: {'met' if best[2] <= TARGET_S else 'NOT met'})"
    )
    print(f"  all runs: {', '.join(f'{r[2]:.2f} s' for r in runs)}; peak RSS {rss_mb():,.0f} MB")
    print("  loans by bucket: " + ", ".join(f"{s['bucket']} {s['loans']:,} ({s['share']:.1%})" for s in summary))
    shares = rates.rates
    forward = {"current": "M1", "M1": "M2", "M2": "M3", "M3": "M3+"}
    print("  roll rates forward: " + ", ".join(f"{a}→{b} {shares[a][b]:.1%}" for a, b in forward.items()))

    # the plain ways on a sample of the same loans, extrapolated
    sample_ids = loans.head(args.sample)["loan_id"]
    s_loans = loans.head(args.sample)
    s_inst = inst.filter(pl.col("loan_id").is_in(sample_ids.implode()))
    t0 = time.perf_counter()
    loop, counts, rolls = python_loop(s_loans, s_inst)
    loop_s = time.perf_counter() - t0
    pd_loans = pd.DataFrame(s_loans.select("loan_id", "start_date").to_dict(as_series=False))
    pd_inst = pd.DataFrame(s_inst.to_dict(as_series=False))
    pd_inst["due_date"] = pd.to_datetime(pd_inst.due_date)
    pd_inst["paid_on"] = pd.to_datetime(pd_inst.paid_on)
    pd_loans["start_date"] = pd.to_datetime(pd_loans.start_date)
    t0 = time.perf_counter()
    frame = pandas_apply(pd_loans, pd_inst)
    pandas_s = time.perf_counter() - t0

    # the answers agree: columnar against the Python loop and pandas on the sample
    got = {
        r["loan_id"]: (r["dpd"], r["max_dpd"])
        for r in table.filter(pl.col("loan_id").is_in(sample_ids.implode())).iter_rows(named=True)
    }
    assert got == loop, "columnar and row-by-row DPD disagree"
    assert {k: (int(v.dpd), int(v.max_dpd)) for k, v in frame.iterrows()} == loop, "pandas disagrees"
    small = roll_rates(s_inst, s_loans, AS_OF - dt.timedelta(days=30), AS_OF).counts
    assert all(small[a][b] == rolls[a][b] for a in BUCKETS for b in BUCKETS), "roll rates disagree"
    assert dict(counts) == {k: v for k, v in Counter(bucket_of(d) for d, _ in loop.values()).items()}
    scale = loans.height / args.sample
    print()
    print(f"plain ways on a sample of {args.sample:,} loans (same answers checked), extrapolated to {loans.height:,}:")
    print(
        f"  Python loop over each loan's instalments (loan_dpd, loan_max_dpd, buckets, transitions): "
        f"{loop_s:.2f} s → {loop_s * scale:.1f} s ({loop_s * scale / best[2]:.0f}× the columnar total)"
    )
    print(
        f"  pandas groupby().apply per loan (DPD at both dates, max DPD, bucket): "
        f"{pandas_s:.2f} s → {pandas_s * scale:.0f} s ({pandas_s * scale / best[2]:.0f}× the columnar total)"
    )


if __name__ == "__main__":
    main()
