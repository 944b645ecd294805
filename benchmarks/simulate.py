"""Policy simulation benchmark: fengkong's chunked columnar simulation beside re-deciding row by row.

    .venv/bin/python benchmarks/simulate.py [--rows N] [--sample N] [--chunk-rows N] [--seed N] [--report DIR]

Simulates ``--rows`` generated historical applications (``fengkong.simulate.history``: every feature the
default policy reads, segments and realised outcomes) under two policies, the bundled default (current) and a
stricter variant (candidate: decline below 620 and review below 650 instead of 560 and 600, multi-head decline
at 5 inquiries in 7 days instead of 6), with ``fengkong.policy.simulate.simulate`` (decide_frame per chunk,
both policies, every figure of the report including segments and swap rows).

The plain way: loop ``decide_row`` over both policies on a ``--sample`` of the same rows and count the same
figures in Python (approvals, reasons, exposure, expected loss, swap sets, segments), timed and extrapolated.

A script that prints figures, not a timed test: the target is printed beside them, nothing fails.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import yaml

import fengkong
from fengkong.policy.compiler import CompiledPolicy
from fengkong.policy.loader import DEFAULT_POLICY_PATH, load_default_policy, load_policy_text
from fengkong.policy.simulate import SimulationReport, expected_pd, simulate
from fengkong.simulate.history import history_frame

TARGET_S = 10.0
SEGMENTS = ("channel", "region", "income_band", "application_month")


def stricter_policy() -> CompiledPolicy:
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["version"] = f"{data['version']}-strict"
    data["score"]["decline_below"] = 620
    data["score"]["review_below"] = 650
    for rule in data["rules"]:
        if rule["id"] == "MULTI_HEAD_7D":
            rule["when"] = "bureau_inquiries_7d >= 5"
        if rule["id"] == "MULTI_HEAD_WATCH":
            rule["when"] = "bureau_inquiries_7d >= 3 and bureau_inquiries_7d < 5"
    return load_policy_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), source="stricter")


def row_by_row(candidate: CompiledPolicy, current: CompiledPolicy, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The plain way: decide each row under both policies and count the report's figures in Python."""
    outcomes: tuple[Counter[str], Counter[str]] = (Counter(), Counter())
    reasons: tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]] = (Counter(), Counter())
    exposure, loss = [0.0, 0.0], [0.0, 0.0]
    matured, bad = [0, 0], [0, 0]
    swap_in: list[int] = []
    swap_out: list[int] = []
    segments: dict[tuple[str, Any], list[int]] = {}
    for i, row in enumerate(rows):
        results = (current.decide_row(row), candidate.decide_row(row))
        outcome_value = row.get("bad")
        for k, r in enumerate(results):
            o = r.outcome.value
            outcomes[k][o] += 1
            for reason in r.reasons:
                reasons[k][(reason, o)] += 1
            if o == "approve" and r.limit is not None:
                exposure[k] += r.limit
                loss[k] += expected_pd(r.score) * r.limit
                if outcome_value is not None:
                    matured[k] += 1
                    bad[k] += outcome_value
        a_k, a_c = (r.outcome.value == "approve" for r in results)
        if a_c and not a_k:
            swap_in.append(i)
        elif a_k and not a_c:
            swap_out.append(i)
        for column in SEGMENTS:
            seg = segments.setdefault((column, row[column]), [0, 0, 0])
            seg[0] += 1
            seg[1] += a_k
            seg[2] += a_c
    return {
        "approved": (outcomes[0]["approve"], outcomes[1]["approve"]),
        "reasons": reasons,
        "exposure": exposure,
        "loss": loss,
        "matured": matured,
        "bad": bad,
        "swap_in": swap_in,
        "swap_out": swap_out,
    }


