"""Alembic environment: evsite runs migrations in-process on a connection it hands over."""

from __future__ import annotations

from alembic import context

from evsite.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through evsite.store.db.migrate(engine)")
context.configure(connection=connection, target_metadata=metadata(), render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
