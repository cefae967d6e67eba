"""The whole database schema: every module that declares tables, on one metadata.

Alembic's migrations own the schema; this metadata is what they must produce (checked by
`tests/store/test_schema.py` with alembic's autogenerate comparison on SQLite and PostgreSQL).
"""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

from evsite.store.base import Base

TABLE_MODULES = (
    "evsite.store.models",  # OCPP central system and meter samples
    "evsite.metering.tables",  # billing: submeter readings, closed periods, adjustments, runs
    "evsite.api.tokens",  # API tokens and the audit log
)


def metadata() -> MetaData:
    """Base.metadata with every evsite table registered."""
    for name in TABLE_MODULES:
        importlib.import_module(name)
    return Base.metadata
