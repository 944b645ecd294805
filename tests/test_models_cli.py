"""The model doors: `fengkong model ...` (in-process through Typer's CliRunner, with the database in a temporary
folder) and GET /v1/models, /v1/models/{name} with the role checks."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fengkong import Engine
from fengkong.api import create_app
from fengkong.cli import app
from support.models import APP_FEATURES, app_model, german_path, history

TEST_SECRET = "test-secret-key-0123456789abcdef-0123456789"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FENGKONG_DATABASE_URL", f"sqlite:///{tmp_path / 'fengkong.db'}")
    monkeypatch.setenv("FENGKONG_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(app, [str(a) for a in args])

    return run


def test_train_list_show_score_export_from_the_command_line(cli: Any, tmp_path: Path) -> None:
    data = tmp_path / "history.csv"
    history().select([*APP_FEATURES, "bad"]).write_csv(data)
    result = cli(
        "model", "train", data, "--target", "bad", "--kind", "scorecard", "--name", "app",
        "--monotonic", "bureau_worst_dpd=asc", "--exclude", "graph_hops_to_fraud",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "registered app@1" in result.stdout
    assert "validation AUC 0." in result.stdout and "KS 0." in result.stdout
    for step in ("checking the data", "binning (optbinning)", "logistic regression", "calibrating", "validating"):
        assert step in result.stderr  # the progress bar, on standard error
    assert (tmp_path / "model-reports" / "app@1" / "report.html").exists()
    result = cli("model", "train", data, "--target", "bad", "--kind", "gbdt", "--name", "app", "--rounds", "20",
                 "--no-report", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    entry = json.loads(result.output)
    assert entry["label"] == "app@2" and entry["kind"] == "gbdt" and entry["report"] == []
    result = cli("model", "list", "--json")
    assert [m["label"] for m in json.loads(result.output)] == ["app@1", "app@2"]
    result = cli("model", "list")
    assert "app@1" in result.output and "scorecard" in result.output and "gbdt" in result.output
    result = cli("model", "show", "--name", "app", "--version", "1")
    assert result.exit_code == 0 and "valid" in result.output and "AUC" in result.output
    out = tmp_path / "scored.parquet"
    result = cli("model", "score", data, "--name", "app", "--version", "1", "--out", out)
    assert result.exit_code == 0, result.output
    scored = pl.read_parquet(out)
    assert {"score", "pd", "reason_1", "reason_code_1"} <= set(scored.columns) and scored.height == history().height
    result = cli("model", "export", "--name", "app", "--out", tmp_path / "exported")
    assert result.exit_code == 0 and (tmp_path / "exported" / "app@2.txt").exists()
    result = cli("model", "report", "--name", "app", "--version", "1", "--data", data, "--out", tmp_path / "r")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "report.md").exists() and "AUC" in result.output


def test_command_line_errors_exit_non_zero_naming_the_field(cli: Any, tmp_path: Path) -> None:
    data = tmp_path / "history.csv"
    history().select([*APP_FEATURES, "bad"]).write_csv(data)
    cases = [
        (["--target", "outcome"], "target_not_found", "'outcome'"),
        (["--target", "monthly_income"], "target_not_binary", "monthly_income"),
        (["--target", "bad", "--monotonic", "income"], "invalid_field", "FEATURE=asc"),
        (["--target", "bad", "--kind", "svm"], "invalid_field", "kind"),
    ]
    for extra, code, words in cases:
        result = cli("model", "train", data, "--name", "app", "--no-report", *extra)
        assert result.exit_code == 1, result.output
        assert code in result.output and words in result.output
    empty = tmp_path / "empty.parquet"
    history().head(0).write_parquet(empty)
    result = cli("model", "train", empty, "--target", "bad", "--name", "app", "--no-report")
    assert result.exit_code == 1 and "empty_data" in result.output
    assert json.loads(cli("model", "list", "--json").output) == []  # nothing was registered
    result = cli("model", "score", data, "--name", "ghost", "--out", tmp_path / "x.csv")
    assert result.exit_code == 1 and "model_not_found" in result.output


def test_a_model_edited_by_hand_in_the_database_is_refused(cli: Any, tmp_path: Path) -> None:
    """Someone opens the SQLite file and changes a registered artefact: every command that loads it exits 1
    naming the model, and nothing registered changes."""
    import sqlite3

    with Engine(f"sqlite:///{tmp_path / 'fengkong.db'}", secret_key=TEST_SECRET) as engine:
        engine.models.register(app_model("scorecard"), "app", "1", actor="tester")
        engine.models.register(app_model("gbdt"), "app", "2", actor="tester")
    listed = json.loads(cli("model", "list", "--json").output)
    data = tmp_path / "rows.csv"
    history(300, 5).write_csv(data)
    with sqlite3.connect(tmp_path / "fengkong.db") as db:
        db.execute(
            "update models set artefact = replace(artefact, '\"points\": ', '\"points\": 1') where version = '1'"
        )
    for command in (
        ["model", "score", data, "--name", "app", "--version", "1", "--out", tmp_path / "scored.csv"],
        ["model", "show", "--name", "app", "--version", "1"],
        ["model", "monitor", "--model", "app@1", "--data", data],
        ["model", "export", "--name", "app", "--version", "1", "--out", tmp_path / "exported"],
        ["model", "report", "--name", "app", "--version", "1", "--data", data, "--out", tmp_path / "report"],
    ):
        result = cli(*command)
        assert result.exit_code == 1, (command, result.output)
        assert "model_tampered" in result.output and "app@1" in result.output
    assert not (tmp_path / "scored.csv").exists() and not (tmp_path / "exported").exists()
    result = cli("model", "show", "--name", "app", "--json")  # the other version is untouched and loads
    assert result.exit_code == 0 and json.loads(result.output)["version"] == "2"
    after = json.loads(cli("model", "list", "--json").output)
    assert [(m["label"], m["content_sha256"]) for m in after] == [(m["label"], m["content_sha256"]) for m in listed]
    result = cli("audit", "verify")
    assert result.exit_code != 0


def test_monitor_exit_codes(cli: Any, tmp_path: Path) -> None:
    with Engine(f"sqlite:///{tmp_path / 'fengkong.db'}", secret_key=TEST_SECRET) as engine:
        engine.models.register(app_model("scorecard"), "app", "1", actor="tester")
    recent = tmp_path / "recent.parquet"
    history(3000, 21).write_parquet(recent)
    result = cli("model", "monitor", "--model", "app", "--data", recent, "--json", "--auc-drop-alert", "1",
                 "--ks-drop-alert", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["status"] in ("ok", "warn") and report["realised"]["auc"] > 0.5
    shifted = tmp_path / "shifted.parquet"
    history(3000, 21).with_columns(pl.col("debt_to_income") * 4 + 1).write_parquet(shifted)
    result = cli("model", "monitor", "--model", "app@1", "--data", shifted)
    assert result.exit_code == 3, result.output
    assert "ALERT" in result.output and "debt_to_income" in result.output
    result = cli("model", "monitor", "--model", "app", "--data", shifted, "--psi-alert", "0.01", "--psi-warn", "0.5")
    assert result.exit_code == 1 and "psi" in result.output


def test_policy_check_and_publish_resolve_registered_models(cli: Any, tmp_path: Path) -> None:
    from fengkong.policy.loader import DEFAULT_POLICY_PATH

    with Engine(f"sqlite:///{tmp_path / 'fengkong.db'}", secret_key=TEST_SECRET) as engine:
        engine.models.register(app_model("gbdt"), "app-gb", "1", actor="tester")
    policy = tmp_path / "p.yaml"
    text = DEFAULT_POLICY_PATH.read_text().replace("scorecard: starter@1", "model: app-gb@1")
    policy.write_text(re.sub(r"(?m)^version: .*$", 'version: "gb-1"', text, count=1))
    result = cli("policy", "check", policy, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["model_version"] == "app-gb@1"
    result = cli("policy", "publish", policy)
    assert result.exit_code == 0, result.output
    # without the database the model cannot be found, and the check says so
    result = cli("policy", "check", policy, "--database-url", f"sqlite:///{tmp_path / 'other.db'}")
    assert result.exit_code == 1 and "app-gb@1" in result.output
    assert not (tmp_path / "other.db").exists()  # looking never creates a database


def test_http_models_routes_and_roles(sqlite_engine: Engine) -> None:
    sqlite_engine.models.register(app_model("scorecard"), "app", "1", actor="tester")
    client = TestClient(create_app(sqlite_engine), raise_server_exceptions=False)
    analyst = {"X-API-Key": sqlite_engine.create_api_key("analyst")}
    system = {"X-API-Key": sqlite_engine.create_api_key("system")}
    listed = client.get("/v1/models", headers=analyst)
    assert listed.status_code == 200 and [m["label"] for m in listed.json()] == ["app@1"]
    one = client.get("/v1/models/app", headers=analyst).json()
    assert one["version"] == "1" and one["metrics"]["valid"]["auc"] > 0.6 and one["artefact"] is None
    with_text = client.get("/v1/models/app", params={"version": "1", "artefact": "true"}, headers=analyst).json()
    assert json.loads(with_text["artefact"])["kind"] == "points_scorecard"
    assert client.get("/v1/models", headers=system).status_code == 403
    assert client.get("/v1/models").status_code == 401
    for role in ("supervisor", "auditor", "admin"):
        key = {"X-API-Key": sqlite_engine.create_api_key(role)}
        assert client.get("/v1/models/app", headers=key).status_code == 200, role
    # the registry is read-only over HTTP: no key, not even an admin's, trains, registers or changes a model
    admin = {"X-API-Key": sqlite_engine.create_api_key("admin")}
    assert client.post("/v1/models", headers=admin, json={}).status_code == 405
    for method in ("put", "patch", "delete"):
        assert client.request(method, "/v1/models/app", headers=admin).status_code == 405
    assert [m["label"] for m in sqlite_engine.models.list()] == ["app@1"]
    missing = client.get("/v1/models/ghost", headers=analyst)
    assert missing.status_code == 404 and missing.json()["field"] == "name"
    assert client.get("/v1/models/app", params={"version": "9"}, headers=analyst).json()["field"] == "version"
    assert client.get("/v1/models/app", params={"verison": "1"}, headers=analyst).status_code == 422


def test_german_credit_from_the_command_line(cli: Any) -> None:
    result = cli("model", "train", german_path(), "--target", "creditability", "--bad-value", "bad",
                 "--kind", "scorecard", "--name", "german", "--no-report")  # fmt: skip
    assert result.exit_code == 0, result.output
    auc = float(result.output.split("validation AUC ")[1].split()[0])
    assert auc >= 0.74
