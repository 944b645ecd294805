"""Training: a points scorecard (optbinning) or gradient-boosted trees (LightGBM), calibrated and validated.

Both kinds follow the same steps: check the table, split it (stratified, or out-of-time on a time column), fit,
write the artefact, load the artefact back and measure *it* (so the metrics are those of exactly what gets
registered), calibrate the PD, and collect what the validation report and later monitoring need.

- Scorecard: optbinning's ``BinningProcess`` (optimal binning, monotonic event-rate trends — asked per feature
  or ``auto_asc_desc`` for every number —, weight of evidence, information-value selection) and its
  ``Scorecard`` (logistic regression on WoE, points scaled by base points, base odds and PDO, rounded to whole
  points) — then converted to fengkong's JSON table of characteristics, bins and points. The logistic
  regression has few parameters, so its PD is calibrated on the training rows.
- GBDT: LightGBM with optional monotone constraints; a stratified part of the training rows (20 % by default)
  is held out for early stopping and for the calibration, since trees fit their own training rows too well.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from fengkong.errors import FengkongError
from fengkong.features.registry import FEATURES, FeatureRegistry
from fengkong.models.base import ScoreModel, reason_for_feature
from fengkong.models.calibration import Calibration, Scaling, fit_calibration
from fengkong.models.data import (
    FeatureColumn,
    Split,
    binary_target,
    feature_columns,
    fingerprint,
    normalized,
    split_rows,
    to_pandas,
)
from fengkong.models.gbdt import GBDT_KIND, GbdtFeature, GbdtSpec, encode_columns, parse_gbdt
from fengkong.models.metrics import performance, score_psi, stability_bins
from fengkong.models.scorecard import BinSpec, CharacteristicSpec, ScorecardSpec, parse_scorecard
from fengkong.models.scoring import Scored, score_points
from fengkong.reasons import is_known

# progress(task, done, total): a step of training moved on (the CLI draws a progress bar from it)
Progress = Callable[[str, int, int], None]

KINDS = ("scorecard", "gbdt")
TRENDS = {"asc": "ascending", "desc": "descending"}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """optbinning 1.0 calls pandas APIs that pandas 3 deprecates; its warnings are not ours to act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*inplace.*")
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
    digest = fingerprint(frame)
    step("checking the data", 1, 1)
    y = data[options.target].to_numpy().astype(np.int8)
    if options.kind == "scorecard":
        trained = _train_scorecard(data, y, columns, split, options, name, version, registry, step)
    else:
        trained = _train_gbdt(data, y, columns, split, options, name, version, registry, step)
    trained.data_fingerprint = digest
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


# ---------------------------------------------------------------------------------------------- scorecard


