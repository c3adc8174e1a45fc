"""Progress for models whose upstream reports none: an estimate from the model's recent
generation times (the median of its last 50 successes; the catalogue's prior until it has
seen 5), refreshed at most once a minute per process."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from catalogue import get_catalogue
from models.base import utcnow
from models.job import Job, JobStatus
from models.job_queries import recent_generation_seconds
from models.lifecycle import AT_KIE

MIN_SAMPLES = 5
REFRESH_SECONDS = 60.0
_typical: dict[str, tuple[float, float]] = {}  # model -> (seconds, monotonic time it expires)


def typical_seconds(model: str) -> float:
    cached = _typical.get(model)
    if cached is not None:
        return cached[0]
    spec = get_catalogue().models.get(model)
    return spec.typical_seconds if spec else 120.0


def _stale(model: str) -> bool:
    cached = _typical.get(model)
    return cached is None or cached[1] <= time.monotonic()


async def refresh(session: AsyncSession, model: str) -> None:
    if _stale(model):
        _remember(model, (await session.execute(recent_generation_seconds(model))).all())


def refresh_sync(session: Session, model: str) -> None:
    """The same for the worker, which announces progress events."""
    if _stale(model):
        _remember(model, session.execute(recent_generation_seconds(model)).all())


def _remember(model: str, rows: Sequence[Any]) -> None:
    samples = [(finished - submitted).total_seconds() for submitted, finished in rows]
    spec = get_catalogue().models.get(model)
    prior = spec.typical_seconds if spec else 120.0
    seconds = statistics.median(samples) if len(samples) >= MIN_SAMPLES else prior
    _typical[model] = (max(1.0, seconds), time.monotonic() + REFRESH_SECONDS)


def estimated_progress(model: str, submitted_at: datetime, now: datetime) -> int:
    elapsed = max(0.0, (now - submitted_at).total_seconds())
    # Never 100 before the upstream says so: an estimate that runs past its time waits at 95.
    return min(95, int(100 * elapsed / typical_seconds(model)))


def shown_progress(job: Job, reported: int | None, now: datetime) -> int | None:
    """The progress a client sees for a job at Kie: the upstream's figure where the model
    reports one, else the estimate."""
    spec = get_catalogue().models.get(job.model)
    if spec is not None and spec.progress == "reported":
        return reported
    if job.submitted_at is None:
        return None
    return estimated_progress(job.model, job.submitted_at, now)


def estimate(job: Job, now: datetime | None = None) -> dict[str, Any]:
    """`progress`, `progress_source` and `eta` as a client should see them."""
    spec = get_catalogue().models.get(job.model)
    if spec is None:
        return {}
    if spec.progress == "reported":
        return {"progress_source": "reported"}
    shown: dict[str, Any] = {"progress_source": "estimated"}
    if job.status in AT_KIE and job.submitted_at is not None:
        now = now or utcnow()
        shown["progress"] = estimated_progress(job.model, job.submitted_at, now)
        typical = typical_seconds(job.model)
        shown["eta"] = max(now, job.submitted_at + timedelta(seconds=typical))
    elif job.status == JobStatus.SUCCEEDED:
        shown["progress"] = 100
    return shown
