"""``engine.models``: train, register, load, score with, report on and monitor scoring models.

The registry is a database table (SQLite or PostgreSQL). A registered model is immutable: its artefact text is
stored with its sha256, which is recomputed on every load, so an artefact changed in the database after
registration is refused with a clear error rather than scored with. Registration is appended to the audit
chain (``model_registered``), whose ``verify`` also recomputes each registered row's content. No pickle.
"""

from __future__ import annotations

import builtins
import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import sqlalchemy as sa

from fengkong.errors import FengkongError, not_found
from fengkong.models.base import ModelResolver, ScoreModel
from fengkong.models.calibration import Scaling
from fengkong.models.data import binary_target, read_table, unwritable, write_table
from fengkong.models.gbdt import GbdtModel, parse_model
from fengkong.models.metrics import performance, psi_against
from fengkong.models.monitor import Thresholds, monitor
from fengkong.models.report import ReportInput, Sample, stability_lines, write_report
from fengkong.models.scorecard import BUILTIN_DIR, ScorecardError
from fengkong.models.scoring import check_columns, prepared_inputs, score_points, scored_frame
from fengkong.models.train import Progress, Trained, TrainOptions, renamed, train_model
from fengkong.store import audit
from fengkong.store.tables import audit_log
from fengkong.store.tables import models as models_table

if TYPE_CHECKING:
    from fengkong.service import Engine

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,39}$")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,15}$")
KIND_OF = {"points_scorecard": "scorecard", "lightgbm_gbdt": "gbdt"}
AUDIT_KIND = "model_registered"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def check_name(name: str, version: str | None = None) -> None:
    if not NAME_RE.match(name or ""):
        raise FengkongError(
            "invalid_field",
            "a model name starts with a letter and has at most 40 letters, digits, '_', '.' or '-'",
            "name",
            422,
        )
    if version is not None and not VERSION_RE.match(version):
        raise FengkongError(
            "invalid_field", "a model version has at most 16 letters, digits, '_', '.' or '-'", "version", 422
        )


def _jsonable(value: Any) -> Any:
    """Plain JSON: numpy scalars as Python numbers, NaN and infinities as null (PostgreSQL's json refuses NaN)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    return value


def _payload_hash(row: Mapping[Any, Any]) -> str:
    """What the audit entry of a registration vouches for: every stored field but the timestamp."""
    return audit.content_hash(
        {
            "name": row["name"],
            "version": row["version"],
            "kind": row["kind"],
            "content_sha256": row["content_sha256"],
            "artefact_sha256": hashlib.sha256(row["artefact"].encode("utf-8")).hexdigest(),
            "data_fingerprint": row["data_fingerprint"],
            "target": row["target"],
            "features": row["features"],
            "metrics": row["metrics"],
            "training": row["training"],
            "description": row["description"],
            "created_by": row["created_by"],
        }
    )


def _registry_hashes(conn: sa.Connection, subjects: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for subject in subjects:
        name, _, version = subject.partition("@")
        row = (
            conn.execute(
                sa.select(models_table).where((models_table.c.name == name) & (models_table.c.version == version))
            )
            .mappings()
            .one_or_none()
        )
        if row is not None:
            out[subject] = _payload_hash(row)
    return out


def _recorded(conn: sa.Connection, label: str) -> builtins.list[str]:
    """What the audit chain recorded when ``NAME@VERSION`` was registered (its payload hash)."""
    query = sa.select(audit_log.c.payload_hash).where(
        (audit_log.c.kind == AUDIT_KIND) & (audit_log.c.subject_id == label)
    )
    return [str(h) for h in conn.execute(query).scalars()]


def _load_row(row: Mapping[Any, Any], recorded: Sequence[str]) -> ScoreModel:
    """Parse a registry row's artefact after checking it is what was registered: the artefact's sha256 against the
    one recorded in the row, and the whole row (artefact, hash, features, metrics, training facts) against the
    audit chain's entry of the registration, so that editing the artefact and its hash together is refused too."""
    label = f"{row['name']}@{row['version']}"
    raw = row["artefact"].encode("utf-8")
    digest = hashlib.sha256(raw).hexdigest()
    if digest != row["content_sha256"]:
        raise FengkongError(
            "model_tampered",
            f"model {label}: its artefact's sha256 is {digest[:16]}…, not the {row['content_sha256'][:16]}… "
            "recorded when it was registered; it was changed after registration and is refused "
            "(register the changed model under a new version instead)",
            "name",
            409,
        )
    if _payload_hash(row) not in recorded:
        raise FengkongError(
            "model_tampered",
            f"model {label}: its registry entry (artefact, sha256, features, metrics or training facts) is not what "
            "the audit chain recorded when it was registered; it was changed after registration and is refused "
            "(`fengkong audit verify` shows the finding)",
            "name",
            409,
        )
    try:
        model: ScoreModel = parse_model(raw, f"model {label}", row["content_sha256"])
    except ScorecardError as exc:
        raise FengkongError("model_unreadable", str(exc), "name", 409) from None
    if list(model.features) != list(row["features"]) or model.version_label != label:
        raise FengkongError(
            "model_tampered",
            f"model {label}: the artefact does not match its registry entry (name, version or features)",
            "name",
            409,
        )
    return model


