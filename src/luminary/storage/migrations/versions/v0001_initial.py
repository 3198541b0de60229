"""Initial schema: projects, runs, params, tags, metrics, artifacts, environments.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(32)
KEY = sa.String(250)


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("name", name="uq_projects_name"),
    )
    op.create_table(
        "runs",
        sa.Column("id", ID, nullable=False),
        sa.Column("project_id", ID, nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("parent_id", ID, nullable=True),
        sa.Column("start_ms", sa.BigInteger, nullable=False),
        sa.Column("end_ms", sa.BigInteger, nullable=True),
        sa.Column("heartbeat_ms", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_runs_project_id_projects", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_runs_project_id_start_ms", "runs", ["project_id", "start_ms"])
    op.create_index("ix_runs_status_heartbeat_ms", "runs", ["status", "heartbeat_ms"])
    op.create_index("ix_runs_parent_id", "runs", ["parent_id"])
    op.create_table(
        "params",
        sa.Column("run_id", ID, nullable=False),
        sa.Column("key", KEY, nullable=False),
        sa.Column("value_type", sa.String(8), nullable=False),
        sa.Column("value_text", sa.Text, nullable=False),
        sa.Column("value_num", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint("run_id", "key", name="pk_params"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_params_run_id_runs", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_params_key_value_num", "params", ["key", "value_num"])
    op.create_table(
        "tags",
        sa.Column("run_id", ID, nullable=False),
        sa.Column("key", KEY, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "key", name="pk_tags"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_tags_run_id_runs", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_tags_key_run_id", "tags", ["key", "run_id"])
    op.create_table(
        "metric_series",
        sa.Column("id", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("run_id", ID, nullable=False),
        sa.Column("key", KEY, nullable=False),
        sa.Column("last_value", sa.Double, nullable=True),
        sa.Column("last_step", sa.BigInteger, nullable=True),
        sa.Column("last_ms", sa.BigInteger, nullable=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_metric_series"),
        sa.UniqueConstraint("run_id", "key", name="uq_metric_series_run_id_key"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_metric_series_run_id_runs", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_metric_series_key_last_value", "metric_series", ["key", "last_value"])
    op.create_table(
        "metric_points",
        sa.Column("series_id", sa.BigInteger, nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("ts_ms", sa.BigInteger, nullable=False),
        sa.Column("value", sa.Double, nullable=True),
    )
    op.create_index("ix_metric_points_series_id_step", "metric_points", ["series_id", "step"])
    op.create_table(
        "artifacts",
        sa.Column("run_id", ID, nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "path", name="pk_artifacts"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_artifacts_run_id_runs", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "run_environment",
        sa.Column("run_id", ID, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_run_environment"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_run_environment_run_id_runs", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    for table in (
        "run_environment",
        "artifacts",
        "metric_points",
        "metric_series",
        "tags",
        "params",
        "runs",
        "projects",
    ):
        op.drop_table(table)
