"""Metric batch ids: a retried metric write is stored once.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
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
        "metric_batches",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("remap", sa.Text(), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_metric_batches_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "batch_id", name=op.f("pk_metric_batches")),
    )
    op.create_index(op.f("ix_metric_batches_at_ms"), "metric_batches", ["at_ms"], unique=False)
    op.create_index(
        op.f("ix_metric_batches_run_id_at_ms"),
        "metric_batches",
        ["run_id", "at_ms"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_metric_batches_run_id_at_ms"), table_name="metric_batches")
    op.drop_index(op.f("ix_metric_batches_at_ms"), table_name="metric_batches")
    op.drop_table("metric_batches")
