from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from api.app import create_app
from models.db import get_engine, make_engine, session_scope
from models.job import Job
from models.migrate import migrate
from soraq import client_admin as clients

_names = itertools.count()


@pytest.fixture(scope="session")
def migrated() -> None:
    migrate()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite database of the test's own (admission, the sweep)."""
    url = f"sqlite:///{tmp_path / 'own.db'}"
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def new_client_key(max_active_jobs: int = 100) -> str:
    with session_scope() as session:
        return clients.create(
            session, f"client-{next(_names)}", max_active_jobs=max_active_jobs
        ).api_key


@pytest.fixture
def app_client(migrated: None) -> Iterator[TestClient]:
    """The API without credentials."""
    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture
def client(app_client: TestClient) -> TestClient:
    """The API as one fresh client."""
    app_client.headers["authorization"] = f"Bearer {new_client_key()}"
    return app_client


def count_jobs() -> int:
    with Session(get_engine()) as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)
