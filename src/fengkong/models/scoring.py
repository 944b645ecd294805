"""Batch scoring of a table with a loaded model: score, calibrated PD and the top reasons per row.

A scorecard scores with the polars expressions its JSON table compiles to (no training library needed); a GBDT
with LightGBM's TreeSHAP. The score sums points in characteristic order exactly as the policy compiler does,
so a file scored here and a decision made by a policy give the same score for the same row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from fengkong.errors import FengkongError
from fengkong.models.base import ScoreModel, top_lost
from fengkong.models.calibration import FloatArray
from fengkong.models.gbdt import GbdtModel
from fengkong.models.scorecard import Scorecard


@dataclass(frozen=True)
class Scored:
    score: FloatArray
    pd: FloatArray
    points: FloatArray | None  # rows × characteristics (None when only the score was asked for)

    @property
    def rows(self) -> int:
        return int(self.score.shape[0])


def characteristic_names(model: ScoreModel) -> list[str]:
    if isinstance(model, Scorecard):
        return [c.name for c in model.spec.characteristics]
    if isinstance(model, GbdtModel):
        return [f.name for f in model.spec.features]
    return list(model.features)


def check_columns(model: ScoreModel, frame: pl.DataFrame, what: str = "data") -> None:
    absent = [f for f in dict.fromkeys(model.features) if f not in frame.columns]
    if absent:
        raise FengkongError(
            "feature_not_found",
            f"the {what} lacks column(s) the model {model.version_label} reads: {', '.join(absent)}",
            absent[0],
            422,
        )
    for name, kind in _input_types(model).items():
        column = frame[name]
        if kind == "string" or column.dtype != pl.String:
            continue  # text reads anything as text; numbers and booleans read numbers and booleans
        try:
            column.cast(pl.Float64 if kind == "number" else pl.Boolean)
        except pl.exceptions.PolarsError:
            sample = column.drop_nulls().head(1).to_list()
            raise FengkongError(
                "feature_type",
                f"the {what}'s column {name!r} holds text (e.g. {sample[0]!r}); the model "
                f"{model.version_label} reads it as {'a number' if kind == 'number' else 'true/false'}",
                name,
                422,
            ) from None


def _input_types(model: ScoreModel) -> dict[str, str]:
    """Feature → how the model reads it: number, string or bool (a scorecard's numeric bins read numbers)."""
    if isinstance(model, Scorecard):
        return {
            c.feature: "number" if any(b.upper is not None for b in c.bins) else "string"
            for c in model.spec.characteristics
            if len(c.bins) > 1  # one catch-all bin reads only whether the value is missing
        }
    if isinstance(model, GbdtModel):
        return {f.feature: f.type for f in model.spec.features}
    return {}


def prepared_inputs(model: ScoreModel, frame: pl.DataFrame) -> pl.DataFrame:
    """The model's input columns, cast as the policy compiler's ``normalize_frame`` casts them."""
    casts = []
    if isinstance(model, Scorecard):
        for c in model.spec.characteristics:
            numeric = any(b.upper is not None for b in c.bins)
            if numeric and frame[c.feature].dtype != pl.Boolean:
                casts.append(pl.col(c.feature).cast(pl.Float64).fill_nan(None))
            elif not numeric:
                casts.append(pl.col(c.feature).cast(pl.String))
    elif isinstance(model, GbdtModel):
        for f in model.spec.features:
            if f.type == "number":
                casts.append(pl.col(f.feature).cast(pl.Float64).fill_nan(None))
            elif f.type == "string":
                casts.append(pl.col(f.feature).cast(pl.String))
            else:
                casts.append(pl.col(f.feature).cast(pl.Boolean))
    return frame.select(list(dict.fromkeys(model.features))).with_columns(casts)


def score_points(model: ScoreModel, frame: pl.DataFrame, points: bool = True) -> Scored:
    """Score, PD and per-characteristic points of every row.

    ``points=False`` skips a GBDT's TreeSHAP (the costly part: about 100 µs a row) and takes the score from
    LightGBM's raw log-odds, equal to the sum of the points up to rounding; a scorecard then sums its points in
    one polars query without returning them: for measuring, not for reasons."""
    if isinstance(model, Scorecard) and not points:
        score = _summed(model, frame)
        return Scored(score, model.pd(score), None)
    check_columns(model, frame)
    inputs = prepared_inputs(model, frame)
    if isinstance(model, GbdtModel) and not points:
        matrix = model.encode_columns([inputs[f.feature] for f in model.spec.features])
        score = model.score_matrix(matrix)
        return Scored(score, model.pd(score), None)
    if isinstance(model, GbdtModel):
        table = model.points_matrix(model.encode_columns([inputs[f.feature] for f in model.spec.features]))
    else:
        lazy, exprs = model.points_columns(inputs.lazy())
        names = [f"__p{i}" for i in range(len(exprs))]
        collected = lazy.select([e.alias(n) for e, n in zip(exprs, names, strict=True)]).collect()
        table = collected.to_numpy().astype(np.float64, copy=False).reshape(inputs.height, len(names))
    score = np.full(inputs.height, model.base_points, dtype=np.float64)
    for j in range(table.shape[1]):
        score = score + table[:, j]  # left to right, as the compiler adds them
    return Scored(score, model.pd(score), table)


def score_only(model: Scorecard, frame: pl.DataFrame) -> pl.DataFrame:
    """Score and PD as one polars query (the fast path for a scorecard: no per-characteristic output)."""
    score = _summed(model, frame)
    return pl.DataFrame([pl.Series("score", score), pl.Series("pd", model.pd(score))])


def _summed(model: Scorecard, frame: pl.DataFrame) -> FloatArray:
    check_columns(model, frame)
    total: pl.Expr = pl.lit(model.base_points, dtype=pl.Float64)
    for p in model.points_exprs():
        total = total + p
    score: FloatArray = prepared_inputs(model, frame).lazy().select(total.alias("score")).collect()["score"].to_numpy()
    return score


def scored_frame(model: ScoreModel, frame: pl.DataFrame, reasons: int = 3, keep: bool = True) -> pl.DataFrame:
    """The input (when ``keep``) with ``score``, ``pd`` and, per rank k, ``reason_k`` (the characteristic that
    cost the k-th most points or pushed the risk up the k-th most) and ``reason_code_k``."""
    scored = score_points(model, frame)
    assert scored.points is not None
    lost = np.asarray(model.max_points(), dtype=np.float64)[None, :] - scored.points
    top = top_lost(lost, reasons)
    names = np.asarray([*characteristic_names(model), ""], dtype=object)
    codes = np.asarray([*model.reasons(), ""], dtype=object)
    columns: list[pl.Series] = [pl.Series("score", scored.score), pl.Series("pd", scored.pd)]
    for k in range(reasons):
        index = top[:, k]
        columns.append(pl.Series(f"reason_{k + 1}", names[index].tolist(), dtype=pl.String).replace("", None))
        columns.append(pl.Series(f"reason_code_{k + 1}", codes[index].tolist(), dtype=pl.String).replace("", None))
    out = pl.DataFrame(columns)
    if keep:
        clash = [c for c in out.columns if c in frame.columns]
        base = frame.drop(clash) if clash else frame
        return pl.concat([base, out], how="horizontal")
    return out
