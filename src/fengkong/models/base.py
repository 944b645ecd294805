"""What a policy needs from a scoring model, whatever its kind, and the reason code of each characteristic.

A policy's ``score:`` section names a model; the compiler scores with it through ``ScoreModel`` only, so a
points scorecard and a gradient-boosted tree model decide (row by row and table by table) with one meaning:
``score = base_points + Σ points``, a characteristic's *lost points* are ``max_points − points``, and the
characteristics that lost most are the score's principal reasons.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl

from fengkong.features.registry import FeatureRegistry
from fengkong.models.calibration import FloatArray
from fengkong.models.scorecard import CharacteristicScore, resolve_scorecard


class ScoreModel(Protocol):
    """A loaded, hash-checked scoring model (``Scorecard`` or ``GbdtModel``)."""

    content_hash: str

    @property
    def version_label(self) -> str: ...

    @property
    def features(self) -> list[str]: ...

    @property
    def base_points(self) -> float: ...

    def check_against(self, features: FeatureRegistry) -> list[str]: ...

    def score_row(self, row: Mapping[str, Any]) -> tuple[float, list[CharacteristicScore]]: ...

    def reasons_from(self, lines: Sequence[CharacteristicScore], limit: int) -> list[str]: ...

    def points_columns(self, frame: pl.LazyFrame) -> tuple[pl.LazyFrame, list[pl.Expr]]: ...

    def max_points(self) -> list[float]: ...

    def reasons(self) -> list[str]: ...

    def pd(self, score: FloatArray) -> FloatArray: ...


def ranked_reasons(lines: Sequence[CharacteristicScore], limit: int) -> list[str]:
    """Reason codes of the characteristics that lost most points (ties: model order)."""
    ranked = sorted((i for i, line in enumerate(lines) if line.lost > 0), key=lambda i: (-lines[i].lost, i))
    return [lines[i].reason for i in ranked[:limit]]


def top_lost(lost: FloatArray, limit: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Per row, the indices of the ``limit`` characteristics that lost most points (ties: model order), −1
    where fewer than ``limit`` lost any. ``lost`` is rows × characteristics."""
    if lost.shape[0] == 0 or lost.shape[1] == 0 or limit <= 0:
        return np.full((lost.shape[0], max(limit, 0)), -1, dtype=np.int64)
    order = np.argsort(-lost, axis=1, kind="stable")[:, :limit]
    taken = np.take_along_axis(lost, order, axis=1)
    out = np.where(taken > 0, order, -1).astype(np.int64)
    if out.shape[1] < limit:
        pad = np.full((out.shape[0], limit - out.shape[1]), -1, dtype=np.int64)
        out = np.hstack([out, pad])
    return out


# ---------------------------------------------------------------------------------------------- reason codes

# The customer text of each code names the kind of characteristic ("your income level", "your recent credit
# applications"), never a fraud signal; the analyst view names the characteristic itself.
_BY_FEATURE = {
    "monthly_income": "SCORE_INCOME",
    "debt_to_income": "SCORE_DEBT_BURDEN",
    "bureau_total_debt": "SCORE_DEBT_BURDEN",
    "bureau_inquiries_7d": "SCORE_INQUIRIES",
    "bureau_inquiries_30d": "SCORE_INQUIRIES",
    "bureau_inquiries_90d": "SCORE_INQUIRIES",
    "bureau_inquiries_30d_growth_90d": "SCORE_INQUIRIES",
    "bureau_worst_dpd": "SCORE_DELINQUENCY",
    "bureau_active_loans": "SCORE_ACTIVE_LOANS",
    "bureau_active_loans_growth_90d": "SCORE_ACTIVE_LOANS",
    "bureau_hit": "SCORE_THIN_FILE",
    "employment": "SCORE_EMPLOYMENT",
    "employment_months": "SCORE_EMPLOYMENT",
    "requested_amount": "SCORE_REQUEST_SIZE",
    "request_to_income": "SCORE_REQUEST_SIZE",
    "age": "SCORE_PROFILE",
}
_BY_GROUP = {
    "applicant": "SCORE_PROFILE",
    "bureau": "SCORE_THIN_FILE",
    "velocity": "SCORE_APPLICATION_ACTIVITY",
    "graph": "SCORE_APPLICATION_ACTIVITY",
    "line": "SCORE_LINE_USAGE",
    "loan": "SCORE_DELINQUENCY",
}
GENERIC_REASON = "SCORE_OTHER_FACTOR"


def reason_for_feature(name: str, registry: FeatureRegistry) -> str:
    """The reason code a characteristic on this feature gives: by feature, by its group, or the generic one."""
    if name in _BY_FEATURE:
        return _BY_FEATURE[name]
    feature = registry.get(name)
    if feature is not None:
        return _BY_GROUP.get(feature.group, GENERIC_REASON)
    return GENERIC_REASON


# ---------------------------------------------------------------------------------------------- resolving

# ``resolver(ref, pinned_sha256)``: the registered model ``ref`` (NAME@VERSION), hash-checked, or None when
# nothing is registered under that name and version. Raises ScorecardError when it is there but unusable.
ModelResolver = Callable[[str, str | None], "ScoreModel | None"]


def resolve_model(
    ref: str, search: Sequence[Path] = (), expected_sha256: str | None = None, models: ModelResolver | None = None
) -> ScoreModel:
    """A policy's score model: a registered model (when the engine supplies its registry), else a scorecard
    file beside the policy or bundled with fengkong."""
    if models is not None:
        found = models(ref, expected_sha256)
        if found is not None:
            return found
    return resolve_scorecard(ref, search, expected_sha256)
