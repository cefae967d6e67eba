"""Engines and schema migrations for the store.

SQLite is the default (`SITE.db` in the current directory, WAL so readers never wait for the writer);
PostgreSQL is used with a `postgresql+asyncpg://` URL. The schema is owned by alembic and
upgraded to head whenever a store opens, so a new release migrates an existing database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).with_name("migrations")


def default_url(site_path: Path, suffix: str = "") -> str:
    """`…/site.yaml` → `sqlite+aiosqlite:///$PWD/site{suffix}.db`: in the current directory.

    Never beside the site file: the example sites live inside the installed package, and a package
    directory is no place for data (it may be read-only, and an upgrade replaces it). The service
    units in deploy/ run in their data directory, so there the default lands in it."""
    return f"sqlite+aiosqlite:///{Path.cwd().resolve() / (site_path.stem + suffix + '.db')}"


def normalise_url(url: str) -> str:
    """Accept the plain driver names users type and pick the async driver."""
    for plain, async_ in (("sqlite://", "sqlite+aiosqlite://"), ("postgresql://", "postgresql+asyncpg://")):
        if url.startswith(plain):
            return async_ + url[len(plain) :]
    return url


def create_engine(url: str, *, schema: str | None = None, synchronous: str = "FULL", **kwargs: Any) -> AsyncEngine:
    """An async engine; for SQLite with WAL, a busy timeout and the given `synchronous` level.

    `synchronous=FULL` makes every commit durable across power loss, not just a process crash;
    group commit (see `writer`) keeps that affordable.
    """
    url = normalise_url(url)
    if url.startswith("postgresql+asyncpg"):
        from evsite.optional import require

        require("asyncpg")
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql") and schema:
        connect_args["server_settings"] = {"search_path": schema}
    engine = create_async_engine(url, connect_args=connect_args, **kwargs)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            if ":memory:" not in url:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

    return engine


def _upgrade(connection: Connection, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database schema up to `revision` (applied on every start; a no-op when current)."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, revision)