def _select(conn: sa.Connection, name: str, version: str | None) -> sa.RowMapping | None:
    query = sa.select(models_table).where(models_table.c.name == name)
    if version is not None:
        row = conn.execute(query.where(models_table.c.version == version)).mappings().one_or_none()
        return row
    rows = conn.execute(query).mappings().all()
    return max(rows, key=lambda r: (r["created_at"].replace(tzinfo=None), _version_key(r["version"])), default=None)


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)


def resolver_for(db: sa.Engine) -> ModelResolver:
    """The policy loader's view of the registry: ``NAME@VERSION`` → hash-checked model, or None if unregistered."""

    def resolve(ref: str, pinned: str | None) -> ScoreModel | None:
        name, _, version = ref.partition("@")
        try:
            with db.connect() as conn:
                row = _select(conn, name, version)
                recorded = _recorded(conn, ref) if row is not None else []
        except (sa.exc.OperationalError, sa.exc.ProgrammingError):  # no registry table in this database (yet)
            return None
        if row is None:
            return None
        if pinned is not None and pinned != row["content_sha256"]:
            raise ScorecardError(
                f"registered model {ref} has content sha256 {row['content_sha256'][:12]}…, not the pinned "
                f"{pinned[:12]}…"
            )
        try:
            return _load_row(row, recorded)
        except FengkongError as exc:
            raise ScorecardError(exc.message) from None

    return resolve


def registry_resolver(database_url: str | None) -> ModelResolver:
    """A resolver that opens the database only when a policy names a model no file provides, and never creates
    a database just to look (for ``fengkong policy check``, which otherwise needs no database)."""
    from fengkong.store.db import create_db_engine
    from fengkong.store.db import database_url as resolve_url

    cache: list[ModelResolver] = []

    def resolve(ref: str, pinned: str | None) -> ScoreModel | None:
        if not cache:
            url = sa.make_url(resolve_url(database_url))
            local = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
            if local and not Path(str(url.database)).exists():
                return None
            cache.append(resolver_for(create_db_engine(str(url.render_as_string(hide_password=False)))))
        return cache[0](ref, pinned)

    return resolve


def _summary(row: Mapping[Any, Any]) -> dict[str, Any]:
    valid = (row["metrics"] or {}).get("valid", {})
    return {
        "name": row["name"],
        "version": row["version"],
        "label": f"{row['name']}@{row['version']}",
        "kind": row["kind"],
        "content_sha256": row["content_sha256"],
        "data_fingerprint": row["data_fingerprint"],
        "target": row["target"],
        "features": list(row["features"]),
        "validation": {k: valid.get(k) for k in ("auc", "ks", "gini", "brier", "rows")},
        "description": row["description"],
        "created_at": audit.timestamp_text(row["created_at"]),
        "created_by": row["created_by"],
    }


