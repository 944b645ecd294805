"""Decision benchmarks: fengkong beside the plain way a team would do it, measured in the same run.

    .venv/bin/python benchmarks/decide.py [--decisions N] [--rows N] [--sample N] [--seed N]

1. Full in-process decision: ``Engine.decide`` (validate, hash and encrypt identifiers, features, policy,
   persist with an audit-chain entry) on generated applications, against a dict of lambdas implementing the
   default policy's hard rules plus a sqlite3 INSERT of a JSON blob and a commit per decision.
2. Columnar evaluator: ``CompiledPolicy.decide_frame`` on a 20-rule policy (benchmarks/policy_20_rules.yaml)
   over a polars table of feature rows, against row-by-row pandas ``apply(axis=1)`` of the same rules and a
   loop of ``decide_row``, both timed on a sample and extrapolated.

A script that prints figures, not a timed test: targets are printed beside the figures, nothing fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

import fengkong
from fengkong import Engine
from fengkong.applications import ApplicationIn
from fengkong.features.application import application_features
from fengkong.pii import id_number_check_digit, inspect_id_number
from fengkong.policy.compiler import CompiledPolicy
from fengkong.policy.loader import load_default_policy, load_policy_file

HERE = Path(__file__).resolve().parent
POLICY_20 = HERE / "policy_20_rules.yaml"
SECRET = "benchmark-secret-key-not-for-production-0123456789"

TARGET_P50_MS = 2.0
TARGET_P99_MS = 10.0
TARGET_FRAME_S = 2.0
WARMUP = 200

EMPLOYMENT = ("salaried", "self_employed", "business_owner", "freelance", "student", "retired", "unemployed")
EMPLOYMENT_P = (0.55, 0.12, 0.08, 0.12, 0.04, 0.05, 0.04)
AMOUNTS = (3000, 5000, 10000, 20000, 30000, 50000, 80000, 100000, 200000)
AMOUNTS_P = (0.08, 0.15, 0.22, 0.2, 0.12, 0.12, 0.05, 0.04, 0.02)
AREA_CODES = ("110101", "110105", "310104", "310115", "440305", "440106", "330106", "510107", "420102", "320102")

# ---------------------------------------------------------------------------------------------- data


def profiles(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Applicant and bureau figures for n applicants; NaN where a value is not given."""
    age = np.clip(np.rint(rng.normal(36, 10.5, n)), 16, 75)
    income = np.round(rng.lognormal(9.05, 0.6, n), -2)
    rich_ = rng.random(n) < 0.005
    income[rich_] = np.round(rng.uniform(100_000, 300_000, rich_.sum()), -3)
    employment = rng.choice(np.array(EMPLOYMENT), size=n, p=EMPLOYMENT_P)
    months = np.floor(rng.exponential(40, n))
    months[(rng.random(n) < 0.10) | np.isin(employment, ("student", "unemployed"))] = np.nan
    requested = rng.choice(np.array(AMOUNTS, dtype=float), size=n, p=AMOUNTS_P)
    requested[rng.random(n) < 0.15] = np.nan
    # declared age minus the age the ID number implies: mostly 0, a few typos or borrowed IDs
    id_shift = np.where(rng.random(n) < 0.02, rng.choice([-4, -3, -2, 2, 3, 4], n), 0)
    has_device = rng.random(n) >= 0.03
    bureau_hit = rng.random(n) >= 0.06
    inq90 = rng.poisson(3.0, n).astype(float)
    heavy = rng.random(n) < 0.05  # multi-head borrowers (多头借贷)
    inq90[heavy] = rng.integers(10, 40, heavy.sum())
    inq30 = rng.binomial(inq90.astype(np.int64), 0.4).astype(float)
    inq7 = rng.binomial(inq30.astype(np.int64), 0.3).astype(float)
    loans = rng.poisson(1.5, n).astype(float)
    many = rng.random(n) < 0.03
    loans[many] = rng.integers(6, 15, many.sum())
    debt = np.round(loans * rng.lognormal(9.6, 0.8, n), 2)
    u = rng.random(n)
    dpd = np.select(
        [u < 0.85, u < 0.93, u < 0.97],
        [np.zeros(n), rng.integers(1, 30, n), rng.integers(30, 90, n)],
        rng.integers(90, 365, n),
    ).astype(float)
    for column in (inq90, inq30, inq7, loans, debt, dpd):
        column[~bureau_hit] = np.nan
    return {
        "age": age,
        "monthly_income": income,
        "employment": employment,
        "employment_months": months,
        "requested_amount": requested,
        "id_shift": id_shift,
        "has_device": has_device,
        "bureau_hit": bureau_hit,
        "inquiries_7d": inq7,
        "inquiries_30d": inq30,
        "inquiries_90d": inq90,
        "active_loans": loans,
        "total_debt": debt,
        "worst_delinquency_days": dpd,
    }


