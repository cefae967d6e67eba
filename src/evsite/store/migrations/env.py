"""Alembic environment: evsite runs migrations in-process on a connection it hands over."""

from __future__ import annotations

from alembic import context

import evsite.store.models  # noqa: F401  (registers the tables on Base.metadata)
from evsite.store.base import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through evsite.store.db.migrate(engine)")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
