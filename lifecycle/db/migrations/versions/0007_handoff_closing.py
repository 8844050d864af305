"""handoffs.closed_at and note: when and why a handoff was superseded

A handoff is closed when its account leaves the stage that opened it. Open handoffs of accounts
that had already left their stage (left open by earlier versions) are closed here, the account's
current stage as the reason.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ACCOUNT = "(SELECT {col} FROM accounts a WHERE a.id = handoffs.account_id)"


def upgrade() -> None:
    with op.batch_alter_table("handoffs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))
    stage, name, entered = (_ACCOUNT.format(col=c) for c in ("stage", "name", "stage_entered_at"))
    op.execute(
        f"UPDATE handoffs SET status = 'superseded', closed_at = {entered},"
        f" note = {name} || ' moved to ' || {stage}"
        f" WHERE status = 'open' AND stage <> {stage}"
    )


def downgrade() -> None:
    with op.batch_alter_table("handoffs", schema=None) as batch_op:
        batch_op.drop_column("note")
        batch_op.drop_column("closed_at")