def write_training_report(trained: Trained, name: str, version: str, out_dir: Path) -> tuple[Path, Path]:
    """The validation report of a freshly trained model: training and validation side by side."""
    r = trained.report
    samples = [
        Sample("training", r["train"], r["y_train"], r["train_frame"]),
        Sample("validation", r["valid"], r["y_valid"], r["valid_frame"]),
    ]
    t = trained.training
    stability = t["stability"]
    psi = [("score, validation vs training", trained.metrics["psi_score_train_valid"])]
    for feature, spec in stability["features"].items():
        psi.append((f"{feature}, validation vs training", psi_against(spec, r["valid_frame"][feature])))
    facts = [
        ("model", f"{name}@{version} ({trained.kind})"),
        ("target", f"{trained.target} (1 = bad)"),
        ("rows", f"{t['rows']:,} ({t['rows_without_outcome']:,} without an outcome left out)"),
        ("split", f"{t['split']}: {t['train_rows']:,} training, {t['valid_rows']:,} validation rows"),
        ("training data sha256", trained.data_fingerprint),
        ("artefact sha256", hashlib.sha256(trained.artefact.encode("utf-8")).hexdigest()),
        ("parameters", json.dumps(_jsonable(t["parameters"]), ensure_ascii=False)),
        ("trained in", f"{t['seconds']:.1f} s"),
    ]
    data = ReportInput(
        title=f"Validation report: {name}@{version}",
        model=trained.model,
        kind=trained.kind,
        facts=facts,
        samples=samples,
        metrics={"training": trained.metrics["train"], "validation": trained.metrics["valid"]},
        iv=trained.metrics.get("iv", {}),
        selected=trained.features,
        screened=trained.training.get("parameters", {}).get("screened", {}).get("features", []),
        psi=psi,
        stability=stability,
    )
    return write_report(data, out_dir)


