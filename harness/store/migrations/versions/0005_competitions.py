"""competitions, phases, participants, entries, uploads, private scores

An organiser's competition (its current bundle version, and every version in `competition_versions`), its
phases (closed by the organiser: only then are private scores shown), its participants (optionally in teams;
removal keeps their rows; the hash of their server token, never the token), their entries (one row per
submitted entry point: quotas count them; `pending` while its check runs, a reservation), the uploads the
submission server took (one per participant and idempotency key), and the private part's scores of each
competition run. `runs.phase_id` ties a run to its phase; the track's own boards
rank only runs without one.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _competition_tables()
    _entry_tables()
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phase_id", sa.Integer(), nullable=True))
        batch_op.create_index("ix_runs_phase_id", ["phase_id"])
        batch_op.create_foreign_key("fk_runs_phase_id", "phases", ["phase_id"], ["id"])


def _competition_tables() -> None:
    op.create_table(
        "competitions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=100), nullable=False, unique=True),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("bundle_path", sa.Text(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "competition_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("competition_id", sa.Integer(), sa.ForeignKey("competitions.id"), nullable=False, index=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("bundle_path", sa.Text(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("competition_id", "version", name="uq_competition_version"),
    )
    op.create_table(
        "phases",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("competition_id", sa.Integer(), sa.ForeignKey("competitions.id"), nullable=False, index=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("competition_id", "name", name="uq_phase_name"),
    )
    op.create_table(
        "participants",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("competition_id", sa.Integer(), sa.ForeignKey("competitions.id"), nullable=False, index=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("team", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("removed_at", sa.DateTime(), nullable=True),
        sa.Column("last_submitted_at", sa.DateTime(), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=True, unique=True),
        sa.Column("token_created_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("competition_id", "name", name="uq_participant_name"),
    )


def _entry_tables() -> None:
    op.create_table(
        "entries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("phase_id", sa.Integer(), sa.ForeignKey("phases.id"), nullable=False),
        sa.Column("participant_id", sa.Integer(), sa.ForeignKey("participants.id"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("submission_id", sa.Integer(), sa.ForeignKey("submissions.id"), nullable=True, index=True),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("selected", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False, server_default="accepted"),
    )
    op.create_index("ix_entries_quota", "entries", ["phase_id", "participant_id", "submitted_at"])
    op.create_table(
        "uploads",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("participant_id", sa.Integer(), sa.ForeignKey("participants.id"), nullable=False, index=True),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("archive_sha256", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("entry_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("participant_id", "idempotency_key", name="uq_upload_key"),
    )
    op.create_table(
        "private_scores",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("primary_value", sa.Float(), nullable=True),
        sa.Column("primary_ci_low", sa.Float(), nullable=True),
        sa.Column("primary_ci_high", sa.Float(), nullable=True),
    )


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_runs_phase_id", type_="foreignkey")
        batch_op.drop_index("ix_runs_phase_id")
        batch_op.drop_column("phase_id")
    op.drop_table("private_scores")
    op.drop_table("uploads")
    op.drop_index("ix_entries_quota", table_name="entries")
    op.drop_table("entries")
    op.drop_table("participants")
    op.drop_table("phases")
    op.drop_table("competition_versions")
    op.drop_table("competitions")
