"""params and bytes as 64-bit integers

A model's size in bytes passes 2**31 (2 GiB) for large checkpoints, and a 32-bit INTEGER column in
PostgreSQL would refuse the run. SQLite's INTEGER already holds 64 bits: nothing to change there.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 00:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = [("submissions", "params"), ("submissions", "bytes"), ("runs", "params"), ("runs", "bytes")]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, column in COLUMNS:
        op.alter_column(table, column, type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, column in COLUMNS:
        op.alter_column(table, column, type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=True)