def id_number(rng: np.random.Generator, id_age: int, today: dt.date) -> str:
    """A resident ID number (GB 11643) with a valid check digit whose birth date gives ``id_age`` today."""
    month, day = int(rng.integers(1, 13)), int(rng.integers(1, 29))
    year = today.year - id_age - (1 if (today.month, today.day) < (month, day) else 0)
    first17 = (
        f"{AREA_CODES[int(rng.integers(len(AREA_CODES)))]}{year:04d}{month:02d}{day:02d}{int(rng.integers(1000)):03d}"
    )
    return first17 + id_number_check_digit(first17)


def applications(rng: np.random.Generator, n: int, today: dt.date, prefix: str) -> list[dict[str, Any]]:
    """Applications shaped like examples/application.json, without application_id (each is a new decision)."""
    p = profiles(rng, n)
    apps = []
    for i in range(n):
        age = int(p["age"][i])
        identity: dict[str, Any] = {
            "id_number": id_number(rng, age + int(p["id_shift"][i]), today),
            "phone": f"+86 1{int(rng.choice([3, 5, 7, 8, 9]))}{int(rng.integers(10))} "
            f"{int(rng.integers(10000)):04d} {int(rng.integers(10000)):04d}",
        }
        if rng.random() < 0.8:
            digits = f"6222{int(rng.integers(10**15)):015d}"
            identity["bank_card"] = " ".join(digits[k : k + 4] for k in range(0, len(digits), 4))
        if p["has_device"][i]:
            identity["device_id"] = str(uuid.UUID(int=int(rng.integers(2**63)) << 64 | int(rng.integers(2**63))))
        if rng.random() < 0.95:
            identity["ip"] = ".".join(str(int(x)) for x in (rng.integers(1, 224), *rng.integers(0, 256, 3)))
        applicant: dict[str, Any] = {
            "age": age,
            "monthly_income": float(p["monthly_income"][i]),
            "employment": str(p["employment"][i]),
        }
        if not math.isnan(p["employment_months"][i]):
            applicant["employment_months"] = int(p["employment_months"][i])
        app: dict[str, Any] = {
            "customer_id": f"{prefix}-{i:07d}",
            "product": "consumer_line",
            "language": "zh" if rng.random() < 0.8 else "en",
            "identity": identity,
            "applicant": applicant,
        }
        if not math.isnan(p["requested_amount"][i]):
            app["requested_amount"] = float(p["requested_amount"][i])
        if p["bureau_hit"][i]:
            app["bureau"] = {
                "inquiries_7d": int(p["inquiries_7d"][i]),
                "inquiries_30d": int(p["inquiries_30d"][i]),
                "inquiries_90d": int(p["inquiries_90d"][i]),
                "active_loans": int(p["active_loans"][i]),
                "total_debt": float(p["total_debt"][i]),
                "worst_delinquency_days": int(p["worst_delinquency_days"][i]),
            }
        apps.append(app)
    return apps


