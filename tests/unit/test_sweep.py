"""The sweep's claim: a claimed job is not handed out twice while its lease runs, comes back
when the lease ends (a lost message), and is released by its next step."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from models.base import utcnow
from models.job import Job, JobStatus
from models.job_queries import claim_due
from models.lifecycle import transition

LEASE = timedelta(seconds=60)


def claim(session: Session, at: timedelta = timedelta(0)) -> list[str]:
    statement = claim_due("sqlite", now=utcnow() + at, limit=10, lease=LEASE)
    claimed = list(session.scalars(statement))
    session.commit()
    return claimed


def test_a_claimed_job_is_due_again_only_after_its_lease_or_its_next_step(engine: Engine) -> None:
    with Session(engine) as session:
        job = Job(
            model="veo3.1-fast/text-to-video",
            input={"prompt": "x"},
            status=JobStatus.GENERATING,
            next_check_at=utcnow() - timedelta(seconds=1),
        )
        session.add(job)
        session.commit()

        assert claim(session) == [job.id]
        assert claim(session) == []  # a second sweep does not hand it out again
        assert claim(session, at=LEASE + timedelta(seconds=1)) == [job.id]  # message lost

        # The check ran and set the next time: that ends the claim.
        transition(
            session, job.id, JobStatus.GENERATING, JobStatus.GENERATING, next_check_at=utcnow()
        )
        session.commit()
        assert claim(session, at=timedelta(seconds=1)) == [job.id]
