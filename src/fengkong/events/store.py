"""Writing a batch of events: the one insert every door's ingestion goes through."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from fengkong.store.tables import events

_COLUMNS = ("event_id", "type", "customer_id", "occurred_at", "received_at", "payload")
# The same table seen as plain text columns: SQLite stores times and JSON as text anyway.
_EVENTS_AS_TEXT = sa.table("events", *(sa.column(name, sa.String) for name in _COLUMNS))


def sqlite_time(moment: dt.datetime) -> str:
    """The text SQLAlchemy's SQLite DATETIME writes for a UTC moment (it compares as text in queries)."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def insert_new(conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Insert events whose id is not stored yet; return the ids this call stored.

    ON CONFLICT DO NOTHING: a concurrent batch carrying the same new event wins the race, and ours then
    reports it as a duplicate instead of failing. On SQLite the rows go in as the very text SQLAlchemy's
    DATETIME and JSON types would write (tested): their per-value conversion cost more than the insert.
    """
    if not rows:
        return set()
    if conn.dialect.name == "sqlite":
        received = {r["received_at"] for r in rows}  # one moment for a whole batch, as the engine writes it
        received_text = {moment: sqlite_time(moment) for moment in received}
        text_rows = [
            {
                "event_id": r["event_id"],
                "type": r["type"],
                "customer_id": r["customer_id"],
                "occurred_at": sqlite_time(r["occurred_at"]),
                "received_at": received_text[r["received_at"]],
                "payload": json.dumps(r["payload"]),
            }
            for r in rows
        ]
        lean = sqlite.insert(_EVENTS_AS_TEXT).on_conflict_do_nothing(index_elements=["event_id"])
        return set(conn.execute(lean.returning(_EVENTS_AS_TEXT.c.event_id), text_rows).scalars())
    if conn.dialect.name == "postgresql":
        stmt: Any = postgresql.insert(events).on_conflict_do_nothing(index_elements=["event_id"])
    else:
        stmt = sqlite.insert(events).on_conflict_do_nothing(index_elements=["event_id"])
    return set(conn.execute(stmt.returning(events.c.event_id), list(rows)).scalars())
