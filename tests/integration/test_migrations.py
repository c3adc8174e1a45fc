"""Migrations run up, down and up again on both databases, and agree with the models."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from models import Base
from models.base import include_in_autogenerate
from models.db import make_engine
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
