"""Alembic environment: runs against the connection fengkong hands it (see fengkong.store.db.migrate)."""

from __future__ import annotations

from alembic import context

from fengkong.store.tables import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - fengkong always passes a connection
    raise RuntimeError("run migrations through `fengkong db upgrade` or fengkong.store.db.migrate()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
