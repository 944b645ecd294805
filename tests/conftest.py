"""Shared fixtures. Storage-touching tests run twice: on a SQLite file and on a real PostgreSQL server
started for the session (skipped outside CI when no PostgreSQL is installed; in CI a missing server fails)."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.postgres import PostgresServer, find_pg_bin
from support.redis import RedisServer, find_redis_server

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_APPLICATION = ROOT / "examples" / "application.json"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TEST_SECRET = "test-secret-key-0123456789abcdef-0123456789"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    if find_pg_bin() is None:
        if IN_CI:
            pytest.fail("PostgreSQL is not installed but CI=true: .ci/run must install the postgresql package")
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl, postgres) not found; install postgresql to run these")
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    if find_redis_server() is None:
        if IN_CI:
            pytest.fail("redis-server is not installed but CI=true: .ci/run must install the redis-server package")
        pytest.skip("redis-server not found on PATH; install it (Debian: apt-get install redis-server) to run these")
    with RedisServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fengkong.db'}"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    name = f"t_{os.urandom(6).hex()}"
    url = server.create_database(name)
    yield url
    server.drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'fengkong.db'}"


@pytest.fixture
def engine(database_url: str) -> Iterator[Any]:
    from fengkong import Engine

    eng = Engine(database_url, secret_key=TEST_SECRET)
    yield eng
    eng.close()


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Any]:
    from fengkong import Engine

    eng = Engine(sqlite_url, secret_key=TEST_SECRET)
    yield eng
    eng.close()


@pytest.fixture
def application() -> dict[str, Any]:
    """A fresh copy of examples/application.json (approved by the default policy), without its id."""
    data: dict[str, Any] = json.loads(EXAMPLE_APPLICATION.read_text())
    data.pop("application_id")
    return copy.deepcopy(data)
