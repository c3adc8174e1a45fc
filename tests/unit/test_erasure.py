"""JOB_RETENTION_DAYS and `soraq jobs purge` erase what ended before the cutoff — one client's
or everyone's —, never an unfinished job, never one twice; a retry of an erased job is
refused by the state machine itself."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from models.base import utcnow
from models.client import Client
from models.db import make_engine
from models.erasure import Erased, erase, erase_finished_before
from models.job import Job, JobStatus
from models.lifecycle import retry
from models.migrate import migrate


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'erasure.db'}"
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def _job(session: Session, client: Client, status: JobStatus, ended_days_ago: float | None) -> str:
    now = utcnow()
    job = Job(
        client_id=client.id,
        model="kling-2.6/text-to-video",
        input={"prompt": "a secret"},
        meta={"who": "alice"},
        status=status,
        finished_at=now - timedelta(days=ended_days_ago) if ended_days_ago is not None else None,
        credits_estimated=30.0,
    )
    session.add(job)
    session.flush()
    return job.id


def test_only_what_ended_before_the_cutoff_and_only_the_client_asked(engine: Engine) -> None:
    with Session(engine) as session:
        alice = Client(name="alice", key_hash="a" * 64, key_prefix="sk_a")
        bob = Client(name="bob", key_hash="b" * 64, key_prefix="sk_b")
        session.add_all([alice, bob])
        session.flush()
        old = _job(session, alice, JobStatus.SUCCEEDED, 100)
        old_failed = _job(session, alice, JobStatus.FAILED, 95)
        recent = _job(session, alice, JobStatus.SUCCEEDED, 10)
        running = _job(session, alice, JobStatus.GENERATING, None)
        bobs = _job(session, bob, JobStatus.SUCCEEDED, 100)
        session.commit()
        now = utcnow()
        cutoff = now - timedelta(days=90)
        assert erase_finished_before(session, cutoff, now, by="test", client_id=alice.id) == 2
        assert erase_finished_before(session, cutoff, now, by="test", client_id=alice.id) == 0
        rows = {j.id: j for j in session.query(Job).populate_existing()}
        assert rows[old].deleted_at is not None
        assert rows[old].input == {}
        assert rows[old].meta is None
        assert rows[old].credits_estimated == 30.0  # the tombstone keeps the usage
        assert rows[old_failed].deleted_at is not None
        assert rows[recent].deleted_at is None
        assert rows[running].deleted_at is None
        assert rows[bobs].deleted_at is None
        assert erase(session, running, now, by="test").outcome == Erased.NOT_FINISHED
        # An erased failed job is a tombstone: an operator's retry cannot revive it.
        assert retry(session, old_failed, reason="test") is False
        assert erase_finished_before(session, cutoff, now, by="test") == 1  # bob's, now


@pytest.mark.parametrize("text", ["90", "d", "9x", "١٢d", "99999999999d", "-5d"])
def test_purge_ages_are_refused_unless_plain(text: str) -> None:
    import argparse

    from soraq.cli import parse_age

    with pytest.raises(argparse.ArgumentTypeError):
        parse_age(text)
    assert parse_age("90d") == timedelta(days=90)
