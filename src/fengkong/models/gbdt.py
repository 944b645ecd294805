"""A gradient-boosted tree model (LightGBM) as a scoring model with reasons.

The artefact is one JSON document: the features (name, type, categories, reason code), the points scaling, the
PD calibration and, under ``booster``, LightGBM's own text model exactly as ``Booster.model_to_string()`` wrote
it (loadable with ``lightgbm.Booster(model_str=...)``; ``fengkong model export`` writes it to a ``.txt`` file).
Nothing is pickled; the sha256 of the whole document is checked on every load.

Scores and reasons come from LightGBM's built-in TreeSHAP (``pred_contrib=True``): the raw log-odds of bad is
``expected value + Σ contributions``, so under the scaling ``score = base_points + Σ points`` with a feature's
``points = −factor × contribution``. A feature that pushed the risk up has negative points; its lost points
(``0 − points``) rank it among the reasons, as a scorecard's characteristics are ranked.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fengkong.features.registry import FeatureRegistry, FeatureType
from fengkong.models.base import ranked_reasons
from fengkong.models.calibration import Calibration, FloatArray, Scaling, uncalibrated_pd
from fengkong.models.scorecard import CharacteristicScore, Scorecard, ScorecardError, parse_scorecard
from fengkong.reasons import is_known

GBDT_KIND = "lightgbm_gbdt"


class GbdtFeature(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    feature: str
    type: Literal["number", "string", "bool"]
    reason: str
    categories: list[str] | None = Field(
        None, description="string features: the training categories; category i is fed to LightGBM as code i"
    )

    @model_validator(mode="after")
    def _categories_for_strings(self) -> GbdtFeature:
        if (self.type == "string") != (self.categories is not None):
            raise ValueError("string features need 'categories'; other types must not have them")
        return self


class GbdtSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    version: str
    kind: str = Field(pattern=f"^{GBDT_KIND}$")
    description: str = ""
    scaling: Scaling
    calibration: Calibration | None = None
    features: list[GbdtFeature] = Field(min_length=1)
    booster: str = Field(min_length=1, description="LightGBM's text model (Booster.model_to_string())")


class GbdtModel:
    """A loaded LightGBM model that scores rows and tables with per-feature points from TreeSHAP."""

    def __init__(self, spec: GbdtSpec, content_hash: str) -> None:
        import lightgbm as lgb

        self.spec = spec
        self.content_hash = content_hash
        try:
            self.booster = lgb.Booster(model_str=spec.booster)
        except Exception as exc:  # LightGBM raises its own LightGBMError on a malformed text model
            raise ScorecardError(f"{self.version_label}: LightGBM cannot read the booster: {exc}") from None
        if self.booster.num_feature() != len(spec.features):
            raise ScorecardError(
                f"{self.version_label}: the booster reads {self.booster.num_feature()} features, "
                f"the artefact lists {len(spec.features)}"
            )
        self._codes = [
            {c: float(i) for i, c in enumerate(f.categories)} if f.categories is not None else None
            for f in spec.features
        ]
        self._factor = spec.scaling.factor
        self._lock = threading.Lock()  # one booster serves every request thread: predict one call at a time
        # The expected value (TreeSHAP's bias column) is the same for every row: the base of the score.
        bias = float(self._contrib(np.full((1, len(spec.features)), np.nan))[0, -1])
        self._base = spec.scaling.offset - self._factor * bias

    @property
    def version_label(self) -> str:
        return f"{self.spec.name}@{self.spec.version}"

    @property
    def features(self) -> list[str]:
        return [f.feature for f in self.spec.features]

    @property
    def base_points(self) -> float:
        return self._base

    def pd(self, score: FloatArray) -> FloatArray:
        if self.spec.calibration is not None:
            return self.spec.calibration.pd(score, self.spec.scaling)
        return uncalibrated_pd(score, self.spec.scaling)

    def check_against(self, features: FeatureRegistry) -> list[str]:
        problems = []
        for f in self.spec.features:
            known = features.get(f.feature)
            where = f"model {self.version_label}"
            if known is None:
                problems.append(f"{where}: feature {f.feature!r} is not a registered feature")
            elif known.type != FeatureType(f.type):
                problems.append(f"{where}: feature {f.feature!r} is a {known.type} feature, the model reads {f.type}")
            if not is_known(f.reason):
                problems.append(f"{where}: unknown reason code {f.reason!r} for feature {f.feature!r}")
        return problems

    # ------------------------------------------------------------------------------------------ encoding

    def _encode_value(self, i: int, value: Any) -> float:
        if value is None:
            return math.nan
        codes = self._codes[i]
        if codes is not None:
            return codes.get(str(value), float(len(codes)))  # an unseen category: LightGBM's "other" side
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        number = float(value)
        return number

    def encode_columns(self, columns: Sequence[pl.Series]) -> FloatArray:
        """Rows × features float matrix in LightGBM's input coding (missing: NaN; categories: codes)."""
        return encode_columns(self.spec.features, columns)

    def _contrib(self, matrix: FloatArray) -> FloatArray:
        if matrix.shape[0] == 0:
            return np.zeros((0, len(self.spec.features) + 1))
        threads = 1 if matrix.shape[0] < 1000 else 0  # one row: no thread pool start-up
        with self._lock:
            out = self.booster.predict(matrix, pred_contrib=True, num_threads=threads)
        return np.asarray(out, dtype=np.float64)

    def score_matrix(self, matrix: FloatArray) -> FloatArray:
        """Scores from LightGBM's raw log-odds (no TreeSHAP): fast, for measuring and monitoring."""
        if matrix.shape[0] == 0:
            return np.zeros(0)
        with self._lock:
            raw = np.asarray(self.booster.predict(matrix, raw_score=True), dtype=np.float64)
        return self.spec.scaling.score_from_log_odds(raw)

    def points_matrix(self, matrix: FloatArray) -> FloatArray:
        """Rows × features points (``−factor × contribution``)."""
        points: FloatArray = -self._factor * self._contrib(matrix)[:, :-1]
        return points

    # ------------------------------------------------------------------------------------------ row

    def score_row(self, row: Mapping[str, Any]) -> tuple[float, list[CharacteristicScore]]:
        values = [row.get(f.feature) for f in self.spec.features]
        matrix = np.array([[self._encode_value(i, v) for i, v in enumerate(values)]], dtype=np.float64)
        points = self.points_matrix(matrix)[0]
        total = self._base
        lines = []
        for f, value, p in zip(self.spec.features, values, points, strict=True):
            pts = float(p)
            total = total + pts
            label = f"log-odds {-pts / self._factor:+.4f}"
            lines.append(CharacteristicScore(f.name, f.feature, value, label, pts, 0.0, f.reason))
        return total, lines

    def reasons_from(self, lines: Sequence[CharacteristicScore], limit: int) -> list[str]:
        """Reason codes of the features that pushed the risk up most (ties: model order)."""
        return ranked_reasons(lines, limit)

    # ------------------------------------------------------------------------------------------ columnar

    def points_columns(self, frame: pl.LazyFrame) -> tuple[pl.LazyFrame, list[pl.Expr]]:
        """Add one struct column of per-feature points, computed batch by batch with LightGBM."""
        fields = [f"p{i}" for i in range(len(self.spec.features))]
        dtype = pl.Struct({name: pl.Float64 for name in fields})

        def batch(s: pl.Series) -> pl.Series:
            parts = s.struct.unnest()
            points = self.points_matrix(self.encode_columns([parts[c] for c in parts.columns]))
            return pl.DataFrame(
                {name: points[:, i] for i, name in enumerate(fields)}, schema={n: pl.Float64 for n in fields}
            ).to_struct(s.name)

        inputs = pl.struct([pl.col(f.feature).alias(f"f{i}") for i, f in enumerate(self.spec.features)])
        frame = frame.with_columns(inputs.map_batches(batch, return_dtype=dtype).alias("__gbdt_points"))
        return frame, [pl.col("__gbdt_points").struct.field(name) for name in fields]

    def max_points(self) -> list[float]:
        return [0.0] * len(self.spec.features)

    def reasons(self) -> list[str]:
        return [f.reason for f in self.spec.features]


