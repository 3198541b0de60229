"""Alembic environment: Luminary passes the connection in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from luminary.storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    msg = "Luminary runs its migrations itself, on first use of a store"
    raise RuntimeError(msg)
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