def feature_frame(rng: np.random.Generator, n: int) -> pl.DataFrame:
    """n feature rows (the columns application_features produces), with nulls where data is missing."""
    p = profiles(rng, n)
    id_state = rng.random(n)  # about 1% sent only an ID hash (validity unknown), 0.5% a bad check digit
    id_known = id_state >= 0.01
    id_valid = id_state >= 0.015
    df = pl.DataFrame(
        {
            "age": p["age"],
            "monthly_income": p["monthly_income"],
            "employment": p["employment"],
            "employment_months": p["employment_months"],
            "requested_amount": p["requested_amount"],
            "id_number_valid": id_valid,
            "id_age_gap": np.abs(p["id_shift"]).astype(float),
            "has_device_id": p["has_device"],
            "bureau_hit": p["bureau_hit"],
            "bureau_inquiries_7d": p["inquiries_7d"],
            "bureau_inquiries_30d": p["inquiries_30d"],
            "bureau_inquiries_90d": p["inquiries_90d"],
            "bureau_active_loans": p["active_loans"],
            "bureau_total_debt": p["total_debt"],
            "bureau_worst_dpd": p["worst_delinquency_days"],
            "_id_known": id_known,
        }
    )
    number = [c for c, t in df.schema.items() if t == pl.Float64]
    return (
        df.with_columns(pl.col(number).fill_nan(None))
        .with_columns(
            pl.when(pl.col("_id_known")).then(pl.col("id_number_valid")).alias("id_number_valid"),
            pl.when(pl.col("_id_known") & pl.col("id_number_valid")).then(pl.col("id_age_gap")).alias("id_age_gap"),
            (pl.col("requested_amount") / pl.col("monthly_income")).alias("request_to_income"),
            (pl.col("bureau_total_debt") / (12 * pl.col("monthly_income"))).alias("debt_to_income"),
        )
        .drop("_id_known")
    )


# ---------------------------------------------------------------------------------------------- the plain way

Rule = tuple[str, str, Callable[[Mapping[str, Any]], bool]]


def _v(f: Mapping[str, Any], key: str) -> Any:
    """The value, or None when missing (None in a dict, NaN in a pandas row)."""
    value = f[key]
    return None if value is None or (isinstance(value, float) and value != value) else value


# The hard rules of src/fengkong/policies/default.yaml as a hand-written dict of lambdas (missing never fires).
PLAIN_RULES: dict[str, Rule] = {
    "ELIG_AGE": ("decline", "AGE_OUT_OF_RANGE", lambda f: (a := _v(f, "age")) is not None and (a < 18 or a > 65)),
    "ELIG_EMPLOYMENT": (
        "decline",
        "EMPLOYMENT_NOT_ELIGIBLE",
        lambda f: _v(f, "employment") in ("student", "unemployed"),
    ),
    "ELIG_INCOME": ("decline", "INCOME_TOO_LOW", lambda f: (x := _v(f, "monthly_income")) is not None and x < 2000),
    "ID_CHECKSUM": ("decline", "ID_NUMBER_INVALID", lambda f: _v(f, "id_number_valid") is False),
    "ID_AGE_GAP": ("review", "ID_AGE_MISMATCH", lambda f: (x := _v(f, "id_age_gap")) is not None and x > 1),
    "DEVICE_ABSENT": ("review", "DEVICE_NOT_VERIFIED", lambda f: _v(f, "has_device_id") is False),
    "BUREAU_SEVERE_DPD": (
        "decline",
        "BUREAU_SERIOUS_DELINQUENCY",
        lambda f: (x := _v(f, "bureau_worst_dpd")) is not None and x >= 90,
    ),
    "BUREAU_DPD_30": (
        "review",
        "BUREAU_RECENT_DELINQUENCY",
        lambda f: (x := _v(f, "bureau_worst_dpd")) is not None and 30 <= x < 90,
    ),
    "BUREAU_MANY_LOANS": (
        "decline",
        "TOO_MANY_ACTIVE_LOANS",
        lambda f: (x := _v(f, "bureau_active_loans")) is not None and x >= 10,
    ),
    "MULTI_HEAD_7D": (
        "decline",
        "MULTI_HEAD_RECENT_INQUIRIES",
        lambda f: (x := _v(f, "bureau_inquiries_7d")) is not None and x >= 6,
    ),
    "MULTI_HEAD_30D": (
        "decline",
        "MULTI_HEAD_INQUIRIES",
        lambda f: (
            ((x := _v(f, "bureau_inquiries_30d")) is not None and x >= 12)
            or ((y := _v(f, "bureau_inquiries_90d")) is not None and y >= 25)
        ),
    ),
    "MULTI_HEAD_WATCH": (
        "review",
        "MULTI_HEAD_RECENT_INQUIRIES",
        lambda f: (x := _v(f, "bureau_inquiries_7d")) is not None and 3 <= x < 6,
    ),
    "DTI_HIGH": ("decline", "HIGH_DEBT_TO_INCOME", lambda f: (x := _v(f, "debt_to_income")) is not None and x > 2.5),
    "INCOME_OUTLIER": (
        "review",
        "INCOME_VERIFICATION_NEEDED",
        lambda f: (x := _v(f, "monthly_income")) is not None and x > 100000 and (_v(f, "employment_months") or 0) < 12,
    ),
    "LARGE_REQUEST": (
        "review",
        "LARGE_REQUEST_REVIEW",
        lambda f: (x := _v(f, "request_to_income")) is not None and x > 10,
    ),
}

