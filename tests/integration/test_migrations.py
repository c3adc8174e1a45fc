"""Migrations run up, down and up again on both databases, and agree with the models."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, insert, inspect, text

from models import Base
from models.base import include_in_autogenerate, utcnow
from models.db import make_engine
from models.job import Job
from models.migrate import alembic_config, migrate
from tests.integration.conftest import Services

_names = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, services: Services | None, tmp_path: Path
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
    elif services is None:
        pytest.skip("PostgreSQL is not installed on this machine")
    else:
        yield services.postgres.create_database(f"migrations_{next(_names)}")


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    migrate(database_url)
    assert tables(database_url) == set(Base.metadata.tables)
    command.downgrade(alembic_config(database_url), "base")
    assert tables(database_url) == set()
    migrate(database_url)
    assert tables(database_url) == set(Base.metadata.tables)


def test_the_models_and_the_migrations_agree(database_url: str) -> None:
    migrate(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(
                MigrationContext.configure(
                    connection,
                    opts={"compare_type": True, "include_object": include_in_autogenerate},
                ),
                Base.metadata,
            )
    finally:
        engine.dispose()
    assert diff == []


def _jobs(engine: Engine, *rows: tuple[str, str | None, bool]) -> None:
    """Insert jobs (id, client id, unfinished?)."""
    now = utcnow()
    with engine.begin() as connection:
        for job_id, client_id, unfinished in rows:
            connection.execute(
                insert(Job.__table__).values(  # type: ignore[arg-type]
                    id=job_id,
                    client_id=client_id,
                    status="queued" if unfinished else "succeeded",
                    model="veo3.1-fast/text-to-video",
                    input={"prompt": job_id},
                    callback_token=job_id,
                    failures=0,
                    priority=1,
                    created_at=now,
                    updated_at=now,
                    next_check_at=now if unfinished else None,
                )
            )


def _counters(engine: Engine) -> dict[str, tuple[int, int]]:
    """Each client's (counter, actual count of its unfinished jobs)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT id, active_jobs, (SELECT count(*) FROM jobs WHERE client_id = clients.id"
                " AND next_check_at IS NOT NULL) FROM clients ORDER BY id"
            )
        ).all()
    return {row[0]: (row[1], row[2]) for row in rows}


def test_each_clients_unfinished_jobs_are_counted_by_the_database(database_url: str) -> None:
    """clients.active_jobs (what POST /jobs reads instead of counting) follows every change
    to jobs, on both databases, and the migration that adds it counts the jobs already there."""
    command.upgrade(alembic_config(database_url), "0013")
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:  # as they were at 0013
            for name in ("a", "b"):
                connection.execute(
                    text(
                        "INSERT INTO clients (id, name, key_hash, key_prefix, webhook_secret,"
                        " active, max_active_jobs, weight, livemode, created_at)"
                        " VALUES (:n, :n, :n, :n, :n, true, 100, 1, true, :t)"
                    ),
                    {"n": name, "t": utcnow()},
                )
        _jobs(engine, ("old1", "a", True), ("old2", "a", False), ("old3", "b", True))
        migrate(database_url)
        assert _counters(engine) == {"a": (1, 1), "b": (1, 1)}  # backfilled

        _jobs(engine, ("j1", "a", True), ("j2", "a", True), ("j3", "b", False))
        assert _counters(engine) == {"a": (3, 3), "b": (1, 1)}
        with engine.begin() as connection:
            run = connection.execute
            run(text("UPDATE jobs SET next_check_at = NULL WHERE id = 'j1'"))  # finished
            run(text("UPDATE jobs SET next_check_at = :t WHERE id = 'j1'"), {"t": utcnow()})
            run(text("UPDATE jobs SET next_check_at = :t WHERE id = 'j2'"), {"t": utcnow()})
            run(text("UPDATE jobs SET next_check_at = :t WHERE id = 'j3'"), {"t": utcnow()})
        assert _counters(engine) == {"a": (3, 3), "b": (2, 2)}  # a retry; a reschedule
        with engine.begin() as connection:
            connection.execute(text("UPDATE jobs SET client_id = 'b' WHERE id = 'j2'"))
            connection.execute(text("DELETE FROM jobs WHERE id IN ('j1', 'old2')"))
            connection.execute(text("UPDATE jobs SET next_check_at = NULL WHERE client_id = 'b'"))
        assert _counters(engine) == {"a": (1, 1), "b": (0, 0)}
    finally:
        engine.dispose()
