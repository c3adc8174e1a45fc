"""Retention: archived files are deleted when their job's `media_expires_at` passes
(RESULT_RETENTION, or the client's own `retention_days`). The job keeps its record and says
the files expired; the content routes answer 410 `content_expired`."""

from __future__ import annotations

import logging
import shutil
import time
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.config import Settings
from media import store
from models.job import Job
from models.lifecycle import record_event

log = logging.getLogger(__name__)


def clear_abandoned_downloads(settings: Settings, older_than: float) -> int:
    """Downloads a killed worker left half-written in a file store's `.incoming` folder (never
    visible as objects) are removed once they are older than any live download can be."""
    scratch = store.scratch_folder(settings)
    if scratch is None:
        return 0
    cutoff, removed = time.time() - older_than, 0
    for folder in scratch.iterdir():
        if folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def expire_media(session: Session, now: datetime, limit: int = 200) -> int:
    due = session.scalars(
        select(Job)
        .where(Job.media_expires_at.is_not(None), Job.media_expires_at <= now)
        .limit(limit)
    ).all()
    for job in due:
        videos: list[dict[str, Any]] = list((job.result or {}).get("videos") or [])
        for video in videos:
            if video.get("archived") and not video.get("expired"):
                for key in (video.get("key"), video.get("poster_key")):
                    if key:
                        store.delete(key)
                video["expired"] = True
        expired = session.execute(
            update(Job)
            .where(Job.id == job.id, Job.media_expires_at.is_not(None))
            .values(
                result={**(job.result or {}), "videos": videos},
                media_expires_at=None,
                media_bytes=0,
            )
        ).rowcount  # type: ignore[attr-defined]
        if expired:
            record_event(session, job.id, "media", now=now, reason="archived files expired")
        session.commit()
    if due:
        log.info("deleted the archived files of %d job(s) past their retention", len(due))
    return len(due)