# The five extra rules of benchmarks/policy_20_rules.yaml.
PLAIN_RULES_20: dict[str, Rule] = {
    **PLAIN_RULES,
    "NO_BUREAU_LARGE_REQUEST": (
        "review",
        "LARGE_REQUEST_REVIEW",
        lambda f: _v(f, "bureau_hit") is False and (_v(f, "requested_amount") or 0) > 20000,
    ),
    "DEBT_ABSOLUTE": (
        "decline",
        "HIGH_DEBT_TO_INCOME",
        lambda f: (
            (d := _v(f, "bureau_total_debt")) is not None
            and d > 300000
            and (x := _v(f, "monthly_income")) is not None
            and x < 20000
        ),
    ),
    "INQUIRY_ACCELERATION": (
        "review",
        "MULTI_HEAD_INQUIRIES",
        lambda f: (
            (a := _v(f, "bureau_inquiries_30d")) is not None
            and (b := _v(f, "bureau_inquiries_90d")) is not None
            and a * 3 > b + 6
        ),
    ),
    "LOANS_AND_DEBT": (
        "review",
        "TOO_MANY_ACTIVE_LOANS",
        lambda f: (
            (a := _v(f, "bureau_active_loans")) is not None
            and a >= 6
            and (d := _v(f, "debt_to_income")) is not None
            and d > 1.0
        ),
    ),
    "UNVERIFIED_INCOME_SOURCE": (
        "review",
        "INCOME_VERIFICATION_NEEDED",
        lambda f: (
            (e := _v(f, "employment")) is not None
            and e not in ("salaried", "retired")
            and ((m := _v(f, "employment_months")) is None or m < 6)
            and (r := _v(f, "request_to_income")) is not None
            and r > 3
        ),
    ),
}


def plain_decide(rules: dict[str, Rule], f: Mapping[str, Any]) -> tuple[str, list[str], list[str]]:
    """Strictest fired rule wins; reasons are the fired rules of that outcome. Returns (outcome, reasons, ids)."""
    fired = [(rid, action, reason) for rid, (action, reason, cond) in rules.items() if cond(f)]
    actions = {a for _, a, _ in fired}
    outcome = "decline" if "decline" in actions else "review" if "review" in actions else "approve"
    return outcome, [r for _, a, r in fired if a == outcome], [rid for rid, _, _ in fired]


def rule_outcome(policy: CompiledPolicy, hit_ids: list[str]) -> str:
    ids = set(hit_ids)
    actions = {r.action for r in policy.spec.rules if r.id in ids}
    return "decline" if "decline" in actions else "review" if "review" in actions else "approve"


# ---------------------------------------------------------------------------------------------- helpers


def ms_stats(ns: np.ndarray) -> dict[str, float]:
    ms = ns / 1e6
    return {
        "p50": float(np.percentile(ms, 50)),
        "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
        "mean": float(ms.mean()),
    }


def ratio(baseline: float, ours: float) -> str:
    """baseline / fengkong: above 1 means fengkong takes less time."""
    if ours <= 0:
        return "n/a"
    r = baseline / ours
    if r < 1:
        return f"{r:.2f}x (1/{1 / r:.0f})" if r < 0.1 else f"{r:.2f}x"
    return f"{r:.2f}x" if r < 10 else f"{r:.0f}x"


def verdict(value: float, target: float) -> str:
    return "meets" if value <= target else "MISSES"


def mix(counter: Counter[str], total: int) -> str:
    return ", ".join(f"{k} {counter[k]} ({100 * counter[k] / total:.1f}%)" for k in ("approve", "review", "decline"))


def header(title: str) -> None:
    print()
    print(title)
    print("-" * len(title))


# ---------------------------------------------------------------------------------------------- 1. decisions


