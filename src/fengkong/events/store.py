"""Writing a batch of events: the one insert every door's ingestion goes through."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from fengkong.store.tables import events


def sqlite_time(moment: dt.datetime) -> str:
    """The text SQLAlchemy's SQLite DATETIME writes for a UTC moment (it compares as text in queries)."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def insert_new(conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Insert events whose id is not stored yet, through SQLAlchemy's types; return the ids this call stored.

    ON CONFLICT DO NOTHING: a concurrent batch carrying the same new event wins the race, and ours then
    reports it as a duplicate instead of failing."""
    if not rows:
        return set()
    if conn.dialect.name == "postgresql":
        stmt: Any = postgresql.insert(events).on_conflict_do_nothing(index_elements=["event_id"])
    else:
        stmt = sqlite.insert(events).on_conflict_do_nothing(index_elements=["event_id"])
    return set(conn.execute(stmt.returning(events.c.event_id), list(rows)).scalars())


_SQLITE_CHUNK = 500  # ids per IN (...) query, well under SQLite's limit on parameters
_SQLITE_ROWS = 1000  # rows per INSERT: 6,000 parameters, under SQLite's 32,766


@functools.lru_cache(maxsize=8)
def _sqlite_insert(rows: int) -> str:
    """One INSERT of many rows: SQLite runs it in one step, so the driver gives up the GIL once per statement,
    not once per row (with a busy counting thread beside it, each hand-back of the GIL costs a wait)."""
    values = ",".join(["(?, ?, ?, ?, ?, ?)"] * rows)
    return f"INSERT INTO events (event_id, type, customer_id, occurred_at, received_at, payload) VALUES {values}"  # noqa: S608


def store_new(db: sa.Engine, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Store events the caller found new, in one transaction; return the ids another writer stored meanwhile.

    On SQLite the transaction takes the write lock first (BEGIN IMMEDIATE), so the ids still new once it holds
    it are exactly those it inserts, and the rows go to the driver in multi-row INSERTs as the very text
    SQLAlchemy's DATETIME and JSON types would write (tested; their per-value conversion cost more than the
    insert): the database then works with the GIL released while the caller's thread counts the same events
    (see ``Engine._ingest``). Elsewhere: :func:`insert_new` in an ordinary transaction."""
    if db.dialect.name != "sqlite":
        with db.begin() as conn:
            inserted = insert_new(conn, rows)
        return {r["event_id"] for r in rows} - inserted
    received_text = {moment: sqlite_time(moment) for moment in {r["received_at"] for r in rows}}
    values = [
        (
            r["event_id"],
            r["type"],
            r["customer_id"],
            sqlite_time(r["occurred_at"]),
            received_text[r["received_at"]],
            json.dumps(r["payload"]),
        )
        for r in rows
    ]
    raw = db.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            ids = [v[0] for v in values]
            raced: set[str] = set()
            for i in range(0, len(ids), _SQLITE_CHUNK):
                chunk = ids[i : i + _SQLITE_CHUNK]
                query = f"SELECT event_id FROM events WHERE event_id IN ({','.join('?' * len(chunk))})"  # noqa: S608
                raced.update(r[0] for r in cursor.execute(query, chunk))
            fresh = [v for v in values if v[0] not in raced]
            for i in range(0, len(fresh), _SQLITE_ROWS):
                rows_now = fresh[i : i + _SQLITE_ROWS]
                cursor.execute(_sqlite_insert(len(rows_now)), [x for v in rows_now for x in v])
            raw.commit()
        except BaseException:
            raw.rollback()
            raise
        finally:
            cursor.close()
    finally:
        raw.close()
    return raced
