"""PostgreSQL: a few statements and their commit in one round trip (psycopg's pipeline mode on
the connection SQLAlchemy checked out), for the API's hottest write.

Why: a request's CPU in the API process goes mostly to the driver's per-round-trip work
(send, wait, wake up, read), not to the SQL. Creating a job is BEGIN, the client's lock, the
insert and COMMIT — four round trips through SQLAlchemy — or one here.

How: with no explicit BEGIN, the statements sent before one Sync run as one implicit
transaction (PostgreSQL's extended query protocol): committed at the Sync if all succeed,
rolled back by the server if one fails. Each statement still takes its own snapshot under READ
COMMITTED, so a lock taken by the first is held while the next one counts.

SQLAlchemy still compiles the statements and converts their parameters (its own bind
processors: JSON, the UTC timestamps), once per statement shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import Executable


@dataclass(frozen=True)
class _DriverStatement:
    sql: str
    construct: Callable[[Mapping[str, Any]], dict[str, Any]]
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]

    def parameters(self, given: Mapping[str, Any]) -> dict[str, Any]:
        values = self.construct(given)
        for name, process in self.processors:
            values[name] = process(values[name])
        return values


@lru_cache(maxsize=64)
def _for_driver(statement: Executable, dialect: Dialect) -> _DriverStatement:
    """The statement as psycopg takes it: SQL with %(name)s placeholders, and how to turn
    the caller's parameters into the driver's values (anonymous literals filled in)."""
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    if getattr(compiled, "insert_prefetch", None) or getattr(compiled, "update_prefetch", None):
        # Column defaults computed in Python are applied by SQLAlchemy's execution, not here.
        raise ValueError("a statement sent together must give every column with a default")
    processors = []
    for bind, name in compiled.bind_names.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors.append((name, process))
    return _DriverStatement(compiled.string, compiled.construct_params, tuple(processors))


def _driver(connection: AsyncConnection) -> Any:
    """The DBAPI driver's own connection under SQLAlchemy's (already checked out: no I/O)."""
    return connection.sync_connection.connection.driver_connection  # type: ignore[union-attr]


def can_send_together(connection: AsyncConnection) -> bool:
    """True when the connection is PostgreSQL on psycopg and no transaction is open on it yet
    (nothing earlier in the request's transaction would be committed behind its back)."""
    if connection.dialect.name != "postgresql" or connection.dialect.driver != "psycopg":
        return False
    driver = _driver(connection)
    return (
        isinstance(driver, psycopg.AsyncConnection)
        and driver.info.transaction_status == TransactionStatus.IDLE
    )


async def commit_together(
    connection: AsyncConnection, statements: Sequence[tuple[Executable, Mapping[str, Any]]]
) -> list[tuple[Any, ...] | None]:
    """Run `statements` in order as one transaction and commit it, in one round trip; the
    first row of each statement's result (None where it has none). Call only when
    `can_send_together(connection)`. A failure rolls all of them back and raises as
    SQLAlchemy would (a DBAPIError subclass; a broken connection leaves the pool)."""
    driver: psycopg.AsyncConnection[Any] = _driver(connection)
    prepared = [(_for_driver(s, connection.dialect), p) for s, p in statements]
    # Every statement's values before anything is sent: a failure while the pipeline is open
    # would still sync, and commit the statements already queued.
    sends = [(statement.sql, statement.parameters(given)) for statement, given in prepared]
    try:
        await driver.set_autocommit(True)  # no BEGIN: the pipeline's implicit transaction
        async with driver.pipeline():
            cursors = [await driver.execute(sql, values) for sql, values in sends]
        rows = [await cursor.fetchone() if cursor.description else None for cursor in cursors]
    except psycopg.Error as exc:
        broken = driver.broken or driver.closed
        if broken:
            await connection.invalidate(exc)
        sql = ";\n".join(statement.sql for statement, _ in prepared)
        raise DBAPIError.instance(
            sql, None, exc, psycopg.Error, connection_invalidated=broken
        ) from exc
    finally:
        if not (driver.broken or driver.closed):
            try:
                await driver.set_autocommit(False)
            except psycopg.Error:  # cut off mid-exchange (a cancelled request): not reusable
                await connection.invalidate()
    return [tuple(row) if row is not None else None for row in rows]
