"""Champion/challenger and shadow policies.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("policies", sa.Column("role", sa.String(16), nullable=True))
    op.add_column("policies", sa.Column("share", sa.Float, nullable=True))
    op.add_column("decisions", sa.Column("assignment", sa.String(16), nullable=True))
    op.add_column("decisions", sa.Column("shadow_of", sa.String(40), nullable=True))
    op.create_index("ix_decisions_shadow_of", "decisions", ["shadow_of"])


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_index("ix_decisions_shadow_of")
        batch.drop_column("shadow_of")
        batch.drop_column("assignment")
    with op.batch_alter_table("policies") as batch:
        batch.drop_column("share")
        batch.drop_column("role")
