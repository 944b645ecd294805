"""Portfolio line review: the columnar function over 1,000,000 (and 10,000,000) lines, beside a row-by-row pandas
baseline measured in the same run on a sample, with peak memory.

    .venv/bin/python benchmarks/line_review.py [--rows 1000000 10000000] [--baseline-rows 20000]

The baseline is how a team would write it today: ``DataFrame.apply`` of a Python function per line (here the
strategy's own row evaluator, so both compute the same answer); its time is measured on ``--baseline-rows``
lines and scaled linearly. Peak memory is the process's peak resident set size (``ru_maxrss``) after each size,
measured in a fresh subprocess per size so the figures do not include the previous run.

``--stored N`` also measures the review as ``fengkong lines review`` runs it over a database: N lines stored in a
fresh SQLite file, the table read from storage, the dry run, and ``--apply`` (one transaction per chunk of
1,000, each action audited), beside the baseline of acting on lines one ``engine.lines.act`` call at a time
(measured on ``--baseline-rows`` of the planned actions, at most 500, and scaled).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time

AS_OF = dt.date(2026, 11, 23)


def one(rows: int, baseline_rows: int) -> dict[str, float]:
    import resource

    from fengkong.lines.review import summarise
    from fengkong.lines.strategy import line_strategy
    from fengkong.policy.loader import load_default_policy
    from fengkong.simulate.portfolio import portfolio_frame

    strategy = line_strategy(load_default_policy())
    started = time.perf_counter()
    frame = portfolio_frame(rows, seed=1, as_of=AS_OF)
    generated = time.perf_counter() - started
    frame.shape  # noqa: B018
    started = time.perf_counter()
    result = strategy.review_frame(frame, AS_OF)
    report = summarise(result, strategy.policy_version, AS_OF)
    columnar = time.perf_counter() - started
    out = {
        "rows": rows,
        "generate_s": generated,
        "review_s": columnar,
        "lines_per_s": rows / columnar,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "actions": report.actions,
    }
    if baseline_rows:
        sample = frame.head(baseline_rows).to_pandas()
        started = time.perf_counter()
        sample.apply(lambda r: strategy.review_row(_clean(r.to_dict()), AS_OF), axis=1)
        per_row = (time.perf_counter() - started) / baseline_rows
        out["pandas_apply_s_scaled"] = per_row * rows
        out["speedup"] = per_row * rows / columnar
    return out


def stored(rows: int, baseline_rows: int) -> dict[str, float]:
    """The review over a database of ``rows`` lines: read, dry run, apply; and one act() per line as baseline."""
    import datetime as dt
    import shutil
    import tempfile

    import polars as pl
    import sqlalchemy as sa

    from fengkong import Engine
    from fengkong.simulate.portfolio import portfolio_frame
    from fengkong.store.tables import credit_lines

    folder = tempfile.mkdtemp(prefix="fk-line-review-")
    engine = Engine(f"sqlite:///{folder}/bench.db", secret_key="benchmark-secret-0123456789abcdef-0123456789")
    portfolio = portfolio_frame(rows, seed=1, as_of=AS_OF)
    now = dt.datetime.now(dt.UTC)
    version = engine.policy().version
    records = [
        {
            "id": r["line_id"],
            "customer_id": r["customer_id"],
            "decision_id": None,
            "status": "active",
            "limit_amount": r["limit"],
            "outstanding": r["outstanding"],
            "apr": 0.18,
            "currency": "CNY",
            "opened_at": now - dt.timedelta(days=30 * int(r["line_months_on_book"])),
            "updated_at": now,
            "ever_restricted": False,
            "policy_version": version,
            "opening": {"bureau_inquiries_30d": 1, "monthly_income": 8000},
            "seq": 1,
        }
        for r in portfolio.iter_rows(named=True)
    ]
    with engine.db.begin() as conn:
        for start in range(0, rows, 10_000):
            conn.execute(sa.insert(credit_lines), records[start : start + 10_000])
    started = time.perf_counter()
    engine.lines.review_table(dt.date.today())
    read = time.perf_counter() - started
    started = time.perf_counter()
    dry = engine.lines.review()
    dry_s = time.perf_counter() - started
    acting = dry.table.filter(pl.col("action").is_in(["increase", "decrease", "freeze", "close"]))
    sample = acting.head(min(baseline_rows, 500, acting.height // 2))
    started = time.perf_counter()
    for r in sample.iter_rows(named=True):  # the baseline: one call, one transaction, per line
        change = {"new_limit": r["new_limit"]} if r["action"] in ("increase", "decrease") else {}
        engine.lines.act(r["line_id"], r["action"], actor="bench", actor_kind="system", reasons=r["reasons"], **change)
    per_act = (time.perf_counter() - started) / max(sample.height, 1)
    started = time.perf_counter()
    applied = engine.lines.review(apply=True)
    apply_s = time.perf_counter() - started
    engine.close()
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "rows": rows,
        "read_s": read,
        "dry_run_s": dry_s,
        "apply_s": apply_s,
        "applied": applied.applied,
        "actions_per_s": applied.applied / apply_s if apply_s else 0.0,
        "act_one_by_one_s_scaled": per_act * applied.applied,
    }


def _clean(row: dict[str, object]) -> dict[str, object]:
    import math

    import pandas as pd

    cleaned: dict[str, object] = {}
    for k, v in row.items():
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
            cleaned[k] = None
        elif isinstance(v, pd.Timestamp):
            cleaned[k] = v.date()
        else:
            cleaned[k] = v
    return cleaned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--baseline-rows", type=int, default=20_000)
    parser.add_argument("--stored", type=int, default=0, help="also review and apply N lines stored in SQLite")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.baseline_rows)))
        return
    if args.stored:
        r = stored(args.stored, args.baseline_rows)
        print(
            f"stored in SQLite: {r['rows']:,} lines; read {r['read_s']:.2f} s, dry run {r['dry_run_s']:.2f} s, "
            f"apply {r['applied']:,} actions in {r['apply_s']:.1f} s ({r['actions_per_s']:,.0f}/s) "
            f"vs one act() per line {r['act_one_by_one_s_scaled']:.1f} s (scaled)"
        )
    print(f"{'lines':>12} {'review s':>9} {'lines/s':>12} {'peak MB':>9} {'pandas apply s':>15} {'speed-up':>9}")
    for rows in args.rows:
        done = subprocess.run(
            [sys.executable, __file__, "--one", str(rows), "--baseline-rows", str(args.baseline_rows)],
            check=True,
            capture_output=True,
            text=True,
        )
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{r['rows']:>12,} {r['review_s']:>9.2f} {r['lines_per_s']:>12,.0f} {r['peak_rss_mb']:>9,.0f} "
            f"{r.get('pandas_apply_s_scaled', float('nan')):>15,.1f} {r.get('speedup', float('nan')):>8,.0f}x"
        )


if __name__ == "__main__":
    main()
