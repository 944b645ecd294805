"""Training: a points scorecard (optbinning) or gradient-boosted trees (LightGBM), calibrated and validated.

Both kinds follow the same steps: check the table, split it (stratified, or out-of-time on a time column), fit,
write the artefact, load the artefact back and measure *it* (so the metrics are those of exactly what gets
registered), calibrate the PD, and collect what the validation report and later monitoring need.

- Scorecard: optbinning's ``OptimalBinning`` per feature (optimal binning, monotonic event-rate trends — asked
  per feature or ``auto_asc_desc`` for every number —, weight of evidence, information value; see
  ``binning.py`` for how it is kept fast on large tables), selection by IV, a logistic regression on the WoE
  and points scaled by base points, base odds and PDO and rounded to whole points with the arithmetic of
  optbinning's ``Scorecard`` (a test holds the two equal) — written as fengkong's JSON table of
  characteristics, bins and points. The logistic regression has few parameters, so its PD is calibrated on
  the training rows.
- GBDT: LightGBM with optional monotone constraints; a stratified part of the training rows (20 % by default)
  is held out for early stopping and for the calibration, since trees fit their own training rows too well.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from fengkong.errors import FengkongError
from fengkong.features.registry import FEATURES, FeatureRegistry
from fengkong.models.base import ScoreModel, reason_for_feature
from fengkong.models.binning import (
    PREBINNING,
    TRENDS,
    fit_binnings,
    parallel_map,
    scorecard_points,
    stratified_sample,
)
from fengkong.models.calibration import Calibration, Scaling, fit_calibration
from fengkong.models.data import (
    FeatureColumn,
    Split,
    binary_target,
    feature_columns,
    fingerprint,
    normalized,
    split_rows,
)
from fengkong.models.gbdt import GBDT_KIND, GbdtFeature, GbdtSpec, encode_columns, parse_gbdt
from fengkong.models.metrics import performance, score_psi, stability_bins
from fengkong.models.scorecard import BinSpec, CharacteristicSpec, ScorecardSpec, parse_scorecard
from fengkong.models.scoring import Scored, score_points
from fengkong.reasons import is_known

# progress(task, done, total): a step of training moved on (the CLI draws a progress bar from it)
Progress = Callable[[str, int, int], None]

KINDS = ("scorecard", "gbdt")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """optbinning 1.0 calls pandas APIs that pandas 3 deprecates; its warnings are not ours to act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*inplace.*")
        warnings.filterwarnings("ignore", message="Bins whose width are too small")  # quantiles of a discrete number
        yield


def _no_progress(_task: str, _done: int, _total: int) -> None:
    return None


@dataclass
class TrainOptions:
    """What to train and how. ``monotonic``: feature → ``asc`` (the bad rate rises with the feature) or ``desc``."""

    kind: str = "scorecard"
    target: str = "bad"
    features: Sequence[str] | None = None
    exclude: Sequence[str] = ()
    time_col: str | None = None
    monotonic: Mapping[str, str] = field(default_factory=dict)
    bad_value: str | None = None
    valid_fraction: float = 0.3
    calibration: str = "platt"
    calibration_fraction: float = 0.2
    seed: int = 0
    scaling: Scaling = field(default_factory=Scaling)
    min_iv: float = 0.02
    max_bins: int | None = None
    # pre-bin (optbinning's CART) on a stratified sample of this many training rows when there are more; the
    # bins' statistics and the solver still use every row. None: pre-bin on every row
    prebin_rows: int | None = 50_000
    # optbinning's prebinning_method for numbers: auto = cart (its default) on every row, or the quantiles of
    # the sample when there are more than prebin_rows training rows; or cart / quantile in both cases
    prebinning: str = "auto"
    n_jobs: int | None = None  # threads for binning and boosting (None: binning one per core; boosting see below)
    rounds: int = 500
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_child_samples: int = 20
    reasons: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    def check(self) -> None:
        if self.kind not in KINDS:
            raise FengkongError("invalid_field", f"kind must be one of {', '.join(KINDS)}", "kind", 422)
        if self.calibration not in ("platt", "isotonic"):
            raise FengkongError("invalid_field", "calibration must be platt or isotonic", "calibration", 422)
        if not 0.05 <= self.calibration_fraction <= 0.5:
            raise FengkongError("invalid_field", "calibration_fraction must be in [0.05, 0.5]", "calibration", 422)
        for feature, trend in self.monotonic.items():
            if trend not in TRENDS:
                raise FengkongError(
                    "invalid_field", f"monotonic trend of {feature!r} must be asc or desc, not {trend!r}", "monotonic"
                )
        for feature, code in self.reasons.items():
            if not is_known(code):
                raise FengkongError("unknown_reason", f"reason code {code!r} for {feature!r} is not known", "reasons")
        if self.rounds < 1:
            raise FengkongError("invalid_field", "rounds must be at least 1", "rounds", 422)
        if self.prebinning not in PREBINNING:
            raise FengkongError(
                "invalid_field", f"prebinning must be one of {', '.join(PREBINNING)}", "prebinning", 422
            )
        if self.prebin_rows is not None and self.prebin_rows < 1000:
            raise FengkongError("invalid_field", "prebin_rows must be at least 1000 (or None)", "prebin_rows", 422)
        if self.n_jobs is not None and self.n_jobs < 1:
            raise FengkongError("invalid_field", "n_jobs must be at least 1 (or None)", "n_jobs", 422)


