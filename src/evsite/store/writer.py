"""Group commit: many handlers' writes share one database transaction and one commit.

Every OCPP handler that stores something awaits its write before it answers the charger
(an acknowledged message is a committed message). Committing each message alone costs one
fsync per message; here a single writer task takes whatever has queued up while the previous
commit ran, executes it in one transaction, commits once and then wakes all the waiters. Under
light load a batch holds one write (no added latency); under heavy load batches grow by
themselves. If a batch fails, its writes are retried one by one so one bad write cannot fail
the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

T = TypeVar("T")
Op = Callable[[AsyncConnection], Awaitable[Any]]


@dataclass
class _Job:
    future: asyncio.Future[Any]
    op: Op | None = None
    inserts: Mapping[Table, Sequence[dict[str, Any]]] = field(default_factory=dict)


def insert_ignore(conn: AsyncConnection, table: Table) -> Any:
    """INSERT … ON CONFLICT DO NOTHING for the connection's dialect (duplicates are dropped)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


class GroupCommitter:
    """The single writer of a store; see the module docstring."""

    def __init__(self, engine: AsyncEngine, max_batch: int = 2000) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.jobs = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="store-group-commit")

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def run(self, op: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `op` inside the next batch's transaction; return its result once committed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(future, op=op))
        return await future

    async def insert_ignore(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows (dropping duplicates of unique keys); rows of a batch go in one executemany."""
        await self.insert_ignore_many({table: rows})

    async def insert_ignore_many(self, inserts: Mapping[Table, Sequence[dict[str, Any]]]) -> None:
        """Insert rows into several tables in the same transaction (all or nothing), duplicates dropped."""
        inserts = {table: rows for table, rows in inserts.items() if rows}
        if not inserts:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(future, inserts=inserts))
        await future

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                job = self._queue.get_nowait()
                if job is None:
                    stopping = True
                    break
                batch.append(job)
            await self._commit_batch(batch)

    async def _commit_batch(self, batch: list[_Job]) -> None:
        try:
            results = await self._execute(batch)
        except Exception as exc:
            if len(batch) == 1:
                log.error("store write failed: %s", exc)
                if not batch[0].future.done():
                    batch[0].future.set_exception(exc)
                return
            log.warning("batch of %d writes failed; retrying them one by one", len(batch), exc_info=True)
            for job in batch:
                await self._commit_batch([job])
            return
        self.batches += 1
        self.jobs += len(batch)
        for job, result in zip(batch, results, strict=True):
            if not job.future.done():
                job.future.set_result(result)

    async def _execute(self, batch: list[_Job]) -> list[Any]:
        results: list[Any] = []
        rows_by_table: dict[Table, list[dict[str, Any]]] = {}
        async with self._engine.begin() as conn:
            for job in batch:
                if job.op is not None:
                    results.append(await job.op(conn))
                else:
                    for table, rows in job.inserts.items():
                        rows_by_table.setdefault(table, []).extend(rows)
                    results.append(None)
            for table, rows in rows_by_table.items():
                await _insert_rows(conn, table, rows)
        return results


async def _insert_rows(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> None:
    """executemany of INSERT … ON CONFLICT DO NOTHING.

    On SQLite the statement goes straight to the driver with the columns' own bind processors
    applied: for the many small rows of meter values this halves the cost of SQLAlchemy's
    per-row parameter handling. Other databases take the regular path.
    """
    if conn.dialect.name != "sqlite":
        await conn.execute(insert_ignore(conn, table), rows)
        return
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        by_columns.setdefault(tuple(row), []).append(row)
    for columns, group in by_columns.items():
        processors = [table.c[name].type.bind_processor(conn.dialect) for name in columns]
        quote = conn.dialect.identifier_preparer.quote
        sql = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)})"
            f" VALUES ({', '.join('?' * len(columns))}) ON CONFLICT DO NOTHING"
        )
        params = [
            tuple(p(row[c]) if p is not None else row[c] for c, p in zip(columns, processors, strict=True))
            for row in group
        ]
        await conn.exec_driver_sql(sql, params)
