"""runs claimed under leases

A claimed (`running`) run belongs to one evaluator for as long as its lease lasts: `lease_owner` is the
evaluator's token, `heartbeat_at` when it last renewed the lease, `lease_expires_at` when the lease runs out
unless renewed. Another evaluator takes a run over only once its lease has expired (never by checking whether
a process id is alive: ids are reused). `attempt` counts the evaluators that took the run; each attempt writes
a fresh output folder. Claims made before this migration have no lease (NULL): they count as expired.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("lease_expires_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("attempt")
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("lease_owner")
