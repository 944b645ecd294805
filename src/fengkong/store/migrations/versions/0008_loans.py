"""Loans, repayments and collections (issue 6).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "loans",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("line_id", sa.String(64), nullable=True),
        sa.Column("principal_cents", sa.BigInteger, nullable=False),
        sa.Column("apr", sa.String(16), nullable=False),
        sa.Column("penalty_apr", sa.String(16), nullable=False),
        sa.Column("term", sa.Integer, nullable=False),
        sa.Column("method", sa.String(24), nullable=False),
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_on", sa.Date, nullable=True),
        sa.Column("status_reason", sa.String(64), nullable=True),
        sa.Column("last_repaid_on", sa.Date, nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_loans"),
    )
    op.create_index("ix_loans_customer_id", "loans", ["customer_id"])
    op.create_index("ix_loans_line_id", "loans", ["line_id"])
    op.create_table(
        "loan_instalments",
        sa.Column("loan_id", sa.String(64), nullable=False),
        sa.Column("period", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("due_date", sa.Date, nullable=False),
        sa.Column("principal_cents", sa.BigInteger, nullable=False),
        sa.Column("interest_cents", sa.BigInteger, nullable=False),
        sa.Column("penalty_cents", sa.BigInteger, nullable=False),
        sa.Column("principal_paid_cents", sa.BigInteger, nullable=False),
        sa.Column("interest_paid_cents", sa.BigInteger, nullable=False),
        sa.Column("penalty_paid_cents", sa.BigInteger, nullable=False),
        sa.Column("penalty_to", sa.Date, nullable=True),
        sa.Column("paid_on", sa.Date, nullable=True),
        sa.ForeignKeyConstraint(["loan_id"], ["loans.id"], name="fk_loan_instalments_loan_id_loans"),
        sa.PrimaryKeyConstraint("loan_id", "period", name="pk_loan_instalments"),
    )
    op.create_index("ix_loan_instalments_due_date", "loan_instalments", ["due_date"])
    op.create_table(
        "loan_repayments",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("loan_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("paid_on", sa.Date, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("allocation", sa.JSON, nullable=False),
        sa.Column("source", sa.String(80), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.ForeignKeyConstraint(["loan_id"], ["loans.id"], name="fk_loan_repayments_loan_id_loans"),
        sa.PrimaryKeyConstraint("id", name="pk_loan_repayments"),
    )
    op.create_index("ix_loan_repayments_loan_id", "loan_repayments", ["loan_id"])
    op.create_table(
        "collection_contacts",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("loan_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("attempted_at", ts, nullable=False),
        sa.Column("local_date", sa.Date, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("party", sa.String(24), nullable=False),
        sa.Column("dpd", sa.Integer, nullable=False),
        sa.Column("bucket", sa.String(8), nullable=False),
        sa.Column("collector", sa.String(64), nullable=False),
        sa.Column("allowed", sa.Boolean, nullable=False),
        sa.Column("refusal", sa.String(32), nullable=True),
        sa.Column("result", sa.String(24), nullable=True),
        sa.ForeignKeyConstraint(["loan_id"], ["loans.id"], name="fk_collection_contacts_loan_id_loans"),
        sa.PrimaryKeyConstraint("id", name="pk_collection_contacts"),
    )
    op.create_index("ix_collection_contacts_loan_id", "collection_contacts", ["loan_id"])
    op.create_index("ix_collection_contacts_customer_id", "collection_contacts", ["customer_id"])
    op.create_table(
        "collection_pauses",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("source", sa.String(80), nullable=False),
        sa.Column("case_id", sa.String(64), nullable=True),
        sa.Column("paused_at", ts, nullable=False),
        sa.Column("lifted_at", ts, nullable=True),
        sa.Column("lifted_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_collection_pauses"),
    )
    op.create_index("ix_collection_pauses_customer_id", "collection_pauses", ["customer_id"])


def downgrade() -> None:
    op.drop_table("collection_pauses")
    op.drop_table("collection_contacts")
    op.drop_table("loan_repayments")
    op.drop_table("loan_instalments")
    op.drop_table("loans")
