"""`fengkong policy simulate` and POST /v1/policies/{version}/simulate: the acceptance interfaces, their reports
(JSON, Markdown, HTML with charts, swap rows), the --lines path, the progress bar, and every bad input refused
with the field at fault and nothing stored."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fengkong import Engine
from fengkong.api import create_app
from fengkong.cli import app
from fengkong.policy.loader import DEFAULT_POLICY_PATH, load_policy_file
from fengkong.policy.simulate import simulate
from fengkong.simulate.history import history_frame
from fengkong.simulate.portfolio import AS_OF, portfolio_frame
from fengkong.store.tables import audit_log, policies

SECRET = "test-secret-key-0123456789abcdef-0123456789"
DEFAULT_VERSION = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))["version"]


def stricter(tmp_path: Path, version: str = "stricter-1") -> Path:
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["version"] = version
    data["score"]["decline_below"] = 640
    data["score"]["review_below"] = 660
    for seg in data["lines"]["segments"]:
        if seg["id"] == "LOW_BEHAVIOUR":
            seg["when"] = "behaviour_score < 640"
    path = tmp_path / f"{version}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {"history": tmp_path / "hist.parquet", "lines": tmp_path / "lines.parquet"}
    history_frame(3000, seed=4).write_parquet(out["history"])
    portfolio_frame(800, seed=4).write_parquet(out["lines"])
    return out


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    monkeypatch.setenv("FENGKONG_DATABASE_URL", f"sqlite:///{tmp_path / 'f.db'}")
    monkeypatch.setenv("FENGKONG_SECRET_KEY", SECRET)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(app, list(args))

    yield invoke


def db_state(tmp_path: Path) -> tuple[list[Any], int]:
    with Engine(f"sqlite:///{tmp_path / 'f.db'}", secret_key=SECRET) as engine, engine.db.connect() as conn:
        rows = conn.execute(sa.select(policies).order_by(policies.c.version)).all()
        entries = conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one()
    return [tuple(r) for r in rows], entries


def test_cli_simulates_a_file_against_the_active_policy(
    cli: Callable[..., Any], files: dict[str, Path], tmp_path: Path
) -> None:
    result = cli(
        "policy", "simulate", str(stricter(tmp_path)), "--applications", str(files["history"]),
        "--json", "--report", str(tmp_path / "rep"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["current"]["version"], report["candidate"]["version"]) == (DEFAULT_VERSION, "stricter-1")
    assert report["candidate"]["approved"] < report["current"]["approved"]  # stricter cut-offs
    assert report["swap_in"]["rows"] == 0 and report["swap_out"]["rows"] > 0
    assert report["swap_out"]["other_reasons"]  # why the candidate no longer approves them
    # no --segments: the usual segment columns the table has
    assert list(report["segments"]) == ["channel", "region", "income_band", "application_month"]
    page = (tmp_path / "rep" / "simulation.html").read_text()
    assert page.count("<svg") == 3 + 4  # outcome mix, two histograms, one chart per segment column
    assert "## Swap sets" in (tmp_path / "rep" / "simulation.md").read_text()
    swaps = pl.read_parquet(tmp_path / "rep" / "swaps.parquet")
    assert swaps.height == report["swap_out"]["rows"] and set(swaps["swap"]) == {"out"}
    # Markdown on stdout without --json; '' asks for no segments
    md = cli("policy", "simulate", str(stricter(tmp_path)), "--applications", str(files["history"]), "--segments", "")
    assert md.exit_code == 0 and md.stdout.startswith("# Policy simulation: default stricter-1 (candidate)")
    assert "## Segment:" not in md.stdout and "| approval rate |" in md.stdout


def test_cli_candidate_against_a_published_current(
    cli: Callable[..., Any], files: dict[str, Path], tmp_path: Path
) -> None:
    """The acceptance form: both sides named by version, --json, figures those of the Python call."""
    path = stricter(tmp_path)
    assert cli("policy", "publish", str(path)).exit_code == 0
    result = cli(
        "policy", "simulate", "stricter-1", "--against", DEFAULT_VERSION, "--applications", str(files["history"]),
        "--segments", "channel", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    direct = simulate(
        load_policy_file(path), load_policy_file(DEFAULT_POLICY_PATH), pl.read_parquet(files["history"]),
        segment_columns=["channel"],
    ).as_dict()  # fmt: skip
    for key in ("current", "candidate", "swap_in", "swap_out", "migration", "segments"):
        assert same_figures(got[key], direct[key]), key
    # reversed: the current policy as candidate swaps in exactly what the stricter one swapped out
    back = cli(
        "policy", "simulate", DEFAULT_VERSION, "--against", "stricter-1", "--applications", str(files["history"]),
        "--json",
    )  # fmt: skip
    assert json.loads(back.stdout)["swap_in"]["rows"] == got["swap_out"]["rows"]


def test_cli_lines_re_runs_line_review_under_both_policies(
    cli: Callable[..., Any], files: dict[str, Path], tmp_path: Path
) -> None:
    args = ["policy", "simulate", str(stricter(tmp_path)), "--applications", str(files["history"])]
    args += ["--lines", str(files["lines"]), "--as-of", AS_OF.isoformat()]
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    lines = json.loads(result.stdout)["lines"]
    assert lines["as_of"] == AS_OF.isoformat() and lines["current"]["lines"] == 800
    cur, cand = lines["current"], lines["candidate"]
    assert cand["actions"]["decrease"] > cur["actions"]["decrease"]  # behaviour cut 560 → 640
    assert cand["reasons"]["decrease"]["LINE_LOW_BEHAVIOUR_SCORE"] > cur["reasons"]["decrease"].get(
        "LINE_LOW_BEHAVIOUR_SCORE", 0
    )
    md = cli(*args, "--report", str(tmp_path / "rep"))
    assert md.exit_code == 0
    assert "## Line actions by reason" in md.stdout and "| decrease | LINE_LOW_BEHAVIOUR_SCORE |" in md.stdout
    page = (tmp_path / "rep" / "simulation.html").read_text()
    assert "Line review actions" in page and "Line actions by reason" in page


def test_cli_shows_a_progress_bar_on_a_terminal(
    cli: Callable[..., Any], files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich treats stderr as a terminal
    result = cli("policy", "simulate", str(stricter(tmp_path)), "--applications", str(files["history"]))
    assert result.exit_code == 0
    assert "simulate" in result.stderr and "3000/3000" in result.stderr
    quiet = cli("policy", "simulate", str(stricter(tmp_path)), "--applications", str(files["history"]), "--json")
    assert "3000/3000" not in quiet.stderr  # never with --json


def test_cli_bad_inputs_are_refused_naming_the_field(
    cli: Callable[..., Any], files: dict[str, Path], tmp_path: Path
) -> None:
    hist = str(files["history"])
    bad_policy = tmp_path / "bad.yaml"
    bad_policy.write_text(
        DEFAULT_POLICY_PATH.read_text().replace("when: age < 18 or age > 65", "when: agee < 18"), encoding="utf-8"
    )
    missing = tmp_path / "missing.parquet"
    pl.read_parquet(files["history"]).drop("age").write_parquet(missing)
    short_lines = tmp_path / "short_lines.parquet"
    pl.read_parquet(files["lines"]).drop("limit").write_parquet(short_lines)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_text("not parquet", encoding="utf-8")
    text = tmp_path / "hist.txt"
    text.write_text("x", encoding="utf-8")
    cand = str(stricter(tmp_path))
    assert cli("policy", "list").exit_code == 0  # the database exists, the default published
    before = db_state(tmp_path)
    lines, seg = ["--lines", str(short_lines)], ["--segments", "province"]
    day = ["--lines", str(files["lines"]), "--as-of", "23/11/2026"]
    cases = [
        (["nope-1", "--applications", hist], "unknown_policy", "CANDIDATE", "'nope-1' is neither a policy file"),
        ([cand, "--against", "nope-2", "--applications", hist], "unknown_policy", "CURRENT", "nope-2"),
        ([str(bad_policy), "--applications", hist], "invalid_policy", "rules[0].when", "unknown feature 'agee'"),
        ([cand, "--applications", str(missing)], "simulation_missing_features", "applications", "age (read by"),
        ([cand, "--applications", str(tmp_path / "no.parquet")], "file_not_found", "applications", "no such file"),
        ([cand, "--applications", str(garbage)], "unreadable_file", "applications", "cannot be read as parquet"),
        ([cand, "--applications", str(text)], "unsupported_file", "applications", ".parquet or .csv"),
        ([cand, "--applications", hist, *lines], "simulation_missing_line_columns", "lines", "limit"),
        ([cand, "--applications", hist, "--lines", "l.parquet"], "file_not_found", "lines", "l.parquet"),
        ([cand, "--applications", hist, *seg], "simulation_missing_segments", "segment_columns", "province"),
        ([cand, "--applications", hist, "--outcome", "age"], "simulation_bad_outcome", "outcome_column", "'age'"),
        ([cand, "--applications", hist, *day], "invalid_value", "as_of", "YYYY-MM-DD"),
    ]
    for i, (args, code, field, text_) in enumerate(cases):
        r = cli("policy", "simulate", *args, "--json")
        assert r.exit_code == 1, (args, r.output)
        error = json.loads(r.stdout)
        assert (error["code"], error["field"]) == (code, field), (args, error)
        assert text_ in error["message"], (args, error["message"])
        if i % 4 == 0:  # the plain form says the same on stderr
            plain = cli("policy", "simulate", *args)
            assert plain.exit_code == 1 and f"error {code}" in plain.stderr
    assert db_state(tmp_path) == before  # nothing published, nothing audited


# ---------------------------------------------------------------------------------------------- HTTP


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[Engine, TestClient, Path]]:
    engine = Engine(f"sqlite:///{tmp_path / 'a.db'}", secret_key=SECRET)
    path = stricter(tmp_path)
    engine.publish_policy(load_policy_file(path), actor="test")
    yield engine, TestClient(create_app(engine)), path
    engine.close()


def rows_json(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return json.loads(json.dumps(frame.to_dicts(), default=str))  # dates as ISO text, as a client sends them


def same_figures(a: Any, b: Any) -> bool:
    """Equal, except that floats may differ in their last bits (the HTTP door sums the same rows in another order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_figures(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_figures(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and a == pytest.approx(b, rel=1e-12, abs=0)
    return bool(a == b)


def test_api_simulation_matches_the_python_call(api: tuple[Engine, TestClient, Path]) -> None:
    engine, client, path = api
    candidate = load_policy_file(path)
    analyst = {"X-API-Key": engine.create_api_key("analyst")}
    rows = rows_json(history_frame(400))
    body = {"applications": rows, "segment_columns": ["channel"]}
    r = client.post("/v1/policies/stricter-1/simulate", json=body, headers=analyst)
    assert r.status_code == 200, r.text
    direct = simulate(
        candidate, engine.policy(), pl.DataFrame(rows, infer_schema_length=None), segment_columns=["channel"]
    ).as_dict()
    got = r.json()
    for key in ("current", "candidate", "swap_in", "swap_out", "migration", "segments"):
        assert same_figures(got[key], direct[key]), key
    # against a named version; without segment_columns the usual ones the rows have
    same = client.post("/v1/policies/stricter-1/simulate", json={"applications": rows, "against": "stricter-1"},
                       headers=analyst).json()  # fmt: skip
    assert same["swap_in"]["rows"] == same["swap_out"]["rows"] == 0
    assert list(same["segments"]) == ["channel", "region", "income_band", "application_month"]
    system = {"X-API-Key": engine.create_api_key("system")}
    assert client.post("/v1/policies/stricter-1/simulate", json=body, headers=system).status_code == 403


def test_api_simulation_with_lines(api: tuple[Engine, TestClient, Path]) -> None:
    engine, client, _ = api
    analyst = {"X-API-Key": engine.create_api_key("analyst")}
    body = {
        "applications": rows_json(history_frame(200)),
        "lines": rows_json(portfolio_frame(500, seed=9)),
        "as_of": AS_OF.isoformat(),
    }
    r = client.post("/v1/policies/stricter-1/simulate", json=body, headers=analyst)
    assert r.status_code == 200, r.text
    lines = r.json()["lines"]
    assert lines["as_of"] == AS_OF.isoformat() and lines["candidate"]["policy_version"] == "stricter-1"
    direct = simulate(
        engine.policy("stricter-1"), engine.policy(), history_frame(200), lines=portfolio_frame(500, seed=9),
        as_of=AS_OF,
    )  # fmt: skip
    assert direct.lines is not None
    assert lines["candidate"]["reasons"] == direct.lines["candidate"]["reasons"]
    assert lines["current"]["actions"] == direct.lines["current"]["actions"]


def test_api_bad_inputs(api: tuple[Engine, TestClient, Path]) -> None:
    engine, client, _ = api
    analyst = {"X-API-Key": engine.create_api_key("analyst")}
    apps = rows_json(history_frame(50))
    lines = rows_json(portfolio_frame(20))
    url = "/v1/policies/stricter-1/simulate"

    def post(body: dict[str, Any], at: str = url) -> tuple[int, dict[str, Any]]:
        r = client.post(at, json=body, headers=analyst)
        return r.status_code, r.json()

    status, e = post({"applications": apps}, "/v1/policies/nope/simulate")
    assert (status, e["code"], e["field"]) == (404, "unknown_policy_version", "version")
    status, e = post({"applications": apps, "against": "nope"})
    assert (status, e["code"], e["field"]) == (422, "unknown_policy_version", "against")
    status, e = post({"applications": [{"age": 30}]})
    assert (status, e["code"], e["field"]) == (422, "simulation_missing_features", "applications")
    status, e = post({"applications": apps, "lines": [{k: v for k, v in r.items() if k != "limit"} for r in lines]})
    assert (status, e["code"], e["field"]) == (422, "simulation_missing_line_columns", "lines")
    assert "limit" in e["message"]
    status, e = post({"applications": apps, "lines": [dict(r, review_due_on="soon") for r in lines]})
    assert (status, e["code"], e["field"]) == (422, "invalid_field", "lines")
    status, e = post({"applications": apps, "segment_columns": ["province"]})
    assert (status, e["code"], e["field"]) == (422, "simulation_missing_segments", "segment_columns")
    status, e = post({"applications": apps, "as_of": "soon"})
    assert status == 422 and e["field"] == "as_of"
    status, e = post({"applications": []})
    assert status == 422 and e["field"] == "applications"
