"""Communities of the customer link graph.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "graph_groups",
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("group_id", sa.Integer, nullable=False),
        sa.Column("group_size", sa.Integer, nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name="pk_graph_groups"),
    )
    op.create_index("ix_graph_groups_group_id", "graph_groups", ["group_id"])


def downgrade() -> None:
    op.drop_table("graph_groups")
