"""A points scorecard held as a JSON table of characteristics, bins and points.

The score is ``base_points + Σ points``. A characteristic's *lost points* are the most it could give minus
what it gave; the characteristics that lost most are the score's principal reasons (the method behind US
adverse-action notices). The same table compiles to a row function and to polars expressions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fengkong.features.registry import FeatureRegistry, FeatureType
from fengkong.models.calibration import Calibration, FloatArray, Scaling, uncalibrated_pd
from fengkong.reasons import is_known


class BinSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    upper: float | None = Field(None, description="right-open upper edge of a numeric bin; omit on the last bin")
    values: list[str] | None = Field(None, description="the values of a categorical bin; omit on the 'other' bin")
    points: float


class CharacteristicSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    feature: str
    reason: str
    bins: list[BinSpec] = Field(min_length=1)
    missing_points: float

    @model_validator(mode="after")
    def _bins_well_formed(self) -> CharacteristicSpec:
        numeric = any(b.upper is not None for b in self.bins)
        categorical = any(b.values is not None for b in self.bins)
        if numeric and categorical:
            raise ValueError("bins mix numeric 'upper' edges and categorical 'values'")
        last, body = self.bins[-1], self.bins[:-1]
        if last.upper is not None or last.values is not None:
            raise ValueError("the last bin must be the catch-all: no 'upper' and no 'values'")
        if numeric:
            uppers = [b.upper for b in body]
            if any(u is None for u in uppers):
                raise ValueError("every numeric bin but the last needs 'upper'")
            if any(a >= b for a, b in pairwise(uppers)):  # type: ignore[operator]
                raise ValueError("numeric bin edges must increase strictly")
        elif categorical:
            seen: set[str] = set()
            for b in body:
                if not b.values:
                    raise ValueError("every categorical bin but the last needs 'values'")
                if seen & set(b.values):
                    raise ValueError(f"values {sorted(seen & set(b.values))} appear in two bins")
                seen |= set(b.values)
        return self


class ScorecardSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    version: str
    kind: str = Field(pattern="^points_scorecard$")
    description: str = ""
    base_points: float
    characteristics: list[CharacteristicSpec] = Field(min_length=1)
    # trained cards (issue 4) carry their points scaling and PD calibration; a judgemental card may leave them out
    scaling: Scaling | None = None
    calibration: Calibration | None = None


class ScorecardError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class CharacteristicScore:
    """One line of a score explanation."""

    name: str
    feature: str
    value: Any
    bin: str
    points: float
    max_points: float
    reason: str

    @property
    def lost(self) -> float:
        return self.max_points - self.points


@dataclass(frozen=True, slots=True)
class _Char:
    spec: CharacteristicSpec
    numeric: bool
    max_points: float
    uppers: tuple[float, ...]
    lookup: dict[str, float]  # categorical value → points
    labels: dict[str, str]
    other_points: float


class Scorecard:
    def __init__(self, spec: ScorecardSpec, content_hash: str) -> None:
        self.spec = spec
        self.content_hash = content_hash
        self._chars = tuple(self._prepare(c) for c in spec.characteristics)

    @property
    def version_label(self) -> str:
        return f"{self.spec.name}@{self.spec.version}"

    @property
    def features(self) -> list[str]:
        return [c.feature for c in self.spec.characteristics]

    @property
    def base_points(self) -> float:
        return self.spec.base_points

    def pd(self, score: FloatArray) -> FloatArray:
        """Calibrated PD per score; without a calibration, the PD its scaling (or the usual 600/50/20) implies."""
        scaling = self.spec.scaling or Scaling()
        if self.spec.calibration is not None:
            return self.spec.calibration.pd(score, scaling)
        return uncalibrated_pd(score, scaling)

    @staticmethod
    def _prepare(c: CharacteristicSpec) -> _Char:
        numeric = any(b.upper is not None for b in c.bins)
        points = [b.points for b in c.bins] + [c.missing_points]
        lookup: dict[str, float] = {}
        labels: dict[str, str] = {}
        for b in c.bins[:-1]:
            for v in b.values or ():
                lookup[v] = b.points
                labels[v] = "{" + ", ".join(b.values or ()) + "}"
        uppers = tuple(float(b.upper) for b in c.bins[:-1] if b.upper is not None)
        return _Char(c, numeric, max(points), uppers, lookup, labels, c.bins[-1].points)

    def check_against(self, features: FeatureRegistry) -> list[str]:
        """Problems with this scorecard's feature names, types and reason codes."""
        problems = []
        for c in self._chars:
            f = features.get(c.spec.feature)
            where = f"characteristic {c.spec.name!r}"
            if f is None:
                problems.append(f"{where}: unknown feature {c.spec.feature!r}")
            elif len(c.spec.bins) == 1:
                pass  # one catch-all bin reads only whether the value is missing: any type will do
            elif c.numeric and f.type not in (FeatureType.NUMBER, FeatureType.BOOL):
                problems.append(f"{where}: numeric bins on {f.type} feature {f.name!r}")
            elif not c.numeric and f.type != FeatureType.STRING:
                problems.append(f"{where}: categorical bins on {f.type} feature {f.name!r}")
            if not is_known(c.spec.reason):
                problems.append(f"{where}: unknown reason code {c.spec.reason!r}")
        return problems

    # ----------------------------------------------------------------------------------- row evaluation

    def score_row(self, row: Mapping[str, Any]) -> tuple[float, list[CharacteristicScore]]:
        total = self.spec.base_points
        lines = []
        for c in self._chars:
            value = row.get(c.spec.feature)
            points, label = self._points(c, value)
            total = total + points
            lines.append(
                CharacteristicScore(c.spec.name, c.spec.feature, value, label, points, c.max_points, c.spec.reason)
            )
        return total, lines

    @staticmethod
    def _points(c: _Char, value: Any) -> tuple[float, str]:
        if value is None:
            return c.spec.missing_points, "missing"
        if c.numeric:
            lower = "-inf"
            for upper, b in zip(c.uppers, c.spec.bins, strict=False):
                if value < upper:
                    return b.points, f"[{lower}, {upper:g})"
                lower = f"{upper:g}"
            return c.other_points, f"[{lower}, inf)"
        if value in c.lookup:
            return c.lookup[value], c.labels[value]
        return c.other_points, "other"

    def reasons_from(self, lines: Sequence[CharacteristicScore], limit: int) -> list[str]:
        """Reason codes of the characteristics that lost most points (ties: scorecard order)."""
        ranked = sorted((i for i, line in enumerate(lines) if line.lost > 0), key=lambda i: (-lines[i].lost, i))
        return [lines[i].reason for i in ranked[:limit]]

    def points_columns(self, frame: pl.LazyFrame) -> tuple[pl.LazyFrame, list[pl.Expr]]:
        """The frame to score and one points expression per characteristic over it (the policy compiler's door)."""
        return frame, self.points_exprs()

    # ----------------------------------------------------------------------------------- columnar

    def points_exprs(self) -> list[pl.Expr]:
        """One Float64 expression per characteristic giving its points."""
        exprs = []
        for c in self._chars:
            # numeric bins read booleans as 0/1, as Python's ``True < 0.5`` does in the row path
            col = pl.col(c.spec.feature).cast(pl.Float64) if c.numeric else pl.col(c.spec.feature)
            expr: Any = pl.when(col.is_null()).then(pl.lit(c.spec.missing_points, dtype=pl.Float64))
            if c.numeric:
                for upper, b in zip(c.uppers, c.spec.bins, strict=False):
                    expr = expr.when(col < upper).then(pl.lit(b.points, dtype=pl.Float64))
            else:
                for b in c.spec.bins[:-1]:
                    expr = expr.when(col.is_in(b.values or [])).then(pl.lit(b.points, dtype=pl.Float64))
            exprs.append(expr.otherwise(pl.lit(c.other_points, dtype=pl.Float64)))
        return exprs

    def bin_exprs(self) -> list[pl.Expr]:
        """One Int64 expression per characteristic giving the row's bin: 0..k−1 for the k bins, k for missing."""
        exprs = []
        for c in self._chars:
            col = pl.col(c.spec.feature).cast(pl.Float64) if c.numeric else pl.col(c.spec.feature)
            k = len(c.spec.bins)
            expr: Any = pl.when(col.is_null()).then(pl.lit(k, dtype=pl.Int64))
            if c.numeric:
                for i, upper in enumerate(c.uppers):
                    expr = expr.when(col < upper).then(pl.lit(i, dtype=pl.Int64))
            else:
                for i, b in enumerate(c.spec.bins[:-1]):
                    expr = expr.when(col.is_in(b.values or [])).then(pl.lit(i, dtype=pl.Int64))
            exprs.append(expr.otherwise(pl.lit(k - 1, dtype=pl.Int64)))
        return exprs

    def bin_labels(self) -> list[list[str]]:
        """Per characteristic, the label of each bin then of the missing bin (as ``score_row`` names them)."""
        out = []
        for c in self._chars:
            if c.numeric:
                lowers = ["-inf", *(f"{u:g}" for u in c.uppers)]
                uppers = [*(f"{u:g}" for u in c.uppers), "inf"]
                labels = [f"[{lo}, {hi})" for lo, hi in zip(lowers, uppers, strict=True)]
            else:
                labels = ["{" + ", ".join(b.values or ()) + "}" for b in c.spec.bins[:-1]] + ["other"]
            out.append([*labels, "missing"])
        return out

    def max_points(self) -> list[float]:
        return [c.max_points for c in self._chars]

    def reasons(self) -> list[str]:
        return [c.spec.reason for c in self._chars]