def _train_scorecard(
    data: pl.DataFrame,
    y: npt.NDArray[np.int8],
    columns: list[FeatureColumn],
    split: Split,
    options: TrainOptions,
    name: str,
    version: str,
    registry: FeatureRegistry,
    step: Progress,
) -> Trained:
    from optbinning import BinningProcess, Scorecard  # type: ignore[import-untyped, unused-ignore]
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped, unused-ignore]

    names = [c.name for c in columns]
    categorical = [c.name for c in columns if c.type == "string"]
    fit_params: dict[str, dict[str, Any]] = {}
    for c in columns:
        if c.type != "string":
            fit_params[c.name] = {"monotonic_trend": TRENDS.get(options.monotonic.get(c.name, ""), "auto_asc_desc")}
    train = data[split.train]
    step("binning (optbinning)", 0, 3)
    process = BinningProcess(
        names,
        categorical_variables=categorical or None,
        selection_criteria={"iv": {"min": options.min_iv}},
        binning_fit_params=fit_params,
        max_n_bins=options.max_bins,
        n_jobs=_jobs(len(names)),
    )
    scaling = options.scaling
    card = Scorecard(
        process,
        LogisticRegression(max_iter=2000),
        scaling_method="pdo_odds",
        scaling_method_params={"pdo": scaling.pdo, "odds": scaling.base_odds, "scorecard_points": scaling.base_points},
        intercept_based=True,
        rounding=True,
    )
    x_train = to_pandas(train.select(names))
    try:
        with _quiet():
            card.fit(x_train, y[split.train])
    except ValueError as exc:
        if "selected" in str(exc).lower() or "0 feature" in str(exc):
            raise FengkongError(
                "no_informative_feature",
                f"no feature has an information value of at least {options.min_iv}; nothing to build a scorecard on",
                "features",
                422,
            ) from None
        raise
    step("binning (optbinning)", 2, 3)
    fitted = card.binning_process_
    selected = list(fitted.get_support(names=True))
    if not selected:
        raise FengkongError(
            "no_informative_feature",
            f"no feature has an information value of at least {options.min_iv}; nothing to build a scorecard on",
            "features",
            422,
        )
    with _quiet():
        summary = fitted.summary()
        table = card.table(style="detailed")
    iv = {str(r["name"]): _finite(r["iv"]) for _, r in summary.iterrows()}
    base = float(card.intercept_)
    characteristics: list[CharacteristicSpec] = []
    for var in selected:
        optb = fitted.get_binned_variable(var)
        rows = table[table["Variable"] == var]
        points = [float(p) for p in rows["Points"].tolist()]
        missing_points = points[-1]  # optbinning's rows: the bins, then Special, then Missing
        if optb.dtype == "categorical":
            groups = [[str(v) for v in group] for group in optb.splits]
            bin_points = points[: len(groups)]
            bins = [BinSpec(values=g, points=p) for g, p in zip(groups, bin_points, strict=True)]
            # a category never seen in training scores as the worst bin: the cautious default
            bins.append(BinSpec(points=min(bin_points)))
        else:
            edges = [float(s) for s in optb.splits]
            bin_points = points[: len(edges) + 1]
            bins = [BinSpec(upper=e, points=p) for e, p in zip(edges, bin_points, strict=False)]
            bins.append(BinSpec(points=bin_points[-1]))
        if len(bins) == 1 and missing_points == bins[0].points:
            base += bins[0].points  # a characteristic that gives every row the same points is part of the base
            continue
        reason = options.reasons.get(var) or reason_for_feature(var, registry)
        characteristics.append(
            CharacteristicSpec(name=var, feature=var, reason=reason, bins=bins, missing_points=missing_points)
        )
    if not characteristics:
        raise FengkongError(
            "no_informative_feature", "every selected feature gives all rows the same points", "features", 422
        )
    step("binning (optbinning)", 3, 3)
    spec = ScorecardSpec(
        name=name,
        version=version,
        kind="points_scorecard",
        description=options.description or f"Points scorecard trained on {options.target!r} with optbinning.",
        base_points=base,
        characteristics=characteristics,
        scaling=scaling,
    )
    # calibrate on the training rows' scores from the JSON table itself
    uncalibrated = parse_scorecard(_json(spec).encode("utf-8"), name)
    step("calibrating", 0, 1)
    train_scored = score_points(uncalibrated, train)
    spec.calibration = fit_calibration(
        train_scored.score, y[split.train], scaling, options.calibration, "training split"
    )
    step("calibrating", 1, 1)
    artefact = _json(spec)
    model = parse_scorecard(artefact.encode("utf-8"), name)
    features = model.features
    parameters = {
        "kind": "scorecard",
        "library": "optbinning",
        "min_iv": options.min_iv,
        "max_bins": options.max_bins,
        "monotonic": dict(options.monotonic),
        "calibration": options.calibration,
        "scaling": scaling.model_dump(),
        "candidates": [c.name for c in columns],
    }
    with _quiet():
        optbinning_score = np.asarray(card.score(to_pandas(data[split.valid].select(names))), dtype=np.float64)
    return _validated(
        "scorecard",
        artefact,
        model,
        features,
        data,
        y,
        split,
        columns,
        options,
        parameters,
        iv,
        step,
        extra={"optbinning_valid_score": optbinning_score},
    )


# ---------------------------------------------------------------------------------------------- gbdt


