"""Tune: hyperparameter studies and their trials (Optuna's storage on Luminary's store).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tune_studies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("directions", sa.Text(), nullable=False),
        sa.Column("user_attrs", sa.Text(), nullable=False),
        sa.Column("system_attrs", sa.Text(), nullable=False),
        sa.Column("next_number", sa.Integer(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_tune_studies_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_tune_studies_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tune_studies")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_tune_studies_project_id_name")),
        sqlite_autoincrement=True,  # ids are never reused: processes cache them
    )
    op.create_table(
        "tune_trials",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("values_json", sa.Text(), nullable=True),
        sa.Column("start_ms", sa.BigInteger(), nullable=True),
        sa.Column("complete_ms", sa.BigInteger(), nullable=True),
        sa.Column("heartbeat_ms", sa.BigInteger(), nullable=True),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("intermediate", sa.Text(), nullable=False),
        sa.Column("user_attrs", sa.Text(), nullable=False),
        sa.Column("system_attrs", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_tune_trials_run_id_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["tune_studies.id"],
            name=op.f("fk_tune_trials_study_id_tune_studies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tune_trials")),
        sa.UniqueConstraint("study_id", "number", name=op.f("uq_tune_trials_study_id_number")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_tune_trials_run_id"), "tune_trials", ["run_id"], unique=False)
    op.create_index(
        op.f("ix_tune_trials_study_id_state"), "tune_trials", ["study_id", "state"], unique=False
    )
    op.create_index(
        op.f("ix_tune_trials_study_id_id"), "tune_trials", ["study_id", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_tune_trials_study_id_id"), table_name="tune_trials")
    op.drop_index(op.f("ix_tune_trials_study_id_state"), table_name="tune_trials")
    op.drop_index(op.f("ix_tune_trials_run_id"), table_name="tune_trials")
    op.drop_table("tune_trials")
    op.drop_table("tune_studies")