def encode_columns(features: Sequence[GbdtFeature], columns: Sequence[pl.Series]) -> FloatArray:
    """The LightGBM input matrix of these columns: numbers as they are, booleans 0/1, a category as its index in
    the training categories (one never seen: the next index, which LightGBM sends the "other" way), missing NaN.
    Training and scoring both use this one coding."""
    n = len(columns[0]) if columns else 0
    matrix = np.empty((n, len(features)), dtype=np.float64)
    for i, (f, s) in enumerate(zip(features, columns, strict=True)):
        if f.categories is not None:
            codes = {c: float(k) for k, c in enumerate(f.categories)}
            text = s.cast(pl.String)
            mapped = text.replace_strict(codes, default=float(len(codes)), return_dtype=pl.Float64).to_numpy()
            matrix[:, i] = np.where(text.is_null().to_numpy(), math.nan, mapped)
        else:
            matrix[:, i] = s.cast(pl.Float64).fill_nan(None).fill_null(math.nan).to_numpy()
    return matrix


def parse_gbdt(raw: bytes, source: str, expected_sha256: str | None = None) -> GbdtModel:
    digest = hashlib.sha256(raw).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise ScorecardError(
            f"{source}: content hash {digest[:12]}… does not match the expected {expected_sha256[:12]}…; "
            "the model was changed after it was registered or pinned"
        )
    try:
        spec = GbdtSpec.model_validate(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise ScorecardError(f"{source}: not valid JSON: {exc}") from None
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ScorecardError(f"{source}: {details}") from None
    return GbdtModel(spec, digest)


def parse_model(raw: bytes, source: str, expected_sha256: str | None = None) -> Scorecard | GbdtModel:
    """A scoring model of any kind from its artefact bytes (the ``kind`` field says which)."""
    try:
        kind = json.loads(raw).get("kind")
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
        kind = None
    if kind == GBDT_KIND:
        return parse_gbdt(raw, source, expected_sha256)
    return parse_scorecard(raw, source, expected_sha256)
