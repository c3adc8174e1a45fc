"""Progress is announced once per tenth: an event, and a `job.progress` webhook when asked for;
a check that finds no new tenth sends no statement at all (it runs on every check)."""

from __future__ import annotations

from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.client import Client
from models.event import JobEvent
from models.job import Job
from models.lifecycle import record_progress
from models.webhook import WebhookDelivery


def test_each_tenth_is_announced_once(engine: Engine) -> None:
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with Session(engine) as session:
        session.add(Client(id="cl_p", name="p", key_hash="p" * 8, key_prefix="sk_"))
        now = utcnow()
        job = Job(
            client_id="cl_p",
            model="veo3.1-fast/text-to-video",
            input={"prompt": "x"},
            webhook_url="https://example.com/hook",
            webhook_events=["progress"],
            created_at=now,
            updated_at=now,
        )
        session.add(job)
        session.commit()
        for progress in (5, 34, 37, 41, 99, 100):
            session.refresh(job)
            statements.clear()
            record_progress(session, job, progress, now)
            session.commit()
            if progress == 37:
                assert statements == []  # same tenth as 34: nothing sent to the database
        announced = session.scalars(
            select(JobEvent.detail).where(JobEvent.job_id == job.id, JobEvent.kind == "progress")
        ).all()
        deliveries = session.scalar(
            select(func.count()).where(WebhookDelivery.event_type == "job.progress")
        )
    assert [d["progress"] for d in announced if d] == [34, 41, 99]
    assert deliveries == 3
