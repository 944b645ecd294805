"""The command line, in-process through Typer's CliRunner and, for the commands the README shows, as the real
`fengkong` executable in a temporary directory with FENGKONG_DATABASE_URL pointing to a SQLite file there.
The last test starts `fengkong serve` and talks to it over HTTP exactly as the README's curl example does."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from fengkong.cli import app
from fengkong.policy.loader import load_default_policy

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_FILE = ROOT / "examples" / "application.json"
EXAMPLE = json.loads(EXAMPLE_FILE.read_text(encoding="utf-8"))
DEFAULT_POLICY = ROOT / "src" / "fengkong" / "policies" / "default.yaml"
DEFAULT_VERSION = load_default_policy().version  # whatever the bundled policy says
KEY_SHAPE = re.compile(r"fk_[0-9a-f]{12}_[A-Za-z0-9_\-]{20,}")
DECISION_ID = re.compile(r"dec_[0-9A-Z]{26}")
_FENGKONG_ENV = ("FENGKONG_DATABASE_URL", "FENGKONG_SECRET_KEY", "FENGKONG_SECRET_FILE")


def _fengkong_executable() -> str:
    beside = Path(sys.executable).parent / "fengkong"
    if beside.exists():
        return str(beside)
    found = shutil.which("fengkong")
    if found is None:
        pytest.skip("the fengkong console script is not installed (pip install -e .)")
    return found


# ------------------------------------------------------------------------------------------------ helpers


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "fengkong.db"


@pytest.fixture
def env(db_file: Path) -> dict[str, str]:
    """The environment of a `fengkong` subprocess: our SQLite file, its own generated secret, wide output."""
    base = {k: v for k, v in os.environ.items() if k not in _FENGKONG_ENV}
    return base | {"FENGKONG_DATABASE_URL": f"sqlite:///{db_file}", "COLUMNS": "200", "NO_COLOR": "1"}


def run(tmp_path: Path, env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_fengkong_executable(), *args],
        cwd=tmp_path,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def cli(db_file: Path) -> Iterator[Any]:
    """Invoke the Typer app in-process against the SQLite file (the secret is generated beside it)."""
    runner = CliRunner()
    environment: dict[str, str | None] = {
        "FENGKONG_DATABASE_URL": f"sqlite:///{db_file}",
        "FENGKONG_SECRET_KEY": None,
        "FENGKONG_SECRET_FILE": None,
        "COLUMNS": "200",
    }

    def invoke(*args: str, stdin: str | None = None) -> Any:
        return runner.invoke(app, list(args), env=environment, input=stdin, catch_exceptions=False)

    yield invoke


def sql(db_file: Path, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db_file)
    try:
        rows = conn.execute(statement, params).fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


def broken_policy(tmp_path: Path, name: str, replacements: dict[str, str]) -> tuple[Path, str]:
    text = DEFAULT_POLICY.read_text(encoding="utf-8")
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path, text


def position(text: str, needle: str) -> tuple[int, int]:
    """1-based line and column of the first occurrence of needle."""
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number, line.index(needle) + 1
    raise AssertionError(needle)


# ------------------------------------------------------------------------------------------------ policy check


def test_policy_check_default_policy_subprocess(tmp_path: Path, env: dict[str, str]) -> None:
    r = run(tmp_path, env, "policy", "check", str(DEFAULT_POLICY))
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout and DEFAULT_VERSION in r.stdout and "starter@1" in r.stdout
    assert not (tmp_path / "fengkong.db").exists(), "checking a policy touches no database"


def test_policy_check_broken_file_subprocess(tmp_path: Path, env: dict[str, str]) -> None:
    _, text = broken_policy(
        tmp_path,
        "broken.yaml",
        {"when: age < 18 or age > 65": "when: agee < 18 or age > 65", "reason: INCOME_TOO_LOW": "reason: NO_SUCH_CODE"},
    )
    r = run(tmp_path, env, "policy", "check", "broken.yaml")
    assert r.returncode == 1, (r.stdout, r.stderr)
    line, col = position(text, "agee")
    assert f"broken.yaml:{line}:{col}:" in r.stderr, r.stderr
    assert "'ELIG_AGE'" in r.stderr and "agee" in r.stderr and "did you mean 'age'" in r.stderr
    line, col = position(text, "NO_SUCH_CODE")
    assert re.search(rf"broken\.yaml:{line}:\d+: rule 'ELIG_INCOME'", r.stderr), r.stderr
    assert "NO_SUCH_CODE" in r.stderr
    assert "OK" not in r.stdout


@pytest.mark.parametrize(
    ("name", "replacements", "needle", "rule", "quoted"),
    [
        (
            "syntax.yaml",
            {"when: monthly_income < 2000": "when: monthly_income < < 2000"},
            "< < 2000",
            "ELIG_INCOME",
            "monthly_income < < 2000",
        ),
        (
            "markup.yaml",  # square brackets in the offending text must reach the user intact
            {"when: employment in ['student', 'unemployed']": "when: employment in [student]"},
            "[student]",
            "ELIG_EMPLOYMENT",
            "employment in [student]",
        ),
        (
            "types.yaml",
            {"when: monthly_income < 2000": "when: monthly_income < 'lots'"},
            "monthly_income < 'lots'",
            "ELIG_INCOME",
            "monthly_income < 'lots'",
        ),
    ],
    ids=["syntax", "brackets", "type_error"],
)
def test_policy_check_rejects_bad_expressions(
    cli: Any, tmp_path: Path, name: str, replacements: dict[str, str], needle: str, rule: str, quoted: str
) -> None:
    path, text = broken_policy(tmp_path, name, replacements)
    r = cli("policy", "check", str(path))
    assert r.exit_code == 1, r.output
    line, _ = position(text, needle)
    assert re.search(rf"{re.escape(str(path))}:{line}:\d+: rule '{rule}'", r.stderr), r.stderr
    assert quoted in r.stderr, r.stderr

    j = cli("policy", "check", str(path), "--json")
    assert j.exit_code == 1
    payload = json.loads(j.stdout)
    assert payload["code"] == "invalid_policy"
    assert payload["errors"] and all(f"{path}:{line}:" in e["message"] for e in payload["errors"])


def test_policy_check_bad_yaml_and_missing_file(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text('policy: x\nversion: "1"\nrules: [\n', encoding="utf-8")
    r = cli("policy", "check", str(path))
    assert r.exit_code == 1
    assert re.search(rf"{re.escape(str(path))}:\d+:\d+:", r.stderr), r.stderr
    r = cli("policy", "check", str(tmp_path / "absent.yaml"))
    assert r.exit_code == 1
    assert "absent.yaml" in r.stderr and "cannot read" in r.stderr


def test_policy_check_json_summary(cli: Any) -> None:
    r = cli("policy", "check", str(DEFAULT_POLICY), "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["ok"] is True and summary["version"] == DEFAULT_VERSION and summary["rules"] > 0
    assert summary["model_version"] == "starter@1" and re.fullmatch(r"[0-9a-f]{64}", summary["content_hash"])


def test_policy_publish_and_list(cli: Any, tmp_path: Path) -> None:
    path, _ = broken_policy(tmp_path, "next.yaml", {f'version: "{DEFAULT_VERSION}"': 'version: "2026.12.0"'})
    r = cli("policy", "publish", str(path), "--activate")
    assert r.exit_code == 0, r.output
    assert "published 2026.12.0 (active)" in r.stdout
    listed = json.loads(cli("policy", "list", "--json").stdout)
    assert {(p["version"], p["active"]) for p in listed} == {(DEFAULT_VERSION, False), ("2026.12.0", True)}
    decided = json.loads(cli("decide", str(EXAMPLE_FILE), "--json").stdout)
    assert decided["policy_version"] == "2026.12.0"
    # a published version is immutable
    changed, _ = broken_policy(
        tmp_path,
        "changed.yaml",
        {f'version: "{DEFAULT_VERSION}"': 'version: "2026.12.0"', "decline_below: 560": "decline_below: 570"},
    )
    r = cli("policy", "publish", str(changed))
    assert r.exit_code == 1
    assert "policy_version_exists" in r.stderr
    assert "2026.12.0" in cli("policy", "list").stdout


# ------------------------------------------------------------------------------------------------ decide, explain


def test_decide_and_explain_subprocess(cli: Any, tmp_path: Path, env: dict[str, str], db_file: Path) -> None:
    r = run(tmp_path, env, "decide", str(EXAMPLE_FILE))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("APPROVE")
    assert "35,000" in r.stdout and "10.80%" in r.stdout and DEFAULT_VERSION in r.stdout
    decision_id = DECISION_ID.search(r.stdout).group(0)  # type: ignore[union-attr]
    assert (tmp_path / "fengkong.key").exists(), "the secret is generated beside the SQLite file"
    assert sql(db_file, "SELECT id, outcome FROM decisions") == [(decision_id, "approve")]

    j = run(tmp_path, env, "decide", str(EXAMPLE_FILE), "--json")
    assert j.returncode == 0, j.stderr
    response = json.loads(j.stdout)
    assert response["decision_id"] == decision_id and response["replayed"] is True  # same application_id
    assert response["outcome"] == "approve" and response["limit"] == 35000.0 and response["apr"] == 0.108
    assert response["reasons"] == [] and response["policy_version"] == DEFAULT_VERSION

    e = run(tmp_path, env, "explain", decision_id)
    assert e.returncode == 0, e.stderr
    assert decision_id in e.stdout and "APPROVE" in e.stdout
    assert "reproduced under its policy version: True" in e.stdout
    assert "您的申请已获批准" in e.stdout, "the customer view defaults to Chinese"
    for raw in ("110101199003074514", "13800138000", "203.0.113.42"):
        assert raw not in e.stdout

    en = cli("explain", decision_id, "--lang", "en")  # in-process, on the same database and secret
    assert en.exit_code == 0 and "Your application is approved" in en.stdout

    ej = run(tmp_path, env, "explain", decision_id, "--json")
    assert ej.returncode == 0, ej.stderr
    detail = json.loads(ej.stdout)
    assert detail["decision_id"] == decision_id and detail["reproduced"] is True
    assert set(detail["explanation"]["customer"]) == {"zh", "en"}
    assert detail["identity"]["id_number"] == "110101********4514", "identifiers masked"


def test_decide_declined_lists_reasons(cli: Any, tmp_path: Path) -> None:
    application = dict(EXAMPLE, application_id="app-cli-low", applicant=dict(EXAMPLE["applicant"], monthly_income=1500))
    path = tmp_path / "low.json"
    path.write_text(json.dumps(application), encoding="utf-8")
    r = cli("decide", str(path))
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("DECLINE")
    assert "INCOME_TOO_LOW: Your income is below" in r.stdout  # the application asked for English
    assert "limit" not in r.stdout.splitlines()[1]


def test_decide_from_stdin_and_errors(cli: Any, tmp_path: Path, db_file: Path) -> None:
    r = cli("decide", "-", "--json", stdin=EXAMPLE_FILE.read_text(encoding="utf-8"))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["outcome"] == "approve"
    head = sql(db_file, "SELECT seq, entry_hash FROM audit_head")
    count = sql(db_file, "SELECT count(*) FROM decisions")

    bad = dict(EXAMPLE, application_id="app-cli-bad", applicant=dict(EXAMPLE["applicant"], age="32"))
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad), encoding="utf-8")
    r = cli("decide", str(path), "--json")
    assert r.exit_code == 1
    payload = json.loads(r.stdout)
    assert (payload["code"], payload["field"]) == ("invalid_field", "applicant.age")
    r = cli("decide", str(path))
    assert r.exit_code == 1 and "applicant.age" in r.stderr

    r = cli("decide", "-", stdin="{not json")
    assert r.exit_code == 1 and "malformed_json" in r.stderr
    r = cli("decide", str(tmp_path / "absent.json"))
    assert r.exit_code == 1 and "cannot read" in r.stderr
    changed = dict(EXAMPLE, applicant=dict(EXAMPLE["applicant"], monthly_income=1500))
    r = cli("decide", "-", "--json", stdin=json.dumps(changed))
    assert r.exit_code == 1 and json.loads(r.stdout)["code"] == "application_id_conflict"

    assert sql(db_file, "SELECT seq, entry_hash FROM audit_head") == head, "refusals append nothing"
    assert sql(db_file, "SELECT count(*) FROM decisions") == count


def test_explain_unknown_decision(cli: Any) -> None:
    r = cli("explain", "dec_00000000000000000000000000")
    assert r.exit_code == 1
    assert "decision_not_found" in r.stderr
    r = cli("explain", "dec_00000000000000000000000000", "--json")
    assert r.exit_code == 1
    assert json.loads(r.stdout)["code"] == "decision_not_found"


# ------------------------------------------------------------------------------------------------ audit


def test_audit_verify_then_tamper_subprocess(cli: Any, tmp_path: Path, env: dict[str, str], db_file: Path) -> None:
    decided = cli("decide", str(EXAMPLE_FILE), "--json")
    assert decided.exit_code == 0, decided.output
    decision_id = json.loads(decided.stdout)["decision_id"]

    ok = run(tmp_path, env, "audit", "verify")
    assert ok.returncode == 0, ok.stderr
    head_hash = sql(db_file, "SELECT entry_hash FROM audit_head")[0][0]
    assert "intact" in ok.stdout and head_hash in ok.stdout

    # raise the limit behind the engine's back
    [(seq,)] = sql(db_file, "SELECT seq FROM audit_log WHERE kind = 'decision' AND subject_id = ?", decision_id)
    sql(db_file, "UPDATE decisions SET limit_amount = 99000 WHERE id = ?", decision_id)
    bad = run(tmp_path, env, "audit", "verify")
    assert bad.returncode == 1, (bad.stdout, bad.stderr)
    assert f"first bad entry: {seq}" in bad.stderr, bad.stderr
    assert decision_id in bad.stderr and "edited" in bad.stderr

    report = json.loads(cli("audit", "verify", "--json").stdout)
    assert report["ok"] is False and report["first_bad_seq"] == seq
    assert [f["subject_id"] for f in report["findings"]] == [decision_id]


def test_audit_verify_finds_a_deleted_entry(cli: Any, db_file: Path) -> None:
    assert cli("decide", str(EXAMPLE_FILE)).exit_code == 0
    assert cli("apikey", "create", "--role", "auditor").exit_code == 0
    r = cli("audit", "verify", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["ok"] is True
    [(seq,)] = sql(db_file, "SELECT seq FROM audit_log WHERE kind = 'decision'")
    sql(db_file, "DELETE FROM audit_log WHERE seq = ?", seq)
    r = cli("audit", "verify")
    assert r.exit_code == 1
    assert f"first bad entry: {seq}" in r.stderr, r.stderr


# ------------------------------------------------------------------------------------------------ API keys


def test_apikey_create_prints_the_key_last_subprocess(tmp_path: Path, env: dict[str, str], db_file: Path) -> None:
    r = run(tmp_path, env, "apikey", "create", "--role", "system", "--name", "core-banking")
    assert r.returncode == 0, r.stderr
    key = r.stdout.rstrip("\n").splitlines()[-1]
    assert KEY_SHAPE.fullmatch(key), r.stdout
    key_id = key.split("_")[1]
    rows = sql(db_file, "SELECT id, role, name, key_hash, revoked_at FROM api_keys")
    assert [(i, role, name, revoked) for i, role, name, _, revoked in rows] == [
        (key_id, "system", "core-banking", None)
    ]
    assert key not in rows[0][3] and key.split("_", 2)[2] not in db_file.read_bytes().decode("latin-1"), (
        "only a hash of the key is stored"
    )


def test_apikey_invalid_role_subprocess(tmp_path: Path, env: dict[str, str], db_file: Path) -> None:
    r = run(tmp_path, env, "apikey", "create", "--role", "superuser")
    assert r.returncode != 0
    assert "superuser" in r.stderr and "system" in r.stderr
    assert not KEY_SHAPE.search(r.stdout)
    assert not db_file.exists() or sql(db_file, "SELECT count(*) FROM api_keys") == [(0,)]


def test_apikey_create_and_revoke(cli: Any, db_file: Path) -> None:
    from fengkong import Engine

    r = cli("apikey", "create", "--role", "analyst")
    assert r.exit_code == 0, r.output
    key = r.stdout.strip().splitlines()[-1]
    key_id = key.split("_")[1]
    with Engine(f"sqlite:///{db_file}") as engine:
        principal = engine.authenticate(key)
        assert principal is not None and principal.role.value == "analyst"
    r = cli("apikey", "revoke", key_id)
    assert r.exit_code == 0 and f"revoked {key_id}" in r.stdout
    with Engine(f"sqlite:///{db_file}") as engine:
        assert engine.authenticate(key) is None
    r = cli("apikey", "revoke", key_id)
    assert r.exit_code == 1 and "api_key_not_found" in r.stderr
    r = cli("apikey", "create", "--role", "root")
    assert r.exit_code == 2
    assert sql(db_file, "SELECT count(*) FROM api_keys") == [(1,)]


def test_db_upgrade(cli: Any, db_file: Path) -> None:
    r = cli("db", "upgrade")
    assert r.exit_code == 0, r.output
    [(revision,)] = sql(db_file, "SELECT version_num FROM alembic_version")
    assert f"schema at revision {revision}" in r.stdout
    assert {"decisions", "audit_log", "api_keys", "policies"} <= {
        name for (name,) in sql(db_file, "SELECT name FROM sqlite_master WHERE type = 'table'")
    }


# ------------------------------------------------------------------------------------------------ end to end


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_end_to_end(tmp_path: Path, env: dict[str, str]) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [_fengkong_executable(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, f"server exited {server.returncode}: {log_path.read_text()}"
            try:
                health = httpx.get(f"{base}/healthz", timeout=1)
                if health.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"server not healthy in 30 s: {log_path.read_text()}"
            time.sleep(0.1)
        assert health.json()["policy_version"] == DEFAULT_VERSION

        # KEY=$(fengkong apikey create --role system | tail -1), against the database the server is using
        created = run(tmp_path, env, "apikey", "create", "--role", "system")
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip().splitlines()[-1]

        # curl -X POST .../v1/applications -H "X-API-Key: $KEY" -H "Content-Type: application/json" --data @file
        r = httpx.post(
            f"{base}/v1/applications",
            headers={"X-API-Key": key, "Content-Type": "application/json"},
            content=EXAMPLE_FILE.read_bytes(),
            timeout=10,
        )
        assert r.status_code == 200, r.text
        decision = r.json()
        assert decision["outcome"] == "approve"
        assert decision["limit"] == 35000.0 and decision["apr"] == 0.108 and decision["currency"] == "CNY"
        assert decision["reasons"] == [] and decision["replayed"] is False
        assert decision["application_id"] == EXAMPLE["application_id"]
        assert decision["policy_version"] == DEFAULT_VERSION and decision["model_version"] == "starter@1"
        assert DECISION_ID.fullmatch(decision["decision_id"])

        g = httpx.get(f"{base}/v1/decisions/{decision['decision_id']}", headers={"X-API-Key": key}, timeout=10)
        assert g.status_code == 200, g.text
        detail = g.json()
        assert detail["outcome"] == "approve" and detail["reproduced"] is True
        assert detail["identity"]["id_number"] == "110101********4514"

        assert httpx.post(f"{base}/v1/applications", content=b"{}", timeout=10).json()["code"] == "missing_api_key"
        assert "fengkong_decisions_total" in httpx.get(f"{base}/metrics", timeout=10).text
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=5)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal so the exit status says how it ended
    log_text = log_path.read_text()
    assert server.returncode in (0, -signal.SIGTERM), f"server failed ({server.returncode}): {log_text}"
    assert "Application shutdown complete" in log_text, log_text
    for raw in ("110101199003074514", "13800138000", "203.0.113.42", key):
        assert raw not in log_text, f"{raw!r} in the server log"
