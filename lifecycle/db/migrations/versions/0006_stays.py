"""stage_changes.from_entered_at and stay_seconds: each row closes the stay it ends (for the reports)

Existing rows are filled from the row before them for the same account (by time, then id): the
stay a row ends began when that earlier row was written.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_PREVIOUS_AT = (
    "(SELECT p.at FROM stage_changes p WHERE p.account_id = stage_changes.account_id"
    " AND (p.at < stage_changes.at OR (p.at = stage_changes.at AND p.id < stage_changes.id))"
    " ORDER BY p.at DESC, p.id DESC LIMIT 1)"
)


def upgrade() -> None:
    with op.batch_alter_table("stage_changes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("from_entered_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("stay_seconds", sa.Float(), nullable=True))
    op.execute(f"UPDATE stage_changes SET from_entered_at = {_PREVIOUS_AT} WHERE from_stage IS NOT NULL")
    if op.get_bind().dialect.name == "sqlite":
        seconds = "(julianday(at) - julianday(from_entered_at)) * 86400.0"
    else:
        seconds = "extract(epoch FROM at - from_entered_at)"
    op.execute(f"UPDATE stage_changes SET stay_seconds = {seconds} WHERE from_entered_at IS NOT NULL")
    with op.batch_alter_table("stage_changes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_stage_changes_stay", ["from_stage", "stay_seconds", "from_entered_at", "to_stage"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("stage_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_stage_changes_stay")
        batch_op.drop_column("stay_seconds")
        batch_op.drop_column("from_entered_at")
