"""Table definitions. Migrations in ``migrations/versions`` create exactly these; a test holds them equal."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Timestamp = sa.DateTime(timezone=True)

policies = sa.Table(
    "policies",
    metadata,
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("model_version", sa.String(128), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, default=False),  # the champion: decides by default
    sa.Column("role", sa.String(16), nullable=True),  # "challenger" (takes `share` of customers) or "shadow"
    sa.Column("share", sa.Float, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("application_id", sa.String(64), nullable=True, unique=True),
    sa.Column("customer_id", sa.String(64), nullable=False, index=True),
    sa.Column("created_at", Timestamp, nullable=False, index=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("limit_amount", sa.Float, nullable=True),
    sa.Column("apr", sa.Float, nullable=True),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("rule_hits", sa.JSON, nullable=False),
    sa.Column("inputs", sa.JSON, nullable=False),  # the request with identifiers replaced by keyed hashes
    sa.Column("features", sa.JSON, nullable=False),
    sa.Column("policy_version", sa.String(64), nullable=False),
    sa.Column("model_version", sa.String(128), nullable=False),
    sa.Column("identity_encrypted", sa.Text, nullable=True),  # raw identifiers, Fernet-encrypted
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    # champion, challenger, pinned (the request named a version) or shadow (decided, stored, never acted on)
    sa.Column("assignment", sa.String(16), nullable=True),
    sa.Column("shadow_of", sa.String(40), nullable=True, index=True),  # the live decision a shadow one mirrors
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("subject_id", sa.String(64), nullable=False, index=True),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("payload_hash", sa.String(64), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False),
)

# One row: the chain's tip. Updating it first in every appending transaction serialises appenders on both
# SQLite (write lock) and PostgreSQL (row lock), and lets `verify` notice entries cut from the end.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("revoked_at", Timestamp, nullable=True),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("customer_id", sa.String(64), nullable=False, index=True),
    sa.Column("occurred_at", Timestamp, nullable=False, index=True),
    sa.Column("received_at", Timestamp, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),  # the event with identifiers replaced by keyed hashes
)

# Internal lists of identifiers (as keyed hashes): blacklist (decline), watchlist (review). Victims of scams
# and identity theft are recorded as protected, never listed as fraudsters.
risk_lists = sa.Table(
    "risk_lists",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("list", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, index=True),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=True),
    sa.Column("removed_at", Timestamp, nullable=True),
)

protected_customers = sa.Table(
    "protected_customers",
    metadata,
    sa.Column("customer_id", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

# What event triggers raised: an alert, a case to open or a line to freeze, with the evidence.
alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False, index=True),
    sa.Column("customer_id", sa.String(64), nullable=False, index=True),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("trigger_id", sa.String(64), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("policy_version", sa.String(64), nullable=False),
    sa.Column("features", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
)

# Communities found by the periodic batch job (Louvain on the customer link graph): group ids for rules and
# for analysts. Replaced whole by each run.
graph_groups = sa.Table(
    "graph_groups",
    metadata,
    sa.Column("customer_id", sa.String(64), primary_key=True),
    sa.Column("group_id", sa.Integer, nullable=False, index=True),
    sa.Column("group_size", sa.Integer, nullable=False),
    sa.Column("computed_at", Timestamp, nullable=False),
)

# ----------------------------------------------------------------------------------- lines (issue 5, 0006)

# ----------------------------------------------------------------------------------- models (issue 4, 0007)

# ----------------------------------------------------------------------------------- loans (issue 6, 0008)

# ----------------------------------------------------------------------------------- cases (issue 7, 0009)

# ----------------------------------------------------------------------------------- console (issue 7, 0010)
