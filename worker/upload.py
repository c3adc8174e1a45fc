"""The upload step: input files given as bytes go out one at a time — images to imgbb (a
day's expiry), videos and audio to Kie's File Upload API — and an earlier job's video becomes
a signed soraq link (PUBLIC_URL set) or is uploaded to Kie byte for byte. Each upload is
recorded with its URL (and its bytes deleted) in one transaction, so a crash repeats at most
the one upload in flight (uploads cost nothing and are safe to repeat)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.config import Settings
from core.files import EXTENSIONS
from media import store
from media.links import signed_path
from models.job import Job, JobImage, JobStatus
from models.lifecycle import fail, transition
from upstreams.errors import ExternalError
from worker.stage import UpstreamClients, retry_or_fail


def needs_upload(job: Job) -> bool:
    """Bytes waiting for their upload, or an earlier job's file not yet handed on."""
    return any("upload" in i or _chained_file(i) for i in job.images or [])


def _chained_file(entry: dict[str, Any]) -> bool:
    return "job" in entry and entry.get("kind") in ("video", "audio") and "url" not in entry


def upload(session: Session, job: Job, outbound: UpstreamClients, settings: Settings) -> bool:
    """Upload what is left; True when every input has its URL (the job may go on)."""
    rows = session.scalars(
        select(JobImage).where(JobImage.job_id == job.id).order_by(JobImage.position)
    ).all()
    images: list[dict[str, Any]] = list(job.images or [])
    if not images and rows:  # a job stored before images had roles: its one first frame
        images = [{"role": row.role, "upload": row.position} for row in rows]
    for row in rows:
        name = f"{job.id}-{row.position}.{EXTENSIONS.get(row.content_type, 'bin')}"
        try:
            url = _send(outbound, row.data, name, row.content_type)
        except ExternalError as exc:
            retry_or_fail(session, job, JobStatus.UPLOADING, exc, settings)
            return False
        images = [
            {**{k: v for k, v in i.items() if k != "upload"}, "url": url}
            if i.get("upload") == row.position
            else i
            for i in images
        ]
        values: dict[str, Any] = {"images": images}
        if row.role == "first_frame" and not job.image_url:
            values["image_url"] = url
        moved = transition(session, job.id, JobStatus.UPLOADING, JobStatus.UPLOADING, **values)
        if moved:
            session.execute(
                delete(JobImage).where(JobImage.job_id == job.id, JobImage.position == row.position)
            )
        session.commit()
        if not moved:
            return False  # canceled (or taken over) meanwhile
        job.images = images
        job.image_url = values.get("image_url", job.image_url)
    if any("upload" in image for image in images):
        fail(session, job.id, JobStatus.UPLOADING, "image_missing", "An uploaded image was lost.")
        session.commit()
        return False
    for position, entry in enumerate(images):
        if not _chained_file(entry):
            continue
        try:
            url = _chained_url(session, entry, outbound, settings, name=f"{job.id}-{position}")
        except FileNotFoundError:
            fail(
                session,
                job.id,
                JobStatus.UPLOADING,
                "input_missing",
                f"Job {entry['job']}'s video is no longer stored (RESULT_RETENTION).",
            )
            session.commit()
            return False
        except (ExternalError, store.StorageError) as exc:
            error = (
                exc
                if isinstance(exc, ExternalError)
                else ExternalError("storage_error", str(exc)[:300], retryable=True)
            )
            retry_or_fail(session, job, JobStatus.UPLOADING, error, settings)
            return False
        images = [{**i, "url": url} if n == position else i for n, i in enumerate(images)]
        moved = transition(session, job.id, JobStatus.UPLOADING, JobStatus.UPLOADING, images=images)
        session.commit()
        if not moved:
            return False
        job.images = images
    return True


def _send(outbound: UpstreamClients, data: bytes, name: str, content_type: str) -> str:
    if content_type.startswith("image/"):
        return outbound.imgbb.upload(data, name=name, content_type=content_type)
    if outbound.kie_upload is None:
        raise ExternalError("kie_upload_unavailable", "no Kie file upload client", retryable=True)
    return outbound.kie_upload.upload(data, name=name, content_type=content_type)


def _chained_url(
    session: Session,
    entry: dict[str, Any],
    outbound: UpstreamClients,
    settings: Settings,
    *,
    name: str,
) -> str:
    """An earlier job's archived video for this job's input: a signed link to soraq's own copy
    when soraq is reachable (PUBLIC_URL), else the same bytes uploaded to Kie."""
    source = session.get(Job, entry["job"])
    videos = ((source.result or {}).get("videos") or []) if source is not None else []
    index = int(entry.get("index") or 0)
    video = videos[index] if 0 <= index < len(videos) else None
    if video is None or not video.get("archived", True) or video.get("expired"):
        raise FileNotFoundError(entry["job"])
    if settings.public_url:
        path = signed_path(entry["job"], "content", index, settings, ttl=settings.input_link_ttl)
        return settings.public_url.rstrip("/") + path
    content_type = video.get("content_type") or "video/mp4"
    data = store.get_bytes(video["key"])
    return _send(outbound, data, f"{name}.{EXTENSIONS.get(content_type, 'mp4')}", content_type)
