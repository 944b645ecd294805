"""optbinning's own scorecard pipeline with fengkong's settings: the card fengkong's faster training must equal
(``tests/test_models_train.py``) and the library's standard pipeline it is timed against
(``benchmarks/models.py``). Not used when training: fengkong bins, looks up WoE and scales points itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fengkong.models.calibration import Scaling


def optbinning_scorecard(
    features: Sequence[str], text: Sequence[str], min_iv: float = 0.02, scaling: Scaling | None = None
) -> Any:
    """An unfitted ``optbinning.Scorecard``: ``BinningProcess`` (a monotonic trend found for every number, IV ≥
    ``min_iv``) + scikit-learn's ``LogisticRegression`` + points by PDO and odds, intercept-based and rounded."""
    from optbinning import BinningProcess  # type: ignore[import-untyped, unused-ignore]
    from optbinning import Scorecard as OptbScorecard
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped, unused-ignore]

    scaling = scaling or Scaling()
    process = BinningProcess(
        list(features),
        categorical_variables=list(text),
        selection_criteria={"iv": {"min": min_iv}},
        binning_fit_params={c: {"monotonic_trend": "auto_asc_desc"} for c in features if c not in text},
    )
    return OptbScorecard(
        process,
        LogisticRegression(max_iter=1000),
        scaling_method="pdo_odds",
        scaling_method_params={"pdo": scaling.pdo, "odds": scaling.base_odds, "scorecard_points": scaling.base_points},
        intercept_based=True,
        rounding=True,
    )
