"""Points scaling and probability-of-default calibration, stored as plain numbers in a model's JSON artefact.

Scaling is the usual scorecard convention: ``score = offset − factor × ln(odds of bad)`` with
``factor = pdo / ln 2`` and ``offset = base_points − factor × ln(base_odds)``, so ``base_points`` is the score at
good:bad odds of ``base_odds`` and every ``pdo`` points more doubles the odds. Higher scores are better.

Calibration maps a score to a probability of default (PD) fitted on outcomes with scikit-learn (Platt scaling:
a one-feature logistic regression; or isotonic regression). Both are stored as numbers and evaluated here with
numpy, so a model loads and scores without scikit-learn or pickle.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

FloatArray = npt.NDArray[np.float64]

PD_FLOOR = 1e-6  # a PD of exactly 0 or 1 is never a credible estimate


class Scaling(BaseModel):
    """Points to double the odds (PDO) scaling."""

    model_config = ConfigDict(extra="forbid")
    base_points: float = Field(600.0, description="the score at the base odds")
    base_odds: float = Field(50.0, gt=0, description="good:bad odds at base_points (50 means PD ≈ 1.96%)")
    pdo: float = Field(20.0, gt=0, description="points to double the odds")

    @property
    def factor(self) -> float:
        return self.pdo / math.log(2.0)

    @property
    def offset(self) -> float:
        return self.base_points - self.factor * math.log(self.base_odds)

    def score_from_log_odds(self, log_odds_bad: FloatArray) -> FloatArray:
        result: FloatArray = self.offset - self.factor * log_odds_bad
        return result

    def log_odds_from_score(self, score: FloatArray) -> FloatArray:
        result: FloatArray = (self.offset - score) / self.factor
        return result


class Calibration(BaseModel):
    """Score → PD. ``platt``: ``PD = 1 / (1 + exp(−(slope × x + intercept)))`` where ``x`` is the log-odds of bad
    the score stands for under the model's scaling. ``isotonic``: piecewise linear through the knots, flat
    beyond them (what scikit-learn's IsotonicRegression with ``out_of_bounds="clip"`` predicts)."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["platt", "isotonic"]
    slope: float | None = None
    intercept: float | None = None
    score_knots: list[float] | None = None
    pd_knots: list[float] | None = None
    fitted_on: str = Field("", description="which rows the calibration was fitted on")

    @model_validator(mode="after")
    def _complete(self) -> Calibration:
        if self.method == "platt" and (self.slope is None or self.intercept is None):
            raise ValueError("platt calibration needs slope and intercept")
        if self.method == "isotonic":
            if not self.score_knots or not self.pd_knots or len(self.score_knots) != len(self.pd_knots):
                raise ValueError("isotonic calibration needs score_knots and pd_knots of the same length")
            if any(b < a for a, b in zip(self.score_knots, self.score_knots[1:], strict=False)):
                raise ValueError("score_knots must not decrease")
        return self

    def pd(self, score: FloatArray, scaling: Scaling) -> FloatArray:
        """The calibrated PD of each score (NaN stays NaN)."""
        if self.method == "platt":
            assert self.slope is not None and self.intercept is not None
            z = self.slope * scaling.log_odds_from_score(score) + self.intercept
            out: FloatArray = 1.0 / (1.0 + np.exp(-z))
        else:
            assert self.score_knots is not None and self.pd_knots is not None
            out = np.interp(score, np.asarray(self.score_knots), np.asarray(self.pd_knots))
            out = np.where(np.isnan(score), np.nan, out)
        return np.clip(out, PD_FLOOR, 1.0 - PD_FLOOR)


def uncalibrated_pd(score: FloatArray, scaling: Scaling) -> FloatArray:
    """The PD the scaling alone implies (used when a model carries no calibration, e.g. a judgemental card)."""
    out: FloatArray = 1.0 / (1.0 + np.exp(-scaling.log_odds_from_score(score)))
    return np.clip(out, PD_FLOOR, 1.0 - PD_FLOOR)


def fit_calibration(
    score: FloatArray, bad: npt.NDArray[np.int8], scaling: Scaling, method: str, fitted_on: str
) -> Calibration:
    """Fit a calibration with scikit-learn and keep only its numbers.

    A scorecard's scores are whole points, so a million rows hold a few hundred distinct scores: rows are then
    grouped by (score, outcome) and fitted with the counts as sample weights, the same likelihood at a fraction
    of the cost."""
    from sklearn.isotonic import IsotonicRegression  # type: ignore[import-untyped, unused-ignore]
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped, unused-ignore]

    score, bad, weight = _grouped(np.asarray(score, dtype=np.float64), np.asarray(bad))
    if method == "platt":
        x = scaling.log_odds_from_score(score).reshape(-1, 1)
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(x, bad, sample_weight=weight)
        return Calibration(
            method="platt",
            slope=float(lr.coef_[0][0]),
            intercept=float(lr.intercept_[0]),
            fitted_on=fitted_on,
        )
    if method == "isotonic":
        iso = IsotonicRegression(increasing=False, out_of_bounds="clip", y_min=0.0, y_max=1.0)
        iso.fit(score, bad, sample_weight=weight)
        return Calibration(
            method="isotonic",
            score_knots=[float(v) for v in iso.X_thresholds_],
            pd_knots=[float(v) for v in iso.y_thresholds_],
            fitted_on=fitted_on,
        )
    raise ValueError(f"unknown calibration method {method!r}")


def _grouped(
    score: FloatArray, bad: npt.NDArray[np.int8]
) -> tuple[FloatArray, npt.NDArray[np.int8], FloatArray | None]:
    """Distinct (score, outcome) pairs and their counts when that is much shorter than the rows (else the rows)."""
    values, inverse = np.unique(score, return_inverse=True)
    if values.size * 8 > score.size:
        return score, bad, None
    bads = np.bincount(inverse, weights=(bad == 1).astype(np.float64), minlength=values.size)
    rows = np.bincount(inverse, minlength=values.size).astype(np.float64)
    goods = rows - bads
    keep_bad, keep_good = bads > 0, goods > 0
    grouped_score = np.concatenate([values[keep_good], values[keep_bad]])
    outcome = np.concatenate([np.zeros(keep_good.sum(), np.int8), np.ones(keep_bad.sum(), np.int8)])
    return grouped_score, outcome, np.concatenate([goods[keep_good], bads[keep_bad]])