def agreement(report: SimulationReport, plain: dict[str, Any]) -> list[str]:
    """What differs between the simulation of the sample and the row-by-row figures of the same rows."""
    problems = []
    if (report.current.approved, report.candidate.approved) != plain["approved"]:
        problems.append("approved")
    for k, fig in enumerate((report.current, report.candidate)):
        got = {(r, o): n for r, by in fig.reasons.items() for o, n in by.items()}
        if got != dict(plain["reasons"][k]):
            problems.append(f"reasons[{k}]")
        if fig.limit_exposure != plain["exposure"][k]:
            problems.append(f"exposure[{k}]")
        if not math.isclose(fig.expected_loss, plain["loss"][k], rel_tol=1e-9):
            problems.append(f"expected loss[{k}]")
        if (fig.matured, fig.bad) != (plain["matured"][k], plain["bad"][k]):
            problems.append(f"realised[{k}]")
    swaps = report.swaps
    if swaps is None or swaps.filter(pl.col("swap") == "in")["row"].to_list() != plain["swap_in"]:
        problems.append("swap-in rows")
    if swaps is None or swaps.filter(pl.col("swap") == "out")["row"].to_list() != plain["swap_out"]:
        problems.append("swap-out rows")
    return problems


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ratio(baseline: float, ours: float) -> str:
    r = baseline / ours if ours > 0 else math.inf
    return f"{r:.1f}x" if r < 10 else f"{r:.0f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="historical applications (default 1,000,000)")
    parser.add_argument("--sample", type=int, default=20_000, help="rows for the row-by-row way (default 20,000)")
    parser.add_argument("--chunk-rows", type=int, default=250_000, help="rows per chunk (default 250,000)")
    parser.add_argument("--runs", type=int, default=3, help="timed simulation runs (default 3)")
    parser.add_argument("--seed", type=int, default=20261108)
    parser.add_argument("--report", type=Path, help="write simulation.md and simulation.html to this directory")
    args = parser.parse_args()

    started = time.perf_counter()
    print("fengkong policy simulation benchmark")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(
        f"machine: {platform.machine()} {platform.system()} {platform.release()}, cpu count {os.cpu_count()}, "
        f"usable {usable}; python {platform.python_version()}, polars {pl.__version__} "
        f"(threads {pl.thread_pool_size()}), fengkong {fengkong.__version__}"
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"load average at start: {load}; seed {args.seed}")

    current = load_default_policy()
    candidate = stricter_policy()
    print(
        f"current {current.name} {current.version} ({len(current.spec.rules)} rules); candidate {candidate.version} "
        f"({len(candidate.spec.rules)} rules); scorecard {current.model_version}"
    )

    t0 = time.perf_counter()
    table = history_frame(args.rows, seed=args.seed)
    print(
        f"generated {table.height:,} applications x {table.width} columns in {time.perf_counter() - t0:.1f} s "
        f"({table.estimated_size('mb'):,.0f} MB); matured outcomes {table['bad'].is_not_null().sum():,}; "
        f"peak RSS {rss_mb():,.0f} MB"
    )

    simulate(candidate, current, table.head(10_000), segment_columns=SEGMENTS)  # warm-up
    times = []
    report: SimulationReport | None = None
    rss_before = rss_mb()
    progress: list[tuple[int, int]] = []

    def note(done: int, total: int) -> None:
        progress.append((done, total))

    for _ in range(args.runs):
        gc.collect()
        progress.clear()
        t0 = time.perf_counter()
        report = simulate(
            candidate,
            current,
            table,
            segment_columns=SEGMENTS,
            chunk_rows=args.chunk_rows,
            on_progress=note,
        )
        times.append(time.perf_counter() - t0)
    assert report is not None
    best = min(times)
    print()
    print(
        f"simulate, 2 policies, {args.rows:,} rows, {report.chunks} chunks of {args.chunk_rows:,}, "
        f"{len(SEGMENTS)} segment columns, swap rows kept:"
    )
    print(
        f"  best {best:.2f} s, mean {sum(times) / len(times):.2f} s of {len(times)} "
        f"({', '.join(f'{t:.2f}' for t in times)}); {args.rows / best:,.0f} rows/s; "
        f"target <= {TARGET_S:g} s: {'meets' if best <= TARGET_S else 'MISSES'}"
    )
    print(f"  progress reported after each chunk: {', '.join(f'{d:,}/{t:,}' for d, t in progress)}")
    print(f"  peak RSS {rss_before:,.0f} MB before the timed runs, {rss_mb():,.0f} MB after")
    cur, cand = report.current, report.candidate
    print(
        f"  approval {100 * (cur.approval_rate or 0):.2f}% -> {100 * (cand.approval_rate or 0):.2f}%; "
        f"expected bad rate {100 * (cur.expected_bad_rate or 0):.2f}% -> {100 * (cand.expected_bad_rate or 0):.2f}%; "
        f"realised {100 * (cur.realised_bad_rate or 0):.2f}% -> {100 * (cand.realised_bad_rate or 0):.2f}%"
    )
    print(
        f"  swap-in {report.swap_in.rows:,}, swap-out {report.swap_out.rows:,} "
        f"(realised bad rate {100 * (report.swap_out.realised_bad_rate or 0):.2f}% on "
        f"{report.swap_out.matured:,} matured); exposure {cur.limit_exposure:,.0f} -> {cand.limit_exposure:,.0f} "
        f"{report.currency}"
    )

    # the plain way: decide_row for both policies, counted in Python, on a sample, extrapolated
    sample = min(args.sample, args.rows)
    part = table.head(sample)
    rows = part.to_dicts()
    current.decide_row(rows[0])
    candidate.decide_row(rows[0])
    gc.collect()
    t0 = time.perf_counter()
    plain = row_by_row(candidate, current, rows)
    plain_s = time.perf_counter() - t0
    plain_full = plain_s * args.rows / sample
    print()
    print(
        f"row by row: decide_row x 2 policies + counting in Python, {sample:,} rows: {plain_s:.2f} s -> "
        f"{plain_full:.0f} s per {args.rows:,} rows (extrapolated), {sample / plain_s:,.0f} rows/s"
    )
    sample_report = simulate(candidate, current, part, segment_columns=SEGMENTS, chunk_rows=args.chunk_rows)
    problems = agreement(sample_report, plain)
    print(
        f"  the simulation of those {sample:,} rows agrees with the row-by-row figures "
        f"(approvals, reasons, exposure, expected loss, realised, swap rows): "
        + ("yes" if not problems else f"NO: {', '.join(problems)}")
    )

    print()
    print("Summary (ratio = row by row / simulate; above 1 = simulate faster; * = extrapolated from the sample)")
    table_rows = [
        ("measure", "simulate", "row by row", "ratio", "target", ""),
        (
            f"{args.rows:,} applications, 2 policies (s)",
            f"{best:.2f}",
            f"{plain_full:,.0f}*",
            ratio(plain_full, best),
            f"<= {TARGET_S:g}",
            "meets" if best <= TARGET_S else "MISSES",
        ),
        ("rows/s", f"{args.rows / best:,.0f}", f"{sample / plain_s:,.0f}", ratio(plain_full, best), "", ""),
    ]
    widths = [max(len(r[i]) for r in table_rows) for i in range(len(table_rows[0]))]
    for r in table_rows:
        print(
            "  "
            + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        )

    if args.report:
        args.report.mkdir(parents=True, exist_ok=True)
        (args.report / "simulation.md").write_text(report.markdown(), encoding="utf-8")
        (args.report / "simulation.html").write_text(report.html(), encoding="utf-8")
        print(f"\nreports written to {args.report}/simulation.md and simulation.html")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s; load average at end: {load}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
