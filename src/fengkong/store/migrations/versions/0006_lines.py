"""Credit lines and their actions (issue 5).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "credit_lines",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("decision_id", sa.String(40), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("limit_amount", sa.Float, nullable=False),
        sa.Column("outstanding", sa.Float, nullable=False),
        sa.Column("apr", sa.Float, nullable=True),
        sa.Column("currency", sa.String(8), nullable=False),
        sa.Column("opened_at", ts, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        sa.Column("review_due_on", sa.Date, nullable=True),
        sa.Column("pending_limit", sa.Float, nullable=True),
        sa.Column("pending_effective_on", sa.Date, nullable=True),
        sa.Column("last_increase_on", sa.Date, nullable=True),
        sa.Column("ever_restricted", sa.Boolean, nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("opening", sa.JSON, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_credit_lines"),
        sa.UniqueConstraint("decision_id", name="uq_credit_lines_decision_id"),
    )
    op.create_index("ix_credit_lines_customer_id", "credit_lines", ["customer_id"])
    op.create_table(
        "line_actions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("line_id", sa.String(40), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("effective_on", sa.Date, nullable=True),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("limit_before", sa.Float, nullable=True),
        sa.Column("limit_after", sa.Float, nullable=False),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("notice", sa.JSON, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("policy_version", sa.String(64), nullable=True),
        sa.Column("review_run_id", sa.String(40), nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_line_actions"),
        sa.UniqueConstraint("line_id", "seq", name="uq_line_actions_line_seq"),
        sa.UniqueConstraint("review_run_id", "line_id", name="uq_line_actions_run_line"),
    )
    op.create_index("ix_line_actions_line_id", "line_actions", ["line_id"])
    op.create_index("ix_line_actions_review_run_id", "line_actions", ["review_run_id"])
    op.create_table(
        "line_review_runs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("lines_total", sa.Integer, nullable=False),
        sa.Column("lines_acted", sa.Integer, nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("completed_at", ts, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_line_review_runs"),
    )


def downgrade() -> None:
    op.drop_table("line_review_runs")
    op.drop_index("ix_line_actions_review_run_id", "line_actions")
    op.drop_index("ix_line_actions_line_id", "line_actions")
    op.drop_table("line_actions")
    op.drop_index("ix_credit_lines_customer_id", "credit_lines")
    op.drop_table("credit_lines")
