"""Engines and sessions. The worker and the CLI use the sync engine, the API the async one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from core import tracing
from core.config import get_settings
from core.private import private_database
from models.fair_pool import FairAsyncQueuePool

SQLITE_BUSY_TIMEOUT_MS = 30_000


_DRIVERS = {  # backend -> (sync driver, async driver)
    "postgresql": ("postgresql+psycopg", "postgresql+psycopg"),
    "sqlite": ("sqlite", "sqlite+aiosqlite"),
}


def _with_driver(url: str, *, use_async: bool) -> str:
    parsed = make_url(url)
    drivers = _DRIVERS.get(parsed.get_backend_name())
    if drivers is None:
        return url
    return parsed.set(drivername=drivers[use_async]).render_as_string(hide_password=False)


def sync_url(url: str) -> str:
    return _with_driver(url, use_async=False)


def async_url(url: str) -> str:
    return _with_driver(url, use_async=True)


def _is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _ensure_sqlite_dir(url: str) -> None:
    """The database's folder and file, private (prompts, webhook secrets, callback tokens and
    uploads live in it): a folder soraq creates is 0700, the file 0600 wherever it is."""
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        from pathlib import Path

        path = Path(database)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        private_database(path)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; busy_timeout makes writers queue, not fail.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    url = sync_url(url)
    if _is_sqlite(url):
        _ensure_sqlite_dir(url)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    tracing.trace_engine(engine)
    return engine


def make_async_engine(url: str) -> AsyncEngine:
    url = async_url(url)
    if _is_sqlite(url):
        _ensure_sqlite_dir(url)
        # One connection: SQLite has one writer anyway, and a pool only adds lock waits.
        engine = create_async_engine(
            url,
            pool_size=1,
            max_overflow=0,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        engine = create_async_engine(
            url, pool_pre_ping=True, pool_size=10, max_overflow=10, poolclass=FairAsyncQueuePool
        )
    tracing.trace_engine(engine.sync_engine)
    return engine


@lru_cache
def get_engine() -> Engine:
    return make_engine(get_settings().resolved_database_url)


@lru_cache
def get_session_factory() -> sessionmaker[Session]:
    return sessionmaker(get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session whose caller commits; anything uncommitted is rolled back on exit."""
    session = get_session_factory()()
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def async_session_factory(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)
