from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.app import create_app
from models.db import get_engine
from models.job import Job
from soraq.cli import migrate


@pytest.fixture(scope="session")
def migrated() -> None:
    migrate()


@pytest.fixture
def client(migrated: None) -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


def count_jobs() -> int:
    with Session(get_engine()) as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)
