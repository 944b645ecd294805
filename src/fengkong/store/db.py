"""Database connection and migrations: SQLite in one file by default, PostgreSQL when the URL says so."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

DATABASE_URL_ENV = "FENGKONG_DATABASE_URL"
DEFAULT_SQLITE_FILE = "fengkong.db"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def database_url(explicit: str | None = None) -> str:
    url = explicit or os.environ.get(DATABASE_URL_ENV)
    if url:
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]  # psycopg 3 is the driver we ship
        return url
    return f"sqlite:///{Path.cwd() / DEFAULT_SQLITE_FILE}"


def create_db_engine(url: str) -> sa.Engine:
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
    engine = sa.create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed during a write; NORMAL sync keeps every commit durable across a process crash
    # (a power cut may lose the last few, never corrupt the file).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Checkpoint the WAL every ~40 MB instead of every 4 MB: an ingested batch dirties pages all over the
    # events' customer index, and a checkpoint (the only step that syncs) then writes each page once for many
    # commits instead of once per commit; it halved the cost of a commit in benchmarks/ingest.py.
    cursor.execute("PRAGMA wal_autocheckpoint=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def migrate(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``. Safe to call on every start: a current schema is left alone."""
    cfg = _alembic_config()
    with engine.begin() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        head = ScriptDirectory.from_config(cfg).get_current_head()
        if revision == "head" and current == head:
            return
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
