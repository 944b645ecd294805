"""`fengkong policy simulate` and POST /v1/policies/{version}/simulate call the same simulation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fengkong import Engine
from fengkong.api import create_app
from fengkong.cli import app
from fengkong.policy.loader import DEFAULT_POLICY_PATH
from fengkong.simulate.history import history_frame

SECRET = "test-secret-key-0123456789abcdef-0123456789"


def stricter(tmp_path: Path) -> Path:
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["version"] = "stricter-1"
    data["score"]["decline_below"] = 640
    data["score"]["review_below"] = 660
    path = tmp_path / "stricter.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_cli_simulates_a_file_against_the_active_policy(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("FENGKONG_DATABASE_URL", f"sqlite:///{tmp_path / 'f.db'}")
    monkeypatch.setenv("FENGKONG_SECRET_KEY", SECRET)
    history = tmp_path / "hist.parquet"
    history_frame(3000).write_parquet(history)
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "policy",
            "simulate",
            str(stricter(tmp_path)),
            "--applications",
            str(history),
            "--segments",
            "channel",
            "--json",
            "--report",
            str(tmp_path / "rep"),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["candidate"]["approved"] < report["current"]["approved"]  # stricter cut-offs
    assert report["swap_in"]["rows"] == 0 and report["swap_out"]["rows"] > 0
    assert (tmp_path / "rep" / "simulation.html").read_text().count("<svg") >= 2
    missing = runner.invoke(app, ["policy", "simulate", str(stricter(tmp_path)), "--applications", "nope.parquet"])
    assert missing.exit_code == 1 and "no such file" in missing.output


def test_api_simulation_matches_the_python_call(tmp_path: Path) -> None:
    from fengkong.policy.loader import load_policy_file
    from fengkong.policy.simulate import simulate

    engine = Engine(f"sqlite:///{tmp_path / 'a.db'}", secret_key=SECRET)
    candidate = load_policy_file(stricter(tmp_path))
    engine.publish_policy(candidate, actor="test")
    client = TestClient(create_app(engine))
    analyst = {"X-API-Key": engine.create_api_key("analyst")}
    rows = history_frame(400).to_dicts()
    body = {"applications": json.loads(json.dumps(rows, default=str)), "segment_columns": ["channel"]}
    r = client.post("/v1/policies/stricter-1/simulate", json=body, headers=analyst)
    assert r.status_code == 200, r.text
    import polars as pl

    direct = simulate(
        candidate,
        engine.policy(),
        pl.DataFrame(body["applications"], infer_schema_length=None),
        segment_columns=["channel"],
    ).as_dict()
    got = r.json()
    assert got["current"]["approved"] == direct["current"]["approved"]
    assert got["candidate"]["approved"] == direct["candidate"]["approved"]
    assert got["swap_out"]["rows"] == direct["swap_out"]["rows"]
    assert client.post("/v1/policies/nope/simulate", json=body, headers=analyst).status_code == 404
    system = {"X-API-Key": engine.create_api_key("system")}
    assert client.post("/v1/policies/stricter-1/simulate", json=body, headers=system).status_code == 403
    bad = client.post("/v1/policies/stricter-1/simulate", json={"applications": [{"age": 30}]}, headers=analyst)
    assert bad.status_code == 422 and bad.json()["code"] == "simulation_missing_features"