def bench_decisions(n: int, seed: int, tmpdir: Path, table: list[tuple[str, ...]]) -> None:
    header(f"1. Full in-process decision: Engine.decide, {n:,} applications after {WARMUP} warm-up")
    today = dt.date.today()
    rng = np.random.default_rng(seed)
    warm = applications(rng, WARMUP, today, "warm")
    apps = applications(rng, n, today, "cust")

    engine = Engine(f"sqlite:///{tmpdir}/bench.db", secret_key=SECRET)
    policy = engine.policy()
    print(f"policy {policy.name} {policy.version}, {len(policy.spec.rules)} rules, scorecard {policy.model_version}")
    for app in warm:
        engine.decide(app)

    lat = np.empty(n, dtype=np.int64)
    outcomes: Counter[str] = Counter()
    gc.collect()
    started = time.perf_counter()
    for i, app in enumerate(apps):
        t0 = time.perf_counter_ns()
        decision = engine.decide(app)
        lat[i] = time.perf_counter_ns() - t0
        outcomes[decision.outcome.value] += 1
    wall = time.perf_counter() - started
    engine.close()
    ours = ms_stats(lat)

    # The plain way, on the same applications' feature dicts (computed before timing; fengkong's figure above
    # includes validating the request, computing these features, hashing and encrypting identifiers, the
    # scorecard, limit and price, and an audit-chain entry; the plain way does none of that).
    features = []
    for app in apps:
        a = ApplicationIn.model_validate(app)
        facts = inspect_id_number(a.identity.id_number, today) if a.identity.id_number else None
        features.append(application_features(a, facts, today))
    agree = sum(
        sorted(plain_decide(PLAIN_RULES, f)[2]) == sorted(h.id for h in policy.decide_row(f).rule_hits)
        for f in features
    )
    conn = sqlite3.connect(tmpdir / "plain.db")
    # the same durability settings fengkong uses for SQLite (WAL, synchronous=NORMAL), so only the code differs
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE decisions (id INTEGER PRIMARY KEY, customer_id TEXT, created_at TEXT, outcome TEXT, body TEXT)"
    )
    conn.commit()

    def plain(app: Mapping[str, Any], f: Mapping[str, Any]) -> str:
        outcome, reasons, hits = plain_decide(PLAIN_RULES, f)
        now = dt.datetime.now(dt.UTC).isoformat()
        body = json.dumps(
            {
                "customer_id": app["customer_id"],
                "outcome": outcome,
                "reasons": reasons,
                "rule_hits": hits,
                "features": f,
                "created_at": now,
            }
        )
        conn.execute(
            "INSERT INTO decisions (customer_id, created_at, outcome, body) VALUES (?, ?, ?, ?)",
            (app["customer_id"], now, outcome, body),
        )
        conn.commit()
        return outcome

    warm_features = [
        application_features(a, inspect_id_number(a.identity.id_number or "", today), today)
        for a in (ApplicationIn.model_validate(w) for w in warm)
    ]
    for w, f in zip(warm, warm_features, strict=True):
        plain(w, f)
    base_lat = np.empty(n, dtype=np.int64)
    base_outcomes: Counter[str] = Counter()
    gc.collect()
    started = time.perf_counter()
    for i, (app, f) in enumerate(zip(apps, features, strict=True)):
        t0 = time.perf_counter_ns()
        base_outcomes[plain(app, f)] += 1
        base_lat[i] = time.perf_counter_ns() - t0
    base_wall = time.perf_counter() - started
    conn.close()
    base = ms_stats(base_lat)

    print(f"{'':26}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}{'mean':>9}{'decisions/s':>14}")
    print(
        f"{'fengkong Engine.decide':26}"
        + "".join(f"{ours[k]:9.3f}" for k in ("p50", "p90", "p99", "max", "mean"))
        + f"{n / wall:14,.0f}   (ms)"
    )
    print(
        f"{'plain: lambdas + sqlite3':26}"
        + "".join(f"{base[k]:9.3f}" for k in ("p50", "p90", "p99", "max", "mean"))
        + f"{n / base_wall:14,.0f}   (ms)"
    )
    print(
        f"targets: p50 <= {TARGET_P50_MS:g} ms -> {ours['p50']:.3f} ms {verdict(ours['p50'], TARGET_P50_MS)}; "
        f"p99 <= {TARGET_P99_MS:g} ms -> {ours['p99']:.3f} ms {verdict(ours['p99'], TARGET_P99_MS)}"
    )
    print(
        f"ratio plain/fengkong (above 1 = fengkong faster): p50 {ratio(base['p50'], ours['p50'])}, "
        f"p99 {ratio(base['p99'], ours['p99'])}, throughput {ratio(base_wall, wall)}"
    )
    print(f"outcome mix, fengkong (rules + scorecard + limits): {mix(outcomes, n)}")
    print(f"outcome mix, plain (hard rules only):             {mix(base_outcomes, n)}")
    print(f"plain rules fire the same rules as fengkong's policy on {agree:,}/{n:,} feature dicts")
    print(
        "note: fengkong's figure is the whole path (validation, identifier hashing and encryption, features, "
        "scorecard,\n      limit and APR, decision row + audit-chain entry in one transaction); the plain way "
        "times only\n      the 15 hard rules and one INSERT + commit on features computed beforehand."
    )
    table.append(
        (
            "decision p50 (ms)",
            f"{ours['p50']:.3f}",
            f"{base['p50']:.3f}",
            ratio(base["p50"], ours["p50"]),
            f"<= {TARGET_P50_MS:g}",
            verdict(ours["p50"], TARGET_P50_MS),
        )
    )
    table.append(
        (
            "decision p99 (ms)",
            f"{ours['p99']:.3f}",
            f"{base['p99']:.3f}",
            ratio(base["p99"], ours["p99"]),
            f"<= {TARGET_P99_MS:g}",
            verdict(ours["p99"], TARGET_P99_MS),
        )
    )
    table.append(("decisions/s", f"{n / wall:,.0f}", f"{n / base_wall:,.0f}", ratio(base_wall, wall), "", ""))


