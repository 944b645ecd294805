"""Monitoring a registered model on recent data: stability of the score and of every input (PSI against the
bins fixed on the training rows), realised AUC and KS where outcomes have matured, and alerts past thresholds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

from fengkong.errors import FengkongError
from fengkong.models.base import ScoreModel
from fengkong.models.data import binary_target
from fengkong.models.metrics import discrimination, psi_against, psi_reading
from fengkong.models.scoring import score_points

MIN_OUTCOMES = 30  # fewer matured outcomes (or no bad or no good) and realised AUC/KS are not reported


@dataclass(frozen=True)
class Thresholds:
    """Defaults follow common practice: PSI 0.1 deserves a look, 0.25 is a major shift; AUC or KS falling this
    far below the validation figures at registration is a warning or an alert."""

    psi_warn: float = 0.1
    psi_alert: float = 0.25
    auc_drop_warn: float = 0.03
    auc_drop_alert: float = 0.05
    ks_drop_warn: float = 0.05
    ks_drop_alert: float = 0.1

    def check(self) -> None:
        for low, high, what in (
            (self.psi_warn, self.psi_alert, "psi"),
            (self.auc_drop_warn, self.auc_drop_alert, "auc_drop"),
            (self.ks_drop_warn, self.ks_drop_alert, "ks_drop"),
        ):
            if not 0 <= low <= high:
                raise FengkongError(
                    "invalid_field", f"{what}: need 0 ≤ warn ({low}) ≤ alert ({high})", f"{what}_alert", 422
                )


def _level(value: float, warn: float, alert: float) -> str:
    if value != value:
        return "ok"
    if value >= alert:
        return "alert"
    if value >= warn:
        return "warn"
    return "ok"


def monitor(
    model: ScoreModel,
    registered: dict[str, Any],
    frame: pl.DataFrame,
    target: str | None,
    thresholds: Thresholds,
) -> dict[str, Any]:
    """The monitoring report of ``model`` (its registry entry ``registered``) on ``frame``."""
    thresholds.check()
    if frame.height == 0:
        raise FengkongError("empty_data", "the data has no rows", "data", 422)
    training = registered["training"]
    stability = training["stability"]
    scored = score_points(model, frame, points=False)
    alerts: list[dict[str, Any]] = []

    def flag(what: str, value: float, warn: float, alert: float, message: str) -> str:
        level = _level(value, warn, alert)
        if level != "ok":
            threshold = alert if level == "alert" else warn
            alerts.append({"level": level, "what": what, "value": value, "threshold": threshold, "message": message})
        return level

    score_psi = psi_against(stability["score"], pl.Series("score", scored.score))
    score_level = flag(
        "psi:score",
        score_psi,
        thresholds.psi_warn,
        thresholds.psi_alert,
        f"score PSI {score_psi:.3f} ({psi_reading(score_psi)}) against the training rows",
    )
    features = []
    for name, spec in stability["features"].items():
        value = psi_against(spec, frame[name].cast(pl.String) if spec["type"] == "categorical" else frame[name])
        level = flag(
            f"psi:{name}",
            value,
            thresholds.psi_warn,
            thresholds.psi_alert,
            f"input {name!r} PSI {value:.3f} ({psi_reading(value)})",
        )
        features.append({"feature": name, "psi": value, "reading": psi_reading(value), "level": level})
    features.sort(key=lambda f: -f["psi"] if f["psi"] == f["psi"] else 0.0)

    realised: dict[str, Any] | None = None
    target = target or registered["target"]
    if target in frame.columns and frame[target].null_count() == frame.height:
        realised = {"rows": 0, "note": "no outcome has matured yet"}
    elif target in frame.columns:
        labelled, _ = binary_target(
            frame.with_columns(pl.Series("__score", scored.score)), target, training.get("bad_value")
        )
        bad = labelled[target].to_numpy()
        enough = labelled.height >= MIN_OUTCOMES and 0 < int(bad.sum()) < labelled.height
        if enough:
            measures = discrimination(bad, -labelled["__score"].to_numpy())
            reference = stability.get("valid", {})
            realised = {
                "rows": labelled.height,
                "bad_rate": float(np.mean(bad)),
                **measures,
                "validation_auc": reference.get("auc"),
                "validation_ks": reference.get("ks"),
            }
            if reference.get("auc") is not None:
                drop = reference["auc"] - measures["auc"]
                realised["auc_drop"] = drop
                flag(
                    "auc",
                    drop,
                    thresholds.auc_drop_warn,
                    thresholds.auc_drop_alert,
                    f"realised AUC {measures['auc']:.3f} is {drop:.3f} below validation {reference['auc']:.3f}",
                )
            if reference.get("ks") is not None:
                drop = reference["ks"] - measures["ks"]
                realised["ks_drop"] = drop
                flag(
                    "ks",
                    drop,
                    thresholds.ks_drop_warn,
                    thresholds.ks_drop_alert,
                    f"realised KS {measures['ks']:.3f} is {drop:.3f} below validation {reference['ks']:.3f}",
                )
        else:
            realised = {
                "rows": labelled.height,
                "note": f"fewer than {MIN_OUTCOMES} matured outcomes, or not both good and bad ones",
            }
    levels = {a["level"] for a in alerts}
    status = "alert" if "alert" in levels else ("warn" if "warn" in levels else "ok")
    return {
        "model": model.version_label,
        "rows": frame.height,
        "status": status,
        "score": {
            "psi": score_psi,
            "reading": psi_reading(score_psi),
            "level": score_level,
            "mean": float(np.mean(scored.score)),
            "mean_pd": float(np.mean(scored.pd)),
        },
        "features": features,
        "realised": realised,
        "alerts": alerts,
        "thresholds": asdict(thresholds),
    }
