"""Portfolio line review: the columnar function over 1,000,000 (and 10,000,000) lines, beside a row-by-row pandas
baseline measured in the same run on a sample, with peak memory.

    .venv/bin/python benchmarks/line_review.py [--rows 1000000 10000000] [--baseline-rows 20000]

The baseline is how a team would write it today: ``DataFrame.apply`` of a Python function per line (here the
strategy's own row evaluator, so both compute the same answer); its time is measured on ``--baseline-rows``
lines and scaled linearly. Peak memory is the process's peak resident set size (``ru_maxrss``) after each size,
measured in a fresh subprocess per size so the figures do not include the previous run.
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
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.baseline_rows)))
        return
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
