"""The archive step: the upstream said success, so each result video is copied into soraq's
storage — downloaded, checked to be video, probed, a poster taken — and only then is the job
`succeeded` and its webhook sent. Every URL a client ever sees is durable.

Idempotent: objects are content-addressed (`videos/<sha256>.<ext>`) and written atomically,
so a worker killed mid-download leaves nothing visible, and the next attempt (after the
stage's lease) writes the same object again. Storage being down is waited out, never failed.
"""

from __future__ import annotations

import logging
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from core import tracing
from core.config import Settings
from core.metrics import ARCHIVE_SECONDS, ARCHIVED_BYTES
from media import store
from media.bounded import inspect
from media.probe import NotAVideo
from models.base import utcnow
from models.client import Client
from models.job import Job, JobStatus
from models.lifecycle import fail, record_event, transition
from upstreams.errors import ExternalError
from worker import policy
from worker.fetch import FetchError, fetch
from worker.stage import UpstreamClients, context

log = logging.getLogger(__name__)
_EXTENSIONS = {"video/mp4": "mp4", "video/quicktime": "mov", "video/webm": "webm"}


def lease(settings: Settings, now: datetime) -> datetime:
    """How long a worker holds a job's archiving: its whole download, plus the claim lease.
    A worker killed mid-download leaves the job to be archived again after this."""
    return now + timedelta(seconds=settings.archive_timeout + settings.claim_lease)


def claim(session: Session, job_id: str, settings: Settings, now: datetime) -> Job | None:
    """The job, when this worker may archive it now: it is archiving and nobody's lease on
    the stage is running (one compare-and-set: two deliveries of one message archive once)."""
    held = lease(settings, now)
    claimed = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.status == JobStatus.ARCHIVING,
            or_(Job.stage_lease_until.is_(None), Job.stage_lease_until <= now),
        )
        .values(stage_lease_until=held, next_check_at=held, claimed_until=None)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    session.commit()
    return session.get(Job, job_id, populate_existing=True) if claimed else None


def archive_now(
    session: Session,
    job_id: str,
    settings: Settings,
    outbound: UpstreamClients | None = None,
) -> None:
    """The archive queue's task: claim the job's archiving, then archive it."""
    now = utcnow()
    job = claim(session, job_id, settings, now)
    if job is None:
        return
    if not job.livemode and outbound is not None and outbound.test_mode is not None:
        outbound = outbound.test_mode  # a fresh link for a sandbox file comes from it
    elif outbound is not None:
        outbound = outbound.for_account(job.account)  # …and for a file of an account's task
    with tracing.job_span("soraq.job.archive", job):
        archive(session, job, settings, now, outbound)


def start(session: Session, job: Job, settings: Settings, outbound: UpstreamClients) -> None:
    """A job has reached `archiving` (or is due there again): to the archive workers when
    there are some, else archived here."""
    if outbound.archive_elsewhere is not None:
        outbound.archive_elsewhere(job.id)
    else:
        archive_now(session, job.id, settings, outbound)


def archive(
    session: Session,
    job: Job,
    settings: Settings,
    now: datetime,
    outbound: UpstreamClients | None = None,
) -> None:
    result: dict[str, Any] = dict(job.result or {})
    sources: list[str] = list(result.get("source_urls") or [])
    marked: list[str] = list(result.get("watermarked_source_urls") or [])
    wanted = [(i, url, False) for i, url in enumerate(sources)]
    if settings.archive_watermarked:
        wanted += [(i, url, True) for i, url in enumerate(marked)]
    videos: list[dict[str, Any]] = []
    for index, url, watermarked in wanted:
        try:
            video = _archive_one(job, index, url, settings, outbound)
        except FetchError as exc:
            if exc.gone or exc.refused:
                # The source expired before we got to it (a worker was down past Kie's
                # expiry), or points where soraq never fetches from (a private address): the
                # video was made and paid for, so the job still succeeds, says plainly that
                # soraq has no copy, and keeps the URL as the upstream gave it.
                if exc.refused:
                    log.warning(
                        "job %s: result %d not archived: %s",
                        job.id,
                        index,
                        exc.message,
                        extra=context(job),
                    )
                videos.append(
                    {
                        "index": index,
                        "source_url": url,
                        "archived": False,
                        "archive_error": exc.message,
                        "watermarked": watermarked,
                    }
                )
                continue
            _retry_or_fail(session, job, exc.code, exc.message, settings, retryable=exc.retryable)
            return
        except NotAVideo as exc:
            fail(
                session,
                job.id,
                JobStatus.ARCHIVING,
                "upstream_bad_output",
                f"The upstream's result is not a playable video: {exc}",
            )
            session.commit()
            return
        except (OSError, store.StorageError) as exc:  # the store is down: wait, do not fail
            _retry_or_fail(
                session,
                job,
                "storage_unavailable",
                str(exc)[:300],
                settings,
                retryable=True,
                forever=True,
            )
            return
        video["watermarked"] = watermarked
        videos.append(video)
    now = utcnow()
    client = session.get(Client, job.client_id) if job.client_id else None
    days = (client.retention_days if client else None) or settings.result_retention_days
    expires = now + timedelta(days=days)
    for video in videos:
        if video.get("archived"):
            video["expires_at"] = expires.isoformat()
    stored = sum(int(v.get("bytes") or 0) for v in videos if v.get("archived"))
    finished = transition(
        session,
        job.id,
        JobStatus.ARCHIVING,
        JobStatus.SUCCEEDED,
        now=now,
        reason=f"archived {len(videos)} file(s)",
        result={**result, "videos": videos},
        failures=0,
        waiting_reason=None,
        stage_lease_until=None,
        media_expires_at=expires if stored else None,
        media_bytes=stored,
    )
    session.commit()
    if finished:
        log.info("job %s succeeded (archived)", job.id, extra=context(job))