@dataclass
class Trained:
    """A trained model ready to register, with everything the report and monitoring need."""

    kind: str
    artefact: str
    model: ScoreModel
    features: list[str]
    metrics: dict[str, Any]
    training: dict[str, Any]
    data_fingerprint: str
    target: str
    description: str
    # for the report (not stored): validation and training scores and outcomes, bin tables
    report: dict[str, Any] = field(default_factory=dict)


def train_model(
    frame: pl.DataFrame,
    options: TrainOptions,
    name: str,
    version: str,
    registry: FeatureRegistry = FEATURES,
    progress: Progress | None = None,
) -> Trained:
    """Train, calibrate and validate a model on a table; raises FengkongError naming the field on bad input."""
    step = progress or _no_progress
    options.check()
    started = time.perf_counter()
    if frame.height == 0:
        raise FengkongError("empty_data", "the data has no rows", "data", 422)
    step("checking the data", 0, 1)
    exclude = [*options.exclude, *([options.time_col] if options.time_col else [])]
    data, unmatured = binary_target(frame, options.target, options.bad_value)
    columns = feature_columns(data, options.target, options.features, exclude)
    for feature in options.monotonic:
        match = next((c for c in columns if c.name == feature), None)
        if match is None:
            raise FengkongError("feature_not_found", f"monotonic feature {feature!r} is not a feature", feature, 422)
        if match.type == "string":
            raise FengkongError(
                "invalid_field", f"monotonic trends apply to numbers; {feature!r} is text", feature, 422
            )
    data = normalized(data, columns)
    split = split_rows(data, options.target, options.valid_fraction, options.seed, options.time_col)
    y = data[options.target].to_numpy().astype(np.int8)
    parts = Parts(data, y, split, data[split.train], data[split.valid], y[split.train], y[split.valid])
    step("checking the data", 1, 1)
    # the fingerprint (the table written as CSV and hashed: polars and hashlib release the GIL) is computed on
    # a thread of its own while the model trains
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fengkong-fingerprint") as pool:
        digest = pool.submit(fingerprint, frame)
        if options.kind == "scorecard":
            trained = _train_scorecard(parts, columns, options, name, version, registry, step)
        else:
            trained = _train_gbdt(parts, columns, options, name, version, registry, step)
        trained.data_fingerprint = digest.result()
    trained.training.update(
        {
            "rows": frame.height,
            "rows_with_outcome": data.height,
            "rows_without_outcome": unmatured,
            "train_rows": int(split.train.size),
            "valid_rows": int(split.valid.size),
            "split": split.method,
            "seed": options.seed,
            "valid_fraction": options.valid_fraction,
            "bad_value": options.bad_value,
            "time_col": options.time_col,
            "seconds": round(time.perf_counter() - started, 3),
        }
    )
    return trained