# ---------------------------------------------------------------------------------------------- 2. columnar


def bench_columnar(rows: int, sample: int, seed: int, table: list[tuple[str, ...]]) -> None:
    policy = load_policy_file(POLICY_20)
    header(f"2. Columnar evaluator: decide_frame, {len(policy.spec.rules)}-rule policy, {rows:,} feature rows")
    print(
        f"policy {POLICY_20.relative_to(HERE.parent)}: {policy.name} {policy.version}, {len(policy.spec.rules)} rules, "
        f"scorecard {policy.model_version}"
    )
    t0 = time.perf_counter()
    df = feature_frame(np.random.default_rng(seed + 1), rows)
    nulls = df.null_count().row(0, named=True)
    print(
        f"generated {df.height:,} rows x {df.width} columns in {time.perf_counter() - t0:.1f} s; null cells: "
        + ", ".join(f"{k} {v:,}" for k, v in nulls.items() if v)
    )

    policy.decide_frame(df.head(10_000))  # warm-up
    times = []
    out = None
    for _ in range(3):
        gc.collect()
        t0 = time.perf_counter()
        out = policy.decide_frame(df)
        times.append(time.perf_counter() - t0)
    assert out is not None
    best, mean = min(times), sum(times) / len(times)
    outcomes = Counter(dict(out["outcome"].value_counts().iter_rows()))
    print(
        f"decide_frame: best {best:.3f} s, mean {mean:.3f} s of 3 ({', '.join(f'{t:.3f}' for t in times)}); "
        f"{rows / best:,.0f} rows/s; target <= {TARGET_FRAME_S:g} s: {verdict(best, TARGET_FRAME_S)}"
    )
    print(f"outcome mix: {mix(outcomes, rows)}")

    # correctness: the columnar figure is of an evaluator that agrees with the row evaluator
    check = min(2000, rows)
    head_rows = df.head(check).to_dicts()
    row_results = [policy.decide_row(r) for r in head_rows]
    same_outcome = sum(r.outcome.value == o for r, o in zip(row_results, out["outcome"].head(check), strict=True))
    same_all = sum(
        r.outcome.value == f["outcome"]
        and list(r.reasons) == f["reasons"]
        and r.limit == f["limit"]
        and r.apr == f["apr"]
        and [h.id for h in r.rule_hits] == f["rule_hits"]
        for r, f in zip(row_results, out.head(check).iter_rows(named=True), strict=True)
    )
    print(
        f"agreement with decide_row on the first {check:,} rows: outcome {same_outcome:,}/{check:,}; "
        f"outcome, reasons, limit, APR and rule hits {same_all:,}/{check:,}"
    )

    # baseline (a): row-by-row pandas apply of the same 20 rules (a dict of lambdas)
    sample = min(sample, rows)
    part = df.head(sample)
    pdf = pd.DataFrame(part.to_dict(as_series=False))  # no pyarrow needed; None -> NaN in float columns
    gc.collect()
    t0 = time.perf_counter()
    pd_outcome = pdf.apply(lambda r: plain_decide(PLAIN_RULES_20, r)[0], axis=1)
    pandas_s = time.perf_counter() - t0
    pandas_full = pandas_s * rows / sample
    fk_rule_outcome = [rule_outcome(policy, ids) for ids in out["rule_hits"].head(sample).to_list()]
    pd_agree = sum(a == b for a, b in zip(pd_outcome.tolist(), fk_rule_outcome, strict=True))
    print(
        f"(a) pandas DataFrame.apply(axis=1), 20 lambdas, {sample:,} rows: {pandas_s:.2f} s -> "
        f"{pandas_full:.1f} s per {rows:,} rows (extrapolated), {sample / pandas_s:,.0f} rows/s; "
        f"ratio {ratio(pandas_full, best)}"
    )
    print(
        f"    its rule outcome agrees with decide_frame's fired rules on {pd_agree:,}/{sample:,} rows "
        "(it does rules only: no score, limit, APR or reasons)"
    )

    # baseline (b): the row evaluator looped over the sample
    dicts = part.to_dicts()
    gc.collect()
    t0 = time.perf_counter()
    for r in dicts:
        policy.decide_row(r)
    row_s = time.perf_counter() - t0
    row_full = row_s * rows / sample
    print(
        f"(b) policy.decide_row loop, {sample:,} rows: {row_s:.2f} s -> {row_full:.1f} s per {rows:,} rows "
        f"(extrapolated), {sample / row_s:,.0f} rows/s; ratio {ratio(row_full, best)}"
    )

    table.append(
        (
            f"decide_frame {rows:,} rows (s)",
            f"{best:.3f}",
            f"{pandas_full:.1f}*",
            ratio(pandas_full, best),
            f"<= {TARGET_FRAME_S:g}",
            verdict(best, TARGET_FRAME_S),
        )
    )
    table.append(("  vs decide_row loop (s)", f"{best:.3f}", f"{row_full:.1f}*", ratio(row_full, best), "", ""))
    table.append(
        ("columnar rows/s", f"{rows / best:,.0f}", f"{sample / pandas_s:,.0f}", ratio(pandas_full, best), "", "")
    )
    table.append((f"row/frame agreement (first {check:,})", f"{same_outcome:,}/{check:,}", "", "", "all", ""))


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=10_000, help="timed Engine.decide calls (default 10,000)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="feature rows for decide_frame (default 1,000,000)")
    parser.add_argument("--sample", type=int, default=50_000, help="rows for the row-by-row baselines (default 50,000)")
    parser.add_argument("--seed", type=int, default=20261123)
    args = parser.parse_args()

    started = time.perf_counter()
    print("fengkong decision benchmarks")
    print(
        f"machine: {platform.machine()} {platform.system()} {platform.release()}, cpu count {os.cpu_count()}, "
        f"usable {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}"
    )
    print(
        f"python {platform.python_version()} ({sys.implementation.name}), polars {pl.__version__} "
        f"(threads {pl.thread_pool_size()}), pandas {pd.__version__}, numpy {np.__version__}, "
        f"sqlite {sqlite3.sqlite_version}, fengkong {fengkong.__version__}"
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"load average at start: {load} (other work on the machine makes figures noisy); seed {args.seed}")
    print(f"default policy: {load_default_policy().version}; benchmark policy: {POLICY_20.name}")

    table: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory(prefix="fengkong-bench-") as tmp:
        bench_decisions(args.decisions, args.seed, Path(tmp), table)
    bench_columnar(args.rows, args.sample, args.seed, table)

    header("Summary (ratio = plain / fengkong; above 1 = fengkong faster; * = extrapolated from a sample)")
    cols = ("measure", "fengkong", "plain way", "ratio", "target", "")
    widths = [max(len(str(r[i])) for r in (cols, *table)) for i in range(len(cols))]
    for r in (cols, *table):
        print(
            "  ".join(
                str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s; load average at end: {load}")


if __name__ == "__main__":
    main()