def _archive_one(
    job: Job, index: int, url: str, settings: Settings, outbound: UpstreamClients | None
) -> dict[str, Any]:
    started = time.monotonic()
    video = _download_and_store(job, index, url, settings, outbound)
    ARCHIVE_SECONDS.observe(time.monotonic() - started)
    ARCHIVED_BYTES.inc(int(video["bytes"]))
    return video


def _download_and_store(
    job: Job, index: int, url: str, settings: Settings, outbound: UpstreamClients | None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(
        prefix="soraq-archive-", dir=store.scratch_folder(settings)
    ) as folder:
        path = Path(folder) / "video"
        try:
            fetched = fetch(url, path, settings)
        except FetchError as exc:
            fresh = _fresh_link(url, outbound) if exc.gone else None
            if fresh is None:
                raise
            fetched = fetch(fresh, path, settings)
        # In a child process with a time and memory bound: FFmpeg reads what Kie sent.
        info, poster_jpeg = inspect(path)
        extension = _EXTENSIONS.get(info.content_type, "mp4")
        # Addressed by job and content: a repeated attempt writes the same object, and one
        # job's retention never deletes another's file.
        key = f"videos/{job.id}/{index}-{fetched.sha256}.{extension}"
        poster_key = f"posters/{job.id}/{index}-{fetched.sha256}.jpg"
        if not store.exists(poster_key):
            store.put_bytes(poster_key, poster_jpeg, "image/jpeg")
        if not store.exists(key):
            store.put_file(key, path, info.content_type)  # last: a file store moves it
    return {
        "index": index,
        "key": key,
        "poster_key": poster_key,
        "sha256": fetched.sha256,
        "bytes": fetched.size,
        "content_type": info.content_type,
        "duration_s": info.duration_s,
        "width": info.width,
        "height": info.height,
        "fps": info.fps,
        "has_audio": info.has_audio,
        "video_codec": info.video_codec,
        "audio_codec": info.audio_codec,
        "source_url": url,
        "archived": True,
    }


def _fresh_link(url: str, outbound: UpstreamClients | None) -> str | None:
    """Kie hands out a fresh 20-minute link for a file it generated; tried before giving up."""
    if outbound is None or outbound.kie_files is None:
        return None
    try:
        return outbound.kie_files.fresh_download_url(url)
    except ExternalError:
        return None


def _retry_or_fail(
    session: Session,
    job: Job,
    code: str,
    message: str,
    settings: Settings,
    *,
    retryable: bool,
    forever: bool = False,
) -> None:
    failures = job.failures + 1
    if not forever and policy.gives_up(settings, retryable=retryable, failures=failures):
        fail(session, job.id, JobStatus.ARCHIVING, code, message, failures=failures)
        session.commit()
        log.info("job %s failed archiving: %s", job.id, message, extra=context(job))
        return
    delay = policy.backoff(settings, min(failures, 10), None)
    now = utcnow()
    waited = transition(
        session,
        job.id,
        JobStatus.ARCHIVING,
        JobStatus.ARCHIVING,
        now=now,
        failures=failures,
        waiting_reason=code[:64],  # GET /jobs/{id} says why the video is not there yet
        stage_lease_until=None,
        next_check_at=now + timedelta(seconds=delay),
    )
    shown = waited and failures & (failures - 1) == 0
    if shown:
        # The 1st, 2nd, 4th, 8th … retry in the history and the log: an outage of hours stays
        # visible without a row and a line per attempt.
        record_event(
            session,
            job.id,
            "retry",
            now=now,
            reason=f"{code}: {message} — retrying in {delay:.1f} s",
            detail={"code": code, "failures": failures},
        )
    session.commit()
    if not shown:
        return
    log.warning(
        "job %s: archiving failed (%s: %s); retrying in %.1f s (failure %d)",
        job.id,
        code,
        message,
        delay,
        failures,
        extra=context(job),
    )