def _train_gbdt(
    data: pl.DataFrame,
    y: npt.NDArray[np.int8],
    columns: list[FeatureColumn],
    split: Split,
    options: TrainOptions,
    name: str,
    version: str,
    registry: FeatureRegistry,
    step: Progress,
) -> Trained:
    import lightgbm as lgb
    from sklearn.model_selection import train_test_split  # type: ignore[import-untyped, unused-ignore]

    train_rows = split.train
    fit_rows, cal_rows = train_test_split(
        train_rows, test_size=options.calibration_fraction, stratify=y[train_rows], random_state=options.seed
    )
    fit_rows, cal_rows = np.sort(fit_rows), np.sort(cal_rows)
    features: list[GbdtFeature] = []
    for c in columns:
        categories = None
        if c.type == "string":
            values = data[split.train][c.name].drop_nulls().unique().sort().to_list()
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
    x = encode_columns(features, [data[f.feature] for f in features])
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
        y[fit_rows],
        categorical_feature=categorical or "auto",
        free_raw_data=False,
        feature_name=[f"f{i}" for i in range(len(features))],
    )
    stop_set = lgb.Dataset(x[cal_rows], y[cal_rows], reference=fit_set)

    def tick(env: Any) -> None:
        step("boosting (LightGBM)", env.iteration + 1, options.rounds)

    booster = lgb.train(
        params,
        fit_set,
        num_boost_round=options.rounds,
        valid_sets=[stop_set],
        callbacks=[lgb.early_stopping(max(10, options.rounds // 10), verbose=False), tick],
    )
    step("boosting (LightGBM)", options.rounds, options.rounds)
    best = booster.best_iteration or booster.current_iteration()
    text = booster.model_to_string(num_iteration=best)
    spec = placeholder.model_copy(update={"booster": text})
    spec.description = options.description or f"LightGBM GBDT trained on {options.target!r}."
    uncalibrated = parse_gbdt(_json(spec).encode("utf-8"), name)
    step("calibrating", 0, 1)
    cal_scored = score_points(uncalibrated, data[cal_rows], points=False)
    spec.calibration = fit_calibration(
        cal_scored.score, y[cal_rows], options.scaling, options.calibration, "held-out part of the training split"
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
    iv = _information_values(data[split.train], y[split.train], columns, options.seed)
    return _validated("gbdt", artefact, model, model.features, data, y, split, columns, options, parameters, iv, step)


def _information_values(
    train: pl.DataFrame, y: npt.NDArray[np.int8], columns: list[FeatureColumn], seed: int
) -> dict[str, float | None]:
    """IV per candidate feature with optbinning (on at most 200,000 training rows: IV needs no more)."""
    from optbinning import BinningProcess

    names = [c.name for c in columns]
    rows = np.arange(train.height)
    if train.height > 200_000:
        rows = np.sort(np.random.default_rng(seed).choice(train.height, 200_000, replace=False))
    process = BinningProcess(
        names, categorical_variables=[c.name for c in columns if c.type == "string"] or None, n_jobs=_jobs(len(names))
    )
    with _quiet():
        process.fit(to_pandas(train[rows].select(names)), y[rows])
        summary = process.summary()
    return {str(r["name"]): _finite(r["iv"]) for _, r in summary.iterrows()}


# ---------------------------------------------------------------------------------------------- validation


def _validated(
    kind: str,
    artefact: str,
    model: ScoreModel,
    features: list[str],
    data: pl.DataFrame,
    y: npt.NDArray[np.int8],
    split: Split,
    columns: list[FeatureColumn],
    options: TrainOptions,
    parameters: dict[str, Any],
    iv: Mapping[str, float | None],
    step: Progress,
    extra: Mapping[str, Any] | None = None,
) -> Trained:
    """Measure the registered artefact itself on both parts, and fix the bins monitoring will compare against."""
    step("validating", 0, 2)
    train_scored = score_points(model, data[split.train], points=False)
    valid_scored = score_points(model, data[split.valid], points=False)
    y_train, y_valid = y[split.train], y[split.valid]
    metrics: dict[str, Any] = {
        "train": performance(y_train, train_scored.score, train_scored.pd),
        "valid": performance(y_valid, valid_scored.score, valid_scored.pd),
        "psi_score_train_valid": score_psi(train_scored.score, valid_scored.score),
        "iv": dict(iv),
    }
    step("validating", 1, 2)
    train = data[split.train]
    baseline = {
        "score": stability_bins(pl.Series("score", train_scored.score)),
        "features": {c.name: stability_bins(train[c.name]) for c in columns if c.name in features},
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
        "valid_frame": data[split.valid].select(features),
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


def _jobs(variables: int) -> int:
    """optbinning bins variables on this many threads (its trees and solver release the GIL)."""
    return max(1, min(os.cpu_count() or 1, variables))


def _json(spec: ScorecardSpec | GbdtSpec) -> str:
    return json.dumps(spec.model_dump(exclude_none=True), ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


__all__ = ["KINDS", "Calibration", "Progress", "Scored", "TrainOptions", "Trained", "train_model"]
