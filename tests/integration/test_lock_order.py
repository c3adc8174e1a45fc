"""A batch's cancel racing a worker that is ending one of the batch's jobs waits for it on
PostgreSQL instead of deadlocking (CI once answered a cancel with 503 database_unavailable:
the cancel held the batch's row and waited for a job whose ending transaction wanted it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from models.batch import Batch
from models.client import Client
from models.db import make_engine
from models.job import Job, JobStatus
from models.lifecycle import cancel_open_jobs, fail, transition


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    yield engine
    engine.dispose()


def _batch_of_three(engine: Engine) -> tuple[str, list[str]]:
    with Session(engine) as session:
        client = Client(name="lock-order", key_hash="0" * 64, key_prefix="sk_lock")
        session.add(client)
        session.flush()
        batch = Batch(client_id=client.id, job_count=3, jobs_open=3)
        session.add(batch)
        session.flush()
        jobs = [
            Job(client_id=client.id, batch_id=batch.id, model="kling-2.6/text-to-video", input={})
            for _ in range(3)
        ]
        session.add_all(jobs)
        session.commit()
        return batch.id, sorted(job.id for job in jobs)


def _waiting_for_a_lock(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            )
            or 0
        )


def test_a_batch_cancel_waits_for_a_job_being_ended_rather_than_deadlocking(
    engine: Engine,
) -> None:
    batch_id, (first, middle, last) = _batch_of_three(engine)
    outcome: dict[str, object] = {}

    worker = Session(engine)
    # The worker takes the middle job to Kie: its row is locked until it commits.
    assert transition(worker, middle, JobStatus.QUEUED, JobStatus.SUBMITTING)

    def cancel() -> None:
        try:
            with Session(engine) as session:
                outcome["canceled"] = cancel_open_jobs(session, batch_id, reason="test")
                session.commit()
        except Exception as error:  # noqa: BLE001 - the test reports what the cancel met
            outcome["error"] = error

    canceling = threading.Thread(target=cancel)
    canceling.start()
    deadline = time.monotonic() + 10
    while _waiting_for_a_lock(engine) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    # The cancel is blocked now. The worker's createTask is refused: ending the job takes the
    # batch's row (one job fewer open), which the cancel must not be holding.
    assert fail(worker, middle, JobStatus.SUBMITTING, "kie_rejected", "refused")
    worker.commit()
    worker.close()
    canceling.join(timeout=15)

    assert "error" not in outcome, outcome.get("error")
    assert outcome["canceled"] == 2
    with Session(engine) as session:
        statuses = {row.id: row.status for row in session.execute(select(Job.id, Job.status))}
        assert statuses == {first: "canceled", middle: "failed", last: "canceled"}
        batch = session.get(Batch, batch_id)
        assert batch is not None
        assert batch.jobs_open == 0
        assert batch.completed_at is not None
        assert session.scalar(select(func.count()).select_from(Job)) == 3
