"""Blob uploads per user (proof of possession) and indexes on the columns that name blobs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_NAMED = (
    ("artifacts", "digest"),
    ("model_versions", "digest"),
    ("dataset_versions", "manifest_digest"),
    ("dataset_versions", "schema_digest"),
)


def upgrade() -> None:
    op.create_table(
        "blob_uploads",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_blob_uploads_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("digest", "user_id", name=op.f("pk_blob_uploads")),
    )
    op.create_index(op.f("ix_blob_uploads_user_id"), "blob_uploads", ["user_id"], unique=False)
    for table, column in _NAMED:
        op.create_index(op.f(f"ix_{table}_{column}"), table, [column], unique=False)


def downgrade() -> None:
    for table, column in reversed(_NAMED):
        op.drop_index(op.f(f"ix_{table}_{column}"), table_name=table)
    op.drop_index(op.f("ix_blob_uploads_user_id"), table_name="blob_uploads")
    op.drop_table("blob_uploads")