class ModelDesk:
    """The model lifecycle, reached as ``engine.models``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._resolve = resolver_for(engine.db)
        engine.audit_hashers[AUDIT_KIND] = _registry_hashes

    # ------------------------------------------------------------------------------------------ registry

    def resolve(self, ref: str, pinned: str | None = None) -> ScoreModel | None:
        """For the policy loader: the registered model ``NAME@VERSION`` (hash-checked), None if unregistered."""
        return self._resolve(ref, pinned)

    def list(self) -> list[dict[str, Any]]:
        with self.engine.db.connect() as conn:
            rows = conn.execute(sa.select(models_table).order_by(models_table.c.name, models_table.c.created_at))
            return [_summary(r) for r in rows.mappings()]

    def get(self, name: str, version: str | None = None, artefact: bool = False) -> dict[str, Any]:
        """A registered model with its metrics and training facts (``artefact``: with its text too)."""
        row = self._row(name, version)
        out = _summary(row)
        out["metrics"] = row["metrics"]
        training = dict(row["training"])
        training.pop("stability", None)
        out["training"] = training
        out["versions"] = self.versions(name)
        if artefact:
            out["artefact"] = row["artefact"]
        return out

    def versions(self, name: str) -> builtins.list[str]:
        with self.engine.db.connect() as conn:
            found = conn.execute(
                sa.select(models_table.c.version, models_table.c.created_at).where(models_table.c.name == name)
            ).all()
        return [v for v, _ in sorted(found, key=lambda r: (r[1].replace(tzinfo=None), _version_key(r[0])))]

    def load(self, name: str, version: str | None = None) -> ScoreModel:
        """The model, after checking its artefact's sha256 (every load; a changed artefact is refused)."""
        return self._loaded(name, version)[1]

    def _row(self, name: str, version: str | None) -> sa.RowMapping:
        return self._fetch(name, version)[0]

    def _fetch(self, name: str, version: str | None) -> tuple[sa.RowMapping, builtins.list[str]]:
        """The registry row and what the audit chain recorded at its registration (one connection)."""
        with self.engine.db.connect() as conn:
            row = _select(conn, name, version)
            recorded = _recorded(conn, f"{row['name']}@{row['version']}") if row is not None else []
        if row is None:
            what = f"{name}@{version}" if version else name
            raise not_found("model", what, "version" if version and self.versions(name) else "name")
        return row, recorded

    def _loaded(self, name: str, version: str | None) -> tuple[sa.RowMapping, ScoreModel]:
        """The registry row and its model, checked as every load is."""
        row, recorded = self._fetch(name, version)
        return row, _load_row(row, recorded)

    def register(self, trained: Trained, name: str, version: str, actor: str) -> dict[str, Any]:
        """Store a trained model (immutable) and append its registration to the audit chain, in one transaction."""
        check_name(name, version)
        trained = renamed(trained, name, version)
        now = _now()
        row = {
            "name": name,
            "version": version,
            "kind": trained.kind,
            "artefact": trained.artefact,
            "content_sha256": hashlib.sha256(trained.artefact.encode("utf-8")).hexdigest(),
            "data_fingerprint": trained.data_fingerprint,
            "target": trained.target,
            "features": list(trained.features),
            "metrics": _jsonable(trained.metrics),
            "training": _jsonable(trained.training),
            "description": trained.description,
            "created_at": now,
            "created_by": actor[:64],
        }
        try:
            with self.engine.db.begin() as conn:
                conn.execute(sa.insert(models_table).values(**row))
                audit.append(conn, AUDIT_KIND, f"{name}@{version}", actor[:64], _payload_hash(row), now)
        except sa.exc.IntegrityError:
            raise self._exists(name, version) from None
        return self.get(name, version)

    def _exists(self, name: str, version: str) -> FengkongError:
        return FengkongError(
            "model_version_exists",
            f"model {name}@{version} is already registered; registered models never change, so give this one "
            "a new --version (or leave it out for the next number)",
            "version",
            409,
        )

    def _check_new(self, name: str, version: str) -> None:
        check_name(name, version)
        if (BUILTIN_DIR / f"{name}@{version}.json").exists():
            raise FengkongError(
                "model_version_exists", f"{name}@{version} is a scorecard bundled with fengkong", "name", 409
            )
        with self.engine.db.connect() as conn:
            if _select(conn, name, version) is not None:
                raise self._exists(name, version)

    def next_version(self, name: str) -> str:
        numbers = [int(v) for v in self.versions(name) if v.isdigit()]
        return str(max(numbers, default=0) + 1)

    # ------------------------------------------------------------------------------------------ training

    def train(
        self,
        data: str | Path | pl.DataFrame,
        *,
        target: str,
        name: str,
        kind: str = "scorecard",
        version: str | None = None,
        features: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
        time_col: str | None = None,
        monotonic: Mapping[str, str] | None = None,
        bad_value: str | None = None,
        valid_fraction: float = 0.3,
        calibration: str = "platt",
        seed: int = 0,
        base_points: float = 600.0,
        base_odds: float = 50.0,
        pdo: float = 20.0,
        min_iv: float = 0.02,
        max_bins: int | None = None,
        prebin_rows: int | None = 50_000,
        prebinning: str = "auto",
        n_jobs: int | None = None,
        rounds: int = 500,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        reasons: Mapping[str, str] | None = None,
        description: str = "",
        report_dir: str | Path | None = None,
        actor: str = "python",
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Train, validate, (report,) register. Returns the registry entry plus ``report`` paths.

        Every check runs before anything is stored: a bad table or option raises FengkongError naming the field
        and leaves the registry as it was.
        """
        check_name(name, version)
        version = version or self.next_version(name)
        self._check_new(name, version)
        frame = read_table(data) if isinstance(data, str | Path) else data
        unknown = [c for c in exclude if c not in frame.columns]
        if unknown:  # a misspelt --exclude would silently keep the column it meant to leave out
            raise FengkongError("feature_not_found", f"exclude: the data has no column {unknown[0]!r}", unknown[0], 422)
        try:
            scaling = Scaling(base_points=base_points, base_odds=base_odds, pdo=pdo)
        except ValueError as exc:
            raise FengkongError("invalid_field", f"points scaling: {exc}", "scaling", 422) from None
        options = TrainOptions(
            kind=kind,
            target=target,
            features=features,
            exclude=exclude,
            time_col=time_col,
            monotonic=dict(monotonic or {}),
            bad_value=bad_value,
            valid_fraction=valid_fraction,
            calibration=calibration,
            seed=seed,
            scaling=scaling,
            min_iv=min_iv,
            max_bins=max_bins,
            prebin_rows=prebin_rows,
            prebinning=prebinning,
            n_jobs=n_jobs,
            rounds=rounds,
            learning_rate=learning_rate,
            num_leaves=num_leaves,
            reasons=dict(reasons or {}),
            description=description,
        )
        trained = train_model(frame, options, name, version, self.engine.features, progress)
        paths: builtins.list[str] = []
        if report_dir is not None:
            md, html = write_training_report(trained, name, version, Path(report_dir))
            paths = [str(md), str(html)]
        entry = self.register(trained, name, version, actor)
        entry["report"] = paths
        return entry

    # ------------------------------------------------------------------------------------------ use

    def score(
        self,
        name: str,
        data: str | Path | pl.DataFrame,
        *,
        version: str | None = None,
        out: str | Path | None = None,
        reasons: int = 3,
    ) -> pl.DataFrame:
        """Score a table: its columns plus ``score``, ``pd`` and the top ``reasons`` (written to ``out``)."""
        if not 0 <= reasons <= 10:
            raise FengkongError("invalid_field", "reasons must be between 0 and 10", "reasons", 422)
        if out is not None and Path(out).suffix.lower() not in (".csv", ".parquet", ".pq"):
            raise FengkongError("unsupported_file", f"{out}: write to a .csv or .parquet file", "out", 422)
        model = self.load(name, version)
        frame = read_table(data) if isinstance(data, str | Path) else data
        scored = scored_frame(model, frame, reasons=reasons)
        if out is not None:
            write_table(scored, out)
        return scored

    def report(
        self,
        name: str,
        data: str | Path | pl.DataFrame,
        out_dir: str | Path,
        *,
        version: str | None = None,
        target: str | None = None,
    ) -> dict[str, Any]:
        """A validation report of a registered model on any labelled table (e.g. a newer out-of-time sample)."""
        row, model = self._loaded(name, version)
        frame = read_table(data) if isinstance(data, str | Path) else data
        target = target or row["target"]
        labelled, unmatured = binary_target(frame, target, row["training"].get("bad_value"))
        bad = labelled[target].to_numpy().astype(np.int8)
        if bad.sum() == 0 or bad.sum() == len(bad):
            raise FengkongError("target_too_few", "the data needs both good and bad outcomes", "target", 422)
        scored = score_points(model, labelled, points=False)
        metrics = performance(bad, scored.score, scored.pd)
        stability = row["training"]["stability"]
        inputs = labelled.select(list(dict.fromkeys(model.features)))
        label = f"{row['name']}@{row['version']}"
        data_facts = [
            ("model", f"{label} ({row['kind']}), registered {audit.timestamp_text(row['created_at'])}"),
            ("target", f"{target} (1 = bad)"),
            ("rows", f"{labelled.height:,} with an outcome ({unmatured:,} without left out)"),
            ("validation at registration", json.dumps((row["metrics"] or {}).get("valid", {}))),
        ]
        report_in = ReportInput(
            title=f"Validation report: {label} on new data",
            model=model,
            kind=row["kind"],
            facts=data_facts,
            samples=[Sample("data", scored, bad, prepared_inputs(model, inputs))],
            metrics={"data": metrics},
            iv=(row["metrics"] or {}).get("iv", {}),
            selected=list(row["features"]),
            screened=((row["training"] or {}).get("parameters") or {}).get("screened", {}).get("features", []),
            psi=stability_lines(stability, scored, inputs),
            stability=stability,
        )
        md, html = write_report(report_in, Path(out_dir), field="out")
        return {"model": label, "metrics": metrics, "report": [str(md), str(html)]}

    def monitor(
        self,
        name: str,
        data: str | Path | pl.DataFrame,
        *,
        version: str | None = None,
        target: str | None = None,
        thresholds: Thresholds | None = None,
    ) -> dict[str, Any]:
        """PSI of the score and every input against training, realised AUC/KS where outcomes have matured, and
        the alerts past ``thresholds``; ``status`` is ok, warn or alert."""
        row, model = self._loaded(name, version)
        frame = read_table(data) if isinstance(data, str | Path) else data
        check_columns(model, frame)
        return monitor(model, dict(row), frame, target, thresholds or Thresholds())

    def export(self, name: str, out_dir: str | Path, version: str | None = None) -> builtins.list[Path]:
        """Write the artefact (``NAME@VERSION.json``; a GBDT also as LightGBM's ``NAME@VERSION.txt``)."""
        row, model = self._loaded(name, version)
        folder = Path(out_dir)
        paths = [folder / f"{model.version_label}.json"]
        texts = [row["artefact"]]
        if isinstance(model, GbdtModel):
            paths.append(folder / f"{model.version_label}.txt")
            texts.append(model.spec.booster)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for path, text in zip(paths, texts, strict=True):
                path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise unwritable(folder, exc, "out") from None
        return paths
