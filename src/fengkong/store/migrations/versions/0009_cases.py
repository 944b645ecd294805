"""Cases, appeals and complaints (issue 7).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("decision_id", sa.String(40), nullable=True),
        sa.Column("alert_id", sa.String(40), nullable=True),
        sa.Column("line_id", sa.String(40), nullable=True),
        sa.Column("line_action_id", sa.String(40), nullable=True),
        sa.Column("event_id", sa.String(64), nullable=True),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("message_encrypted", sa.Text, nullable=True),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("assignee", sa.String(64), nullable=True),
        sa.Column("opened_by", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("proposal", sa.JSON, nullable=True),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cases"),
        sa.UniqueConstraint("source", name="uq_cases_source"),
    )
    op.create_index("ix_cases_status", "cases", ["status"])
    op.create_index("ix_cases_customer_id", "cases", ["customer_id"])
    op.create_index("ix_cases_decision_id", "cases", ["decision_id"])
    op.create_index("ix_cases_due_at", "cases", ["due_at"])
    op.create_table(
        "case_actions",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("case_id", sa.String(40), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_case_actions"),
        sa.UniqueConstraint("case_id", "seq", name="uq_case_actions_case_seq"),
    )
    op.create_index("ix_case_actions_case_id", "case_actions", ["case_id"])


def downgrade() -> None:
    op.drop_table("case_actions")
    op.drop_table("cases")
