"""The model registry on SQLite and PostgreSQL: registration (audited, immutable), the content hash checked on
every load, scoring files, monitoring, and bad input that leaves everything registered as it was."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa

from fengkong import Engine
from fengkong.errors import FengkongError
from fengkong.store.tables import audit_log
from fengkong.store.tables import models as models_table
from support.models import APP_FEATURES, app_model, german_model, german_path, history


def _state(engine: Engine) -> dict[str, Any]:
    """Everything registered, as stored: rows and audit entries."""
    with engine.db.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(models_table).order_by(models_table.c.name)).mappings()]
        entries = conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one()
    for r in rows:
        r["created_at"] = str(r["created_at"])
    return {"rows": rows, "audit": entries}


def test_register_list_get_load_and_audit(engine: Engine) -> None:
    trained = app_model("scorecard")
    entry = engine.models.register(trained, "app-card", "1", actor="tester")
    assert entry["label"] == "app-card@1" and entry["kind"] == "scorecard"
    stored = engine.models.get("app-card", "1", artefact=True)["artefact"]
    assert entry["content_sha256"] == hashlib.sha256(stored.encode()).hexdigest()
    assert json.loads(stored)["name"] == "app-card"  # the artefact names itself as registered
    assert entry["data_fingerprint"] == trained.data_fingerprint and len(entry["data_fingerprint"]) == 64
    assert entry["features"] == trained.features and set(entry["features"]) <= set(APP_FEATURES)
    assert entry["metrics"]["valid"]["auc"] == pytest.approx(trained.metrics["valid"]["auc"])
    assert entry["created_by"] == "tester" and entry["created_at"].endswith("Z")
    engine.models.register(app_model("gbdt"), "app-card", "2", actor="tester")
    assert [m["label"] for m in engine.models.list()] == ["app-card@1", "app-card@2"]
    assert engine.models.get("app-card")["version"] == "2"  # the latest by default
    assert engine.models.get("app-card")["versions"] == ["1", "2"]
    assert engine.models.next_version("app-card") == "3"
    loaded = engine.models.load("app-card", "1")
    assert loaded.version_label == "app-card@1" and loaded.content_hash == entry["content_sha256"]
    # registration is in the audit chain, and verify recomputes what it vouches for
    with engine.db.connect() as conn:
        kinds = conn.execute(sa.select(audit_log.c.kind, audit_log.c.subject_id)).all()
    assert ("model_registered", "app-card@1") in kinds and ("model_registered", "app-card@2") in kinds
    assert engine.verify_audit().ok


def test_an_artefact_edited_in_the_database_is_refused_on_every_load(engine: Engine) -> None:
    engine.models.register(app_model("scorecard"), "app-card", "1", actor="tester")
    edited = app_model("scorecard").artefact.replace('"missing_points": ', '"missing_points": 9', 1)
    with engine.db.begin() as conn:
        conn.execute(sa.update(models_table).values(artefact=edited))
    for load in (
        lambda: engine.models.load("app-card", "1"),
        lambda: engine.models.score("app-card", history().head(5)),
        lambda: engine.models.monitor("app-card", history().head(50)),
    ):
        with pytest.raises(FengkongError) as caught:
            load()
        assert caught.value.code == "model_tampered" and caught.value.field == "name"
        assert "changed after registration" in caught.value.message
    report = engine.verify_audit()
    assert not report.ok and any(f.subject_id == "app-card@1" for f in report.findings)


def test_editing_metrics_is_refused_on_load_and_found_by_audit_verify(engine: Engine) -> None:
    engine.models.register(app_model("gbdt"), "app-gb", "1", actor="tester")
    with engine.db.begin() as conn:
        conn.execute(sa.update(models_table).values(metrics={"valid": {"auc": 0.99}}))
    with pytest.raises(FengkongError) as caught:  # the artefact is intact, but the entry is not what was registered
        engine.models.load("app-gb", "1")
    assert caught.value.code == "model_tampered" and "audit chain" in caught.value.message
    assert not engine.verify_audit().ok


def test_an_artefact_edited_with_its_hash_is_refused_too(engine: Engine) -> None:
    """Rewriting the artefact and its recorded sha256 together passes the row's own check, not the audit chain's
    record of the registration: the model is refused by the registry and by a policy naming it."""
    from fengkong.policy.errors import PolicyError
    from fengkong.policy.loader import DEFAULT_POLICY_PATH, load_policy_text

    engine.models.register(app_model("scorecard"), "app-card", "1", actor="tester")
    edited = engine.models.get("app-card", "1", artefact=True)["artefact"].replace(
        '"missing_points": ', '"missing_points": 9', 1
    )
    with engine.db.begin() as conn:
        conn.execute(
            sa.update(models_table).values(artefact=edited, content_sha256=hashlib.sha256(edited.encode()).hexdigest())
        )
    with pytest.raises(FengkongError) as caught:
        engine.models.score("app-card", history().head(5))
    assert (caught.value.code, caught.value.field) == ("model_tampered", "name")
    text = DEFAULT_POLICY_PATH.read_text().replace("scorecard: starter@1", "model: app-card@1")
    with pytest.raises(PolicyError, match="changed after registration"):
        load_policy_text(text, models=engine.models.resolve)
    assert not engine.verify_audit().ok


def test_no_pickle_anywhere() -> None:
    """Models are text (a JSON table, LightGBM's text model) and nothing in fengkong serialises with pickle or a
    library built on it: loading a model can never run code."""
    import fengkong

    source = Path(fengkong.__file__).parent
    words = ("import pickle", "from pickle", "cPickle", "joblib", "cloudpickle", "import dill", "allow_pickle=True",
             "read_pickle", "to_pickle", "torch.load", "import shelve", "marshal.load")  # fmt: skip
    found = [
        f"{path.relative_to(source)}: {word}"
        for path in sorted(source.rglob("*.py"))
        for word in words
        if word in path.read_text(encoding="utf-8")
    ]
    assert found == []
    assert len(list(source.rglob("*.py"))) > 50  # the scan did look at the package
    assert not list(source.rglob("*.pkl")) and not list(source.rglob("*.joblib"))


def test_duplicate_name_and_version_is_refused_and_changes_nothing(engine: Engine) -> None:
    engine.models.register(app_model("scorecard"), "app-card", "1", actor="tester")
    before = _state(engine)
    with pytest.raises(FengkongError) as caught:
        engine.models.register(app_model("gbdt"), "app-card", "1", actor="tester")
    assert (caught.value.code, caught.value.field, caught.value.status) == ("model_version_exists", "version", 409)
    with pytest.raises(FengkongError) as caught:
        engine.models.train(history(), target="bad", name="app-card", version="1", features=APP_FEATURES)
    assert caught.value.code == "model_version_exists"
    with pytest.raises(FengkongError) as caught:  # a bundled scorecard's name and version are taken too
        engine.models.train(history(), target="bad", name="starter", version="1", features=APP_FEATURES)
    assert caught.value.code == "model_version_exists"
    assert _state(engine) == before


@pytest.mark.parametrize(
    ("data", "options", "code", "field"),
    [
        ("missing_target", {}, "target_not_found", "target"),
        ("non_binary", {}, "target_not_binary", "target"),
        ("empty", {}, "empty_data", "data"),
        ("header_only", {}, "empty_data", "data"),
        ("all_missing", {}, "feature_all_missing", "debt_to_income"),
        ("ok", {"name": "bad name!"}, "invalid_field", "name"),
        ("ok", {"exclude": ["grpah_hops_to_fraud"]}, "feature_not_found", "grpah_hops_to_fraud"),
        ("phone", {}, "feature_identifier", "phone"),
    ],
)
def test_bad_training_input_leaves_the_registry_as_it_was(
    sqlite_engine: Engine, tmp_path: Path, data: str, options: dict[str, Any], code: str, field: str
) -> None:
    engine = sqlite_engine
    engine.models.register(app_model("scorecard"), "app-card", "1", actor="tester")
    before = _state(engine)
    frame = history().select([*APP_FEATURES, "bad"])
    files = {
        "missing_target": frame.drop("bad"),
        "non_binary": frame.with_columns(pl.col("bad").cast(pl.Float64) * 0.5),
        "all_missing": frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("debt_to_income")),
        "phone": frame.with_columns(pl.format("+86 138 {}", pl.int_range(pl.len())).alias("phone")),
        "ok": frame,
    }
    path = tmp_path / "train.csv"
    if data == "empty":
        path.write_text("")
    elif data == "header_only":
        path.write_text(",".join(frame.columns) + "\n")
    else:
        files[data].write_csv(path)
    kwargs: dict[str, Any] = {"target": "bad", "name": "app-card", "kind": "scorecard", **options}
    with pytest.raises(FengkongError) as caught:
        engine.models.train(path, **kwargs)
    assert (caught.value.code, caught.value.field) == (code, field)
    assert _state(engine) == before


def test_score_a_file_with_score_pd_and_reasons(sqlite_engine: Engine, tmp_path: Path) -> None:
    engine = sqlite_engine
    engine.models.register(app_model("gbdt"), "app-gb", "1", actor="tester")
    rows = history().head(200)
    source = tmp_path / "apps.parquet"
    rows.write_parquet(source)
    for out in (tmp_path / "scored.csv", tmp_path / "scored.parquet"):
        engine.models.score("app-gb", source, out=out, reasons=2)
        scored = pl.read_csv(out) if out.suffix == ".csv" else pl.read_parquet(out)
        assert scored.height == 200
        assert {"score", "pd", "reason_1", "reason_code_1", "reason_2", "reason_code_2"} <= set(scored.columns)
        assert scored["pd"].is_between(0, 1).all()
        assert scored["reason_1"].drop_nulls().is_in(APP_FEATURES).all()
        assert "channel" in scored.columns  # the input's own columns are kept
    with pytest.raises(FengkongError) as caught:
        engine.models.score("app-gb", rows.drop("debt_to_income"))
    assert (caught.value.code, caught.value.field) == ("feature_not_found", "debt_to_income")
    for kind, column in (("scorecard", "monthly_income"), ("gbdt", "employment_months")):
        engine.models.register(app_model(kind), f"typed-{kind}", "1", actor="tester")
        wrong = rows.with_columns(pl.col(column).cast(pl.String) + " yuan")
        for act in (
            lambda: engine.models.score(f"typed-{kind}", wrong),
            lambda: engine.models.monitor(f"typed-{kind}", wrong),
        ):
            with pytest.raises(FengkongError) as caught:
                act()
            assert (caught.value.code, caught.value.field) == ("feature_type", column)
            assert "reads it as a number" in caught.value.message
    # numbers written as text are read as numbers, as a CSV of quoted numbers would be
    as_text = engine.models.score("app-gb", rows.with_columns(pl.col("debt_to_income").cast(pl.String)))
    assert as_text["score"].to_list() == engine.models.score("app-gb", rows)["score"].to_list()
    with pytest.raises(FengkongError) as caught:
        engine.models.score("nope", rows)
    assert (caught.value.code, caught.value.status) == ("model_not_found", 404)
    with pytest.raises(FengkongError) as caught:
        engine.models.score("app-gb", rows, version="7")
    assert (caught.value.code, caught.value.field) == ("model_not_found", "version")


def test_monitor_stable_data_then_shifted_data(sqlite_engine: Engine) -> None:
    engine = sqlite_engine
    engine.models.register(app_model("scorecard"), "app-card", "1", actor="tester")
    same = engine.models.monitor("app-card", history(4000, 77))
    assert same["score"]["psi"] < 0.1 and all(f["psi"] < 0.1 for f in same["features"])
    assert same["realised"] is not None and same["realised"]["auc"] > 0.55
    assert {a["what"] for a in same["alerts"]} <= {"auc", "ks"}  # small samples move AUC, not stability
    shifted = history(4000, 77).with_columns(
        pl.col("monthly_income") * 0.4, pl.col("bureau_inquiries_30d") + 6, pl.lit(None, dtype=pl.Int8).alias("bad")
    )
    report = engine.models.monitor("app-card", shifted)
    assert report["status"] == "alert" and report["score"]["psi"] > 0.25
    assert {"psi:score", "psi:monthly_income", "psi:bureau_inquiries_30d"} <= {a["what"] for a in report["alerts"]}
    assert report["realised"] == {"rows": 0, "note": "no outcome has matured yet"}
    json.dumps(report, allow_nan=False)  # plain JSON for --json
    strict = engine.models.monitor("app-card", history(4000, 77).drop("bad"), thresholds=_thresholds(0.0, 0.0))
    assert strict["status"] == "alert" and strict["realised"] is None


def _thresholds(warn: float, alert: float) -> Any:
    from fengkong.models.monitor import Thresholds

    return Thresholds(psi_warn=warn, psi_alert=alert)


def test_real_data_registered_from_a_csv_file(sqlite_engine: Engine, tmp_path: Path) -> None:
    engine = sqlite_engine
    entry = engine.models.train(
        german_path(),
        target="creditability",
        bad_value="bad",
        name="german",
        kind="gbdt",
        rounds=40,
        report_dir=tmp_path / "report",
        actor="tester",
    )
    assert entry["label"] == "german@1" and entry["metrics"]["valid"]["auc"] >= 0.7
    assert [Path(p).name for p in entry["report"]] == ["report.md", "report.html"]
    assert entry["data_fingerprint"] == german_model("gbdt").data_fingerprint  # same rows, same fingerprint
    exported = engine.models.export("german", tmp_path / "export")
    assert [p.name for p in exported] == ["german@1.json", "german@1.txt"]
    assert exported[1].read_text().startswith("tree\n")
    assert json.loads(exported[0].read_text())["kind"] == "lightgbm_gbdt"
    # a report on new labelled data
    result = engine.models.report("german", german_path(), tmp_path / "again")
    assert result["metrics"]["auc"] > 0.7 and Path(result["report"][1]).exists()


def test_unwritable_outputs_are_clear_errors_and_register_nothing(sqlite_engine: Engine, tmp_path: Path) -> None:
    """A report, scored file or export that cannot be written names its option; a training run whose report
    cannot be written registers nothing (the report is written before the model is registered)."""
    engine = sqlite_engine
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(FengkongError) as caught:
        engine.models.train(
            german_path(), target="creditability", bad_value="bad", name="german", report_dir=blocker / "report"
        )
    assert (caught.value.code, caught.value.field) == ("unwritable_path", "report")
    assert engine.models.list() == []
    engine.models.register(app_model("gbdt"), "app-gb", "1", actor="tester")
    before = _state(engine)
    for act, field in (
        (lambda: engine.models.score("app-gb", history().head(5), out=blocker / "scored.csv"), "out"),
        (lambda: engine.models.export("app-gb", blocker / "exported"), "out"),
        (lambda: engine.models.report("app-gb", history().head(500), blocker / "report"), "out"),
    ):
        with pytest.raises(FengkongError) as caught:
            act()
        assert (caught.value.code, caught.value.field) == ("unwritable_path", field)
        assert str(blocker) in caught.value.message
    assert _state(engine) == before
