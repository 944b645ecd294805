"""Storage: migrations build exactly the tables in store/tables.py and are safe to run again; personal identifiers
never reach the database file or the logs in plain text; the deployment secret is created safely or refused."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from conftest import TEST_SECRET
from fengkong.errors import FengkongError
from fengkong.pii import SECRET_ENV, SECRET_FILE_ENV, SecretKeyError, normalize
from fengkong.service import Engine
from fengkong.store import audit
from fengkong.store.db import _alembic_config, current_revision, migrate
from fengkong.store.tables import audit_head, decisions, metadata, policies

# the example application's identifiers
RAW = {
    "id_number": "110101199003074514",
    "phone": "+86 138 0013 8000",
    "bank_card": "6222 0212 3456 7890 128",
    "device_id": "a3f9c2e1-7d4b-4c8e-9f10-2b6d8e4a1c77",
    "ip": "203.0.113.42",
}


def forms(kind: str, raw: str) -> set[str]:
    """Every text of an identifier that would give it away: as sent, normalised, and its bare SHA-256."""
    norm = normalize(kind, raw)
    out = {raw, norm, hashlib.sha256(norm.encode()).hexdigest()}
    if kind == "phone":
        out |= {"8613800138000", "138 0013 8000"}
    if kind == "bank_card":
        out.add("62220212345678")  # a long run of the card number
    if kind == "id_number":
        out.add(norm[:17])
    return out


ALL_FORMS = {f for kind, raw in RAW.items() for f in forms(kind, raw)}


@pytest.fixture
def pii_app(application: dict[str, Any]) -> dict[str, Any]:
    assert {k: application["identity"][k] for k in RAW} == RAW
    application["application_id"] = "pii-1"
    return application


# ------------------------------------------------------------------------------------------ migrations


def test_migrations_build_exactly_the_declared_schema(engine: Engine) -> None:
    with engine.db.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        assert diff == []
        tables = set(sa.inspect(conn).get_table_names())
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert current_revision(engine.db) == head
    assert tables == set(metadata.tables) | {"alembic_version"}


def test_migrate_is_idempotent(engine: Engine, application: dict[str, Any]) -> None:
    engine.decide(application)
    engine.create_api_key("admin")

    def snapshot() -> dict[str, Any]:
        with engine.db.connect() as conn:
            inspector = sa.inspect(conn)
            return {
                "revision": MigrationContext.configure(conn).get_current_revision(),
                "columns": {
                    t: [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(t)]
                    for t in sorted(inspector.get_table_names())
                },
                "indexes": {t: sorted(i["name"] for i in inspector.get_indexes(t)) for t in metadata.tables},
                "rows": {
                    t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                    for t in metadata.sorted_tables
                },
                "versions": conn.execute(sa.text("select count(*) from alembic_version")).scalar_one(),
                "head": audit.head(conn),
            }

    before = snapshot()
    assert before["rows"]["audit_head"] == 1 and before["versions"] == 1
    migrate(engine.db)
    migrate(engine.db)
    assert snapshot() == before
    # a restarted engine migrates (nothing to do) and publishes nothing: the store is as it was
    with Engine(engine.database_url, secret_key=TEST_SECRET) as again:
        assert again.verify_audit().ok
    assert snapshot() == before


def test_migrations_run_on_an_empty_database_to_a_working_store(database_url: str, application: dict[str, Any]) -> None:
    db = sa.create_engine(database_url)
    try:
        assert current_revision(db) is None
        migrate(db)
        with db.connect() as conn:
            assert conn.execute(sa.select(audit_head.c.seq, audit_head.c.entry_hash)).all() == [(0, audit.GENESIS)]
            assert conn.execute(sa.select(sa.func.count()).select_from(policies)).scalar_one() == 0
    finally:
        db.dispose()
    with Engine(database_url, secret_key=TEST_SECRET, run_migrations=False) as eng:
        assert eng.decide(application).outcome.value == "approve"
        assert eng.verify_audit().ok


# ------------------------------------------------------------------------------------------ PII at rest


def test_no_identifier_in_the_database_file(sqlite_url: str, pii_app: dict[str, Any]) -> None:
    path = Path(sa.make_url(sqlite_url).database or "")
    with Engine(sqlite_url, secret_key=TEST_SECRET) as eng:
        d = eng.decide(pii_app)
        eng.decide(copy.deepcopy(pii_app))  # a replay reads it back
        # a refused request with a raw identifier in it
        bad = copy.deepcopy(pii_app)
        bad["application_id"] = "pii-2"
        bad["applicant"]["age"] = 300
        with pytest.raises(FengkongError):
            eng.decide(bad)

        files = [p for p in (path, path.with_name(path.name + "-wal")) if p.exists()]
        assert path in files
        data = b"".join(p.read_bytes() for p in files)
        # the files do hold the decision (this test reads the right bytes)
        assert d.decision_id.encode() in data and b"cust-000123" in data
        leaked = sorted(f for f in ALL_FORMS if f.encode() in data or f.encode("utf-16-le") in data)
        assert leaked == []
        assert TEST_SECRET.encode() not in data

        # the analyst sees masked identifiers; an authorised reveal gives them back exactly
        shown = eng.explain(d.decision_id)
        assert shown["identity"] == {
            "id_number": "110101********4514",
            "phone": "138****8000",
            "bank_card": "***************0128",
            "device_id": "********************************1c77",
            "ip": "********3.42",
        }
        text = json.dumps(shown, ensure_ascii=False)
        assert sorted(f for f in ALL_FORMS if f in text) == []
        assert eng.explain(d.decision_id, reveal_pii=True)["identity"] == RAW
    # also after the WAL is checkpointed into the main file on close
    data = path.read_bytes()
    assert d.decision_id.encode() in data
    assert sorted(f for f in ALL_FORMS if f.encode() in data) == []


def test_no_identifier_in_any_stored_row(engine: Engine, pii_app: dict[str, Any]) -> None:
    """The same on both databases, column by column."""
    engine.decide(pii_app)
    with engine.db.connect() as conn:
        dumped = json.dumps(
            {t.name: [list(r) for r in conn.execute(sa.select(t))] for t in metadata.sorted_tables},
            default=str,
            ensure_ascii=False,
        )
    assert "cust-000123" in dumped
    assert sorted(f for f in ALL_FORMS if f in dumped) == []
    with engine.db.connect() as conn:
        stored = conn.execute(sa.select(decisions.c.identity_encrypted)).scalar_one()
    assert stored and engine.vault.decrypt(stored) == RAW  # encrypted, and only that way


# ------------------------------------------------------------------------------------------ PII in logs


def test_no_identifier_in_logs(sqlite_url: str, pii_app: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("fengkong", "sqlalchemy", "alembic"):
        caplog.set_level(logging.DEBUG, logger=name)
    with Engine(sqlite_url, secret_key=TEST_SECRET) as eng:
        d = eng.decide(pii_app)
        eng.decide(copy.deepcopy(pii_app))  # replay
        eng.explain(d.decision_id)
        eng.explain(d.decision_id, reveal_pii=True)
        for field, value in (
            ("id_number", "11010119900307451"),  # one digit short: refused at the door
            ("phone", "+86 138 0013 800x"),
            ("bank_card", "6222-0212-3456-7890-128"),
        ):
            bad = copy.deepcopy(pii_app)
            bad["application_id"] = f"bad-{field}"
            bad["identity"][field] = value
            with pytest.raises(FengkongError) as err:
                eng.decide(bad)
            assert err.value.field == f"identity.{field}"
            # the error a caller (and the API's log) sees does not echo the identifier either
            shown = json.dumps(err.value.as_dict(), ensure_ascii=False) + str(err.value)
            assert sorted(f for f in ALL_FORMS | {value, normalize(field, value)} if f in shown) == []
        with pytest.raises(FengkongError) as err:  # malformed JSON full of identifiers
            eng.decide_json(json.dumps(pii_app)[:-2])
        assert sorted(f for f in ALL_FORMS if f in str(err.value)) == []

    records = caplog.records
    assert any(d.decision_id in r.getMessage() for r in records)  # the decision was logged (by its id only)
    assert any(r.name.startswith("sqlalchemy") for r in records)  # and so were the SQL statements
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''} {getattr(r, '__dict__', '')}" for r in records)
    bad_values = {"11010119900307451", "+86 138 0013 800x", "6222-0212-3456-7890-128"}
    assert sorted(f for f in ALL_FORMS | bad_values if f in logged) == []


# ------------------------------------------------------------------------------------------ the secret


@pytest.fixture
def no_secret_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    monkeypatch.delenv(SECRET_FILE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _key_of(eng: Engine, application: dict[str, Any]) -> str:
    app = copy.deepcopy(application)
    app.pop("application_id", None)
    key: str = eng.explain(eng.decide(app).decision_id)["inputs"]["identity"]["id_number_key"]
    return key


def test_secret_file_is_created_private_beside_the_database(no_secret_env: Path, application: dict[str, Any]) -> None:
    url = f"sqlite:///{no_secret_env / 'data' / 'risk.db'}"
    (no_secret_env / "data").mkdir()
    with Engine(url) as eng:
        first = _key_of(eng, application)
    key_file = no_secret_env / "data" / "risk.key"
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    secret = key_file.read_bytes().strip()
    assert len(secret) >= 32
    # a restart reads the same secret back, so identifiers still link
    with Engine(url) as eng:
        assert _key_of(eng, application) == first
    assert key_file.read_bytes().strip() == secret
    assert secret not in (no_secret_env / "data" / "risk.db").read_bytes()


def test_secret_file_from_the_environment_or_the_working_directory(
    no_secret_env: Path, monkeypatch: pytest.MonkeyPatch, application: dict[str, Any]
) -> None:
    target = no_secret_env / "secrets" / "fengkong.secret"
    monkeypatch.setenv(SECRET_FILE_ENV, str(target))
    with Engine(f"sqlite:///{no_secret_env / 'a.db'}") as eng:
        _key_of(eng, application)
    assert target.exists() and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not (no_secret_env / "a.key").exists()

    # a database that is not a file: the secret goes to the working directory
    monkeypatch.delenv(SECRET_FILE_ENV)
    with Engine("sqlite://") as eng:
        assert eng.policy().version
    default = no_secret_env / "fengkong.key"
    assert default.exists() and stat.S_IMODE(default.stat().st_mode) == 0o600
    assert os.path.getsize(default) > 32

    # two deployments with their own secrets do not link each other's identifiers
    with Engine(f"sqlite:///{no_secret_env / 'b.db'}") as other:
        key_b = _key_of(other, application)
    monkeypatch.setenv(SECRET_FILE_ENV, str(target))
    with Engine(f"sqlite:///{no_secret_env / 'a.db'}") as eng:
        assert _key_of(eng, application) != key_b


def test_secret_from_the_environment(
    no_secret_env: Path, monkeypatch: pytest.MonkeyPatch, application: dict[str, Any]
) -> None:
    url = f"sqlite:///{no_secret_env / 'env.db'}"
    monkeypatch.setenv(SECRET_ENV, TEST_SECRET)
    with Engine(url) as eng:
        from_env = _key_of(eng, application)
    assert not (no_secret_env / "env.key").exists()  # nothing written when the environment has the secret
    with Engine(url, secret_key=TEST_SECRET) as eng:
        assert _key_of(eng, application) == from_env


@pytest.mark.parametrize("short", ["short", "x" * 31])
def test_short_secret_is_refused(no_secret_env: Path, monkeypatch: pytest.MonkeyPatch, short: str) -> None:
    monkeypatch.setenv(SECRET_ENV, short)
    with pytest.raises(SecretKeyError, match=SECRET_ENV):
        Engine(f"sqlite:///{no_secret_env / 's.db'}")
    assert not (no_secret_env / "s.key").exists()

    monkeypatch.delenv(SECRET_ENV)
    weak = no_secret_env / "weak.key"
    weak.write_text(short + "\n")
    monkeypatch.setenv(SECRET_FILE_ENV, str(weak))
    with pytest.raises(SecretKeyError):
        Engine(f"sqlite:///{no_secret_env / 's.db'}")


def test_every_sqlite_connection_is_set_for_durable_concurrent_writes(sqlite_url: str) -> None:
    from fengkong.store.db import create_db_engine

    db = create_db_engine(sqlite_url)
    with db.connect() as one, db.connect() as two:  # each pooled connection, not only the first
        for conn in (one, two):
            settings = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout", "wal_autocheckpoint")
            }
            assert settings == {
                "journal_mode": "wal",
                "synchronous": 1,  # NORMAL: durable across a process crash in WAL mode
                "foreign_keys": 1,
                "busy_timeout": 30_000,
                "wal_autocheckpoint": 10_000,
            }
    db.dispose()
