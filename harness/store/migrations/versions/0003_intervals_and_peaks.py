"""primary-metric confidence intervals on runs; hardware peaks

Runs keep their primary metric's confidence interval (bootstrap over the test images) for the standings' tie
marks; `hardware_peaks` keeps, per hardware class, the most MACs per second it delivers, against which a run's
latency must be plausible. Both are new: older runs have no interval (shown as such), peaks are measured when
first needed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("primary_ci_low", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("primary_ci_high", sa.Float(), nullable=True))
    op.create_table(
        "hardware_peaks",
        sa.Column("hardware_class", sa.String(length=300), nullable=False),
        sa.Column("device", sa.String(length=50), nullable=False),
        sa.Column("macs_per_s", sa.Float(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("measured_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("hardware_class"),
    )


def downgrade() -> None:
    op.drop_table("hardware_peaks")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("primary_ci_high")
        batch_op.drop_column("primary_ci_low")
