"""pace (per-channel sending slots shared by replicas) and outbox.correlation_id

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
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
        "pace",
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.Column("held_until", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_pace")),
    )
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("correlation_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("correlation_id")
    op.drop_table("pace")
