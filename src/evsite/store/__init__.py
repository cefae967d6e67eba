"""Persistence: SQLAlchemy 2 (async) on SQLite by default, PostgreSQL for larger deployments."""
