"""Discrimination, calibration and stability measures, from scikit-learn where it has them.

- AUC (``roc_auc_score``), KS (the largest gap between the cumulative bad and good distributions, read off
  ``roc_curve`` as max(TPR − FPR)), Gini (2·AUC − 1), Brier score (``brier_score_loss`` on the calibrated PD);
- PSI (population stability index) ``Σ (a − e) · ln(a / e)`` over bins fixed on the training data, with
  empty bins floored at 0.0001 so one empty bin does not make it infinite. Usual reading: below 0.1 stable,
  0.1–0.25 some shift, above 0.25 a major shift.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from fengkong.models.calibration import FloatArray

PSI_FLOOR = 1e-4
STABILITY_BINS = 10
MAX_CATEGORIES = 20
OTHER = "__other__"
MISSING = "__missing__"


def discrimination(bad: npt.NDArray[Any], pd: FloatArray) -> dict[str, float]:
    """AUC, KS and Gini of a PD (higher = riskier) against outcomes, from one ROC curve (one sort of the rows:
    ``roc_auc_score`` is the area under this same curve)."""
    from sklearn.metrics import auc, roc_curve  # type: ignore[import-untyped, unused-ignore]

    fpr, tpr, _ = roc_curve(bad, pd)
    area = float(auc(fpr, tpr))
    ks = float(np.max(tpr - fpr))
    return {"auc": area, "ks": ks, "gini": 2 * area - 1}


def performance(bad: npt.NDArray[Any], score: FloatArray, pd: FloatArray) -> dict[str, float]:
    """Discrimination of the score and the Brier score and mean of the calibrated PD."""
    from sklearn.metrics import brier_score_loss  # type: ignore[import-untyped, unused-ignore]

    out = discrimination(bad, -score)  # the score is better-is-higher; rank by it (PD ties would blur KS)
    out["brier"] = float(brier_score_loss(bad, pd))
    out["bad_rate"] = float(np.mean(bad))
    out["mean_pd"] = float(np.mean(pd))
    out["rows"] = float(len(bad))
    return out


# ---------------------------------------------------------------------------------------------- stability


def stability_bins(values: pl.Series) -> dict[str, Any]:
    """Bins fixed on training values: deciles for numbers, the most frequent categories for text."""
    missing = values.null_count() / max(values.len(), 1)
    if values.dtype == pl.String:
        counts = values.drop_nulls().value_counts(sort=True)
        top = [str(v) for v in counts[values.name].head(MAX_CATEGORIES).to_list()]
        shares = _shares_categorical(values, top)
        return {"type": "categorical", "categories": top, "shares": shares, "missing": missing}
    numbers = values.cast(pl.Float64).drop_nulls().to_numpy()
    if numbers.size == 0:
        return {"type": "numeric", "edges": [], "shares": [], "missing": missing}
    edges = np.unique(np.quantile(numbers, np.linspace(0, 1, STABILITY_BINS + 1)[1:-1]))
    spec: dict[str, Any] = {"type": "numeric", "edges": [float(e) for e in edges], "missing": missing}
    spec["shares"] = _shares_numeric(values, spec["edges"])
    return spec


def _shares_numeric(values: pl.Series, edges: list[float]) -> list[float]:
    numbers = values.cast(pl.Float64).fill_nan(None).drop_nulls().to_numpy()
    total = max(values.len(), 1)
    counts = np.bincount(np.searchsorted(np.asarray(edges), numbers, side="right"), minlength=len(edges) + 1)
    return [float(c) / total for c in counts]


def _shares_categorical(values: pl.Series, categories: list[str]) -> list[float]:
    total = max(values.len(), 1)
    present = values.drop_nulls().cast(pl.String)
    counts = present.value_counts()
    lookup = dict(zip(counts[present.name].to_list(), counts["count"].to_list(), strict=True))
    shares = [lookup.get(c, 0) / total for c in categories]
    shares.append((present.len() - sum(lookup.get(c, 0) for c in categories)) / total)  # other
    return shares


def psi_against(spec: dict[str, Any], values: pl.Series) -> float:
    """PSI of ``values`` against the training shares in ``spec`` (missing values are a bin of their own)."""
    if values.len() == 0:
        return math.nan
    if spec["type"] == "categorical":
        actual = _shares_categorical(values.cast(pl.String), spec["categories"])
    else:
        actual = _shares_numeric(values, spec["edges"])
    expected = [*spec["shares"], spec["missing"]]
    actual = [*actual, values.null_count() / values.len() if values.dtype != pl.Float64 else _missing(values)]
    return psi(np.asarray(expected), np.asarray(actual))


def _missing(values: pl.Series) -> float:
    return float((values.is_null() | values.is_nan()).sum()) / values.len()


def psi(expected: FloatArray, actual: FloatArray) -> float:
    e = np.maximum(expected, PSI_FLOOR)
    a = np.maximum(actual, PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def score_psi(train_score: FloatArray, other_score: FloatArray) -> float:
    spec = stability_bins(pl.Series("score", train_score))
    return psi_against(spec, pl.Series("score", other_score))


def psi_reading(value: float) -> str:
    if value != value:
        return "n/a"
    if value < 0.1:
        return "stable"
    if value < 0.25:
        return "some shift"
    return "major shift"