@dataclass(frozen=True)
class Parts:
    """The checked table, its outcomes and its split, with the training and validation rows gathered once."""

    data: pl.DataFrame
    y: npt.NDArray[np.int8]
    split: Split
    train: pl.DataFrame
    valid: pl.DataFrame
    y_train: npt.NDArray[np.int8]
    y_valid: npt.NDArray[np.int8]


# ---------------------------------------------------------------------------------------------- scorecard


def _train_scorecard(
    parts: Parts,
    columns: list[FeatureColumn],
    options: TrainOptions,
    name: str,
    version: str,
    registry: FeatureRegistry,
    step: Progress,
) -> Trained:
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped, unused-ignore]
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped, unused-ignore]

    train, y_train = parts.train, parts.y_train
    step("binning (optbinning)", 0, len(columns))
    with _quiet():
        binned = fit_binnings(
            train,
            y_train,
            columns,
            monotonic=options.monotonic,
            max_bins=options.max_bins,
            prebin_rows=options.prebin_rows,
            prebinning=options.prebinning,
            seed=options.seed,
            n_jobs=options.n_jobs,
            progress=lambda done, total: step("binning (optbinning)", done, total),
            min_iv=options.min_iv,
        )
    iv = {b.name: _finite(b.iv) for b in binned}
    chosen = [b for b in binned if b.iv >= options.min_iv]  # optbinning's selection_criteria={"iv": {"min": ...}}
    if not chosen:
        raise FengkongError(
            "no_informative_feature",
            f"no feature has an information value of at least {options.min_iv}; nothing to build a scorecard on",
            "features",
            422,
        )
    step("logistic regression", 0, 1)
    woe = np.empty((train.height, len(chosen)), dtype=np.float64, order="F")

    def fill(j: int) -> None:
        woe[:, j] = chosen[j].woe_column(train[chosen[j].name])

    parallel_map(fill, range(len(chosen)), options.n_jobs)
    # scikit-learn's default solver (lbfgs, as optbinning's Scorecard is usually given it) on a few dozen dense
    # WoE columns: a tall, narrow matrix, for which one BLAS thread is faster than several (measured: about
    # twice, and steadier when the cores are shared)
    sample_rows = options.prebin_rows or 0
    warm_start = 0 < sample_rows < train.height
    with threadpool_limits(limits=1, user_api="blas"):
        lr = LogisticRegression(max_iter=1000, warm_start=True)
        if warm_start:
            # on a large table, start from the fit on the binning's sample: a few iterations on every row
            # instead of a dozen (the optimum is the same; measured 0.2 s instead of 0.3 s at 700,000 rows)
            sample = stratified_sample(y_train, sample_rows, options.seed)
            lr.fit(woe[sample], y_train[sample])
        lr.fit(woe, y_train)
    step("logistic regression", 1, 1)
    scaling = options.scaling
    base, points = scorecard_points(
        chosen, lr.coef_[0], float(lr.intercept_[0]), scaling.pdo, scaling.base_odds, scaling.base_points
    )
    characteristics: list[CharacteristicSpec] = []
    for b, pts in zip(chosen, points, strict=True):
        bin_points, missing_points = [float(p) for p in pts[:-1]], float(pts[-1])
        if b.categories is not None:
            groups = b.groups
            bins = [BinSpec(values=g, points=p) for g, p in zip(groups, bin_points, strict=True)]
            # a category never seen in training scores as the worst bin: the cautious default
            bins.append(BinSpec(points=min(bin_points)))
        else:
            bins = [BinSpec(upper=e, points=p) for e, p in zip(b.edges, bin_points, strict=False)]
            bins.append(BinSpec(points=bin_points[-1]))
        if len(bins) == 1 and missing_points == bins[0].points:
            base += bins[0].points  # a characteristic that gives every row the same points is part of the base
            continue
        reason = options.reasons.get(b.name) or reason_for_feature(b.name, registry)
        characteristics.append(
            CharacteristicSpec(name=b.name, feature=b.name, reason=reason, bins=bins, missing_points=missing_points)
        )
    if not characteristics:
        raise FengkongError(
            "no_informative_feature", "every selected feature gives all rows the same points", "features", 422
        )
    spec = ScorecardSpec(
        name=name,
        version=version,
        kind="points_scorecard",
        description=options.description or f"Points scorecard trained on {options.target!r} with optbinning.",
        base_points=base,
        characteristics=characteristics,
        scaling=scaling,
    )
    # calibrate on the training rows' scores from the JSON table itself (calibrating leaves the score unchanged)
    uncalibrated = parse_scorecard(_json(spec).encode("utf-8"), name)
    step("calibrating", 0, 1)
    train_score = score_points(uncalibrated, train, points=False).score
    spec.calibration = fit_calibration(train_score, y_train, scaling, options.calibration, "training split")
    step("calibrating", 1, 1)
    artefact = _json(spec)
    model = parse_scorecard(artefact.encode("utf-8"), name)
    sampled = [b.name for b in binned if b.sampled]
    parameters = {
        "kind": "scorecard",
        "library": "optbinning",
        "min_iv": options.min_iv,
        "max_bins": options.max_bins,
        "monotonic": dict(options.monotonic),
        "prebinning": {
            "numbers": sorted({b.prebinning for b in binned if b.categories is None}),
            "sample_rows": options.prebin_rows if sampled else None,
            "sampled_features": sampled,
            "note": "bin statistics, WoE and IV are computed on every training row",
        },
        "screened": {
            "features": [b.name for b in binned if b.screened],
            "note": "the IV of their pre-bins was already below min_iv, so no binning of them could reach it; "
            "their IV is that of the pre-bins (an upper bound)",
        },
        "estimator": "LogisticRegression (lbfgs) on WoE"
        + (", warm-started from its fit on the pre-binning sample" if warm_start else ""),
        "calibration": options.calibration,
        "scaling": scaling.model_dump(),
        "candidates": [c.name for c in columns],
    }
    return _validated(
        "scorecard",
        artefact,
        model,
        model.features,
        parts,
        columns,
        options,
        parameters,
        iv,
        step,
        extra={"binnings": {b.name: b for b in chosen}, "coefficients": lr.coef_[0].tolist()},
        train_score=train_score,
    )