def load_scorecard(path: Path, expected_sha256: str | None = None) -> Scorecard:
    """Load a scorecard JSON file; refuse it if its content hash is not the one expected."""
    return parse_scorecard(path.read_bytes(), str(path), expected_sha256)


def parse_scorecard(raw: bytes, source: str, expected_sha256: str | None = None) -> Scorecard:
    """A scorecard from its JSON bytes; refused if their sha256 is not the one expected (pinned or registered)."""
    digest = hashlib.sha256(raw).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise ScorecardError(
            f"{source}: content hash {digest[:12]}… does not match the expected {expected_sha256[:12]}…; "
            "the model file was changed after it was pinned"
        )
    try:
        data = json.loads(raw)
        spec = ScorecardSpec.model_validate(data)
    except json.JSONDecodeError as exc:
        raise ScorecardError(f"{source}: not valid JSON: {exc}") from None
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ScorecardError(f"{source}: {details}") from None
    return Scorecard(spec, digest)


BUILTIN_DIR = Path(__file__).parent / "builtin"


def resolve_scorecard(ref: str, search: Sequence[Path] = (), expected_sha256: str | None = None) -> Scorecard:
    """Find ``name@version`` in the given folders, then among the scorecards bundled with fengkong."""
    if "@" not in ref:
        raise ScorecardError(f"scorecard reference {ref!r} must look like NAME@VERSION")
    name, version = ref.split("@", 1)
    for folder in (*search, BUILTIN_DIR):
        path = folder / f"{name}@{version}.json"
        if path.is_file():
            card = load_scorecard(path, expected_sha256)
            if (card.spec.name, card.spec.version) != (name, version):
                raise ScorecardError(f"{path} holds {card.version_label}, not {ref}")
            return card
    raise ScorecardError(f"no scorecard {ref!r} found (looked in {', '.join(str(p) for p in (*search, BUILTIN_DIR))})")


def scorecard_to_json(spec: ScorecardSpec) -> str:
    return json.dumps(spec.model_dump(exclude_none=True), ensure_ascii=False, indent=2)
