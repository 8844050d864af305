"""rotations: whose turn it is in a round-robin assignment, one counter per automation

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rotations",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("turns", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rotations")),
    )


def downgrade() -> None:
    op.drop_table("rotations")