# ---------------------------------------------------------------------------------------------- gbdt


def _train_gbdt(
    parts: Parts,
    columns: list[FeatureColumn],
    options: TrainOptions,
    name: str,
    version: str,
    registry: FeatureRegistry,
    step: Progress,
) -> Trained:
    import lightgbm as lgb
    from sklearn.model_selection import train_test_split  # type: ignore[import-untyped, unused-ignore]
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped, unused-ignore]

    train, y_train = parts.train, parts.y_train
    fit_rows, cal_rows = train_test_split(  # positions among the training rows
        np.arange(train.height), test_size=options.calibration_fraction, stratify=y_train, random_state=options.seed
    )
    fit_rows, cal_rows = np.sort(fit_rows), np.sort(cal_rows)
    features: list[GbdtFeature] = []
    for c in columns:
        categories = None
        if c.type == "string":
            values = train[c.name].drop_nulls().unique().sort().to_list()
            categories = [str(v) for v in values]
        reason = options.reasons.get(c.name) or reason_for_feature(c.name, registry)
        features.append(GbdtFeature(name=c.name, feature=c.name, type=c.type, reason=reason, categories=categories))
    # encode with the model's own coding, so training and scoring read the same numbers
    placeholder = GbdtSpec(
        name=name,
        version=version,
        kind=GBDT_KIND,
        scaling=options.scaling,
        features=features,
        booster="placeholder",
    )
    x = encode_columns(features, [train[f.feature] for f in features])
    categorical = [i for i, f in enumerate(features) if f.type == "string"]
    constraints = [{"asc": 1, "desc": -1}.get(options.monotonic.get(f.feature, ""), 0) for f in features]
    params: dict[str, Any] = {
        "objective": "binary",
        "learning_rate": options.learning_rate,
        "num_leaves": options.num_leaves,
        "min_child_samples": options.min_child_samples,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "cat_smooth": 10.0,
        "min_data_per_group": 20,
        "seed": options.seed,
        "deterministic": True,
        "verbose": -1,
    }
    if any(constraints):
        params["monotone_constraints"] = constraints
        params["monotone_constraints_method"] = "advanced"
    fit_set = lgb.Dataset(
        x[fit_rows],
        y_train[fit_rows],
        categorical_feature=categorical or "auto",
        free_raw_data=False,
        feature_name=[f"f{i}" for i in range(len(features))],
    )
    stop_set = lgb.Dataset(x[cal_rows], y_train[cal_rows], reference=fit_set)

    def tick(env: Any) -> None:
        step("boosting (LightGBM)", env.iteration + 1, options.rounds)

    # LightGBM's OpenMP threads are limited from outside (threadpoolctl) rather than by its num_threads
    # parameter, which its text model would record: the artefact must not depend on the machine's load
    with threadpool_limits(limits=options.n_jobs or boosting_threads(), user_api="openmp"):
        booster = lgb.train(
            params,
            fit_set,
            num_boost_round=options.rounds,
            valid_sets=[stop_set],
            callbacks=[lgb.early_stopping(max(5, min(20, options.rounds // 10)), verbose=False), tick],
        )
    step("boosting (LightGBM)", options.rounds, options.rounds)
    best = booster.best_iteration or booster.current_iteration()
    text = booster.model_to_string(num_iteration=best)
    spec = placeholder.model_copy(update={"booster": text})
    spec.description = options.description or f"LightGBM GBDT trained on {options.target!r}."
    uncalibrated = parse_gbdt(_json(spec).encode("utf-8"), name)
    step("calibrating", 0, 1)
    del fit_set, stop_set
    # every training row is scored once (the model's own coding of the rows, as scoring reads them): the
    # held-out part calibrates, all of them are measured; calibrating leaves the score unchanged
    train_score = uncalibrated.score_matrix(x)
    del x
    spec.calibration = fit_calibration(
        train_score[cal_rows],
        y_train[cal_rows],
        options.scaling,
        options.calibration,
        "held-out part of the training split",
    )
    step("calibrating", 1, 1)
    artefact = _json(spec)
    model = parse_gbdt(artefact.encode("utf-8"), name)
    parameters = {
        "kind": "gbdt",
        "library": f"lightgbm {lgb.__version__}",
        "rounds": options.rounds,
        "best_iteration": int(best),
        "params": {k: v for k, v in params.items() if k != "verbose"},
        "monotonic": dict(options.monotonic),
        "calibration": options.calibration,
        "calibration_fraction": options.calibration_fraction,
        "scaling": options.scaling.model_dump(),
        "candidates": [c.name for c in columns],
    }
    step("information values (optbinning)", 0, 1)
    iv = _information_values(train, y_train, columns, options)
    step("information values (optbinning)", 1, 1)
    return _validated(
        "gbdt", artefact, model, model.features, parts, columns, options, parameters, iv, step, train_score=train_score
    )


def boosting_threads() -> int:
    """LightGBM's threads: one per core that other processes leave free right now (at least one).

    OpenMP threads that must share a core with another busy process spin at every barrier and slow down
    several-fold, while on a quiet machine every core helps (``benchmarks/models.py`` times the LightGBM
    baseline on its default threads and on one, and prints both). The model does not depend on the number
    (``deterministic``; tested)."""
    cores = os.cpu_count() or 1
    return max(1, min(cores, cores - math.floor(others_busy_cores() + 0.5)))


def others_busy_cores(window: float = 0.1) -> float:
    """How many cores other processes kept busy over the last ``window`` seconds: the machine's busy time
    (``/proc/stat``) less this process's own (the 1-minute load average would count this process's own
    binning a moment ago). Where there is no ``/proc``, the load average."""
    first = cpu_sample()
    if first is None:
        try:
            return os.getloadavg()[0]
        except OSError:  # not every platform reports one
            return 0.0
    time.sleep(window)
    second = cpu_sample()
    return 0.0 if second is None else others_between(first, second)


def cpu_sample() -> tuple[float, float, float] | None:
    """(seconds the machine's cores have been busy, seconds this process has run, a clock), or None without
    ``/proc/stat``."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            ticks = [float(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    own = os.times()
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    return busy, own.user + own.system, time.perf_counter()


def others_between(first: tuple[float, float, float], second: tuple[float, float, float]) -> float:
    """Cores kept busy by other processes between two :func:`cpu_sample` readings."""
    machine, own, elapsed = (b - a for a, b in zip(first, second, strict=True))
    return max(0.0, (machine - own) / elapsed) if elapsed > 0 else 0.0


def _information_values(
    train: pl.DataFrame, y: npt.NDArray[np.int8], columns: list[FeatureColumn], options: TrainOptions
) -> dict[str, float | None]:
    """IV per candidate feature with optbinning (no monotonic trend asked: the report's view of each feature)."""
    with _quiet():
        binned = fit_binnings(
            train, y, columns, prebin_rows=options.prebin_rows, seed=options.seed, n_jobs=options.n_jobs
        )
    return {b.name: _finite(b.iv) for b in binned}


# ---------------------------------------------------------------------------------------------- validation


def _validated(
    kind: str,
    artefact: str,
    model: ScoreModel,
    features: list[str],
    parts: Parts,
    columns: list[FeatureColumn],
    options: TrainOptions,
    parameters: dict[str, Any],
    iv: Mapping[str, float | None],
    step: Progress,
    extra: Mapping[str, Any] | None = None,
    train_score: npt.NDArray[np.float64] | None = None,
) -> Trained:
    """Measure the registered artefact itself on both parts, and fix the bins monitoring will compare against.
    ``train_score``: the training rows' scores when already computed (calibration does not change them)."""
    step("validating", 0, 2)
    train, y_train, y_valid = parts.train, parts.y_train, parts.y_valid
    if train_score is None:
        train_scored = score_points(model, train, points=False)
    else:
        train_scored = Scored(train_score, model.pd(train_score), None)
    valid_scored = score_points(model, parts.valid, points=False)
    metrics: dict[str, Any] = {
        "train": performance(y_train, train_scored.score, train_scored.pd),
        "valid": performance(y_valid, valid_scored.score, valid_scored.pd),
        "psi_score_train_valid": score_psi(train_scored.score, valid_scored.score),
        "iv": dict(iv),
    }
    step("validating", 1, 2)
    kept = [c.name for c in columns if c.name in features]
    baseline = {
        "score": stability_bins(pl.Series("score", train_scored.score)),
        "features": dict(
            zip(kept, parallel_map(lambda name: stability_bins(train[name]), kept, options.n_jobs), strict=True)
        ),
        "valid": {"auc": metrics["valid"]["auc"], "ks": metrics["valid"]["ks"]},
    }
    training = {"parameters": parameters, "stability": baseline, "feature_types": {c.name: c.type for c in columns}}
    step("validating", 2, 2)
    report = {
        "train": train_scored,
        "valid": valid_scored,
        "y_train": y_train,
        "y_valid": y_valid,
        "train_frame": train.select(features),
        "valid_frame": parts.valid.select(features),
        **(extra or {}),
    }
    return Trained(
        kind=kind,
        artefact=artefact,
        model=model,
        features=features,
        metrics=metrics,
        training=training,
        data_fingerprint="",
        target=options.target,
        description=options.description,
        report=report,
    )


def renamed(trained: Trained, name: str, version: str) -> Trained:
    """The same model under another NAME@VERSION (the artefact names itself, so it is written again)."""
    if trained.model.version_label == f"{name}@{version}":
        return trained
    doc = json.loads(trained.artefact)
    doc["name"], doc["version"] = name, version
    spec: ScorecardSpec | GbdtSpec
    if doc.get("kind") == GBDT_KIND:
        spec = GbdtSpec.model_validate(doc)
        model: ScoreModel = parse_gbdt(_json(spec).encode("utf-8"), name)
    else:
        spec = ScorecardSpec.model_validate(doc)
        model = parse_scorecard(_json(spec).encode("utf-8"), name)
    return dataclasses.replace(trained, artefact=_json(spec), model=model)


def _json(spec: ScorecardSpec | GbdtSpec) -> str:
    return json.dumps(spec.model_dump(exclude_none=True), ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


__all__ = ["KINDS", "Calibration", "Progress", "Scored", "TrainOptions", "Trained", "train_model"]
