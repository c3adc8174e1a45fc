"""The upload step: input images given as bytes go to imgbb (a day's expiry), one at a time.
Each upload is recorded with its URL and its bytes deleted in one transaction, so a crash
repeats at most the one upload in flight (uploads cost nothing and are safe to repeat)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.config import Settings
from models.job import Job, JobImage, JobStatus
from models.lifecycle import fail, transition
from upstreams.errors import ExternalError
from worker.stage import UpstreamClients, retry_or_fail


def upload(session: Session, job: Job, outbound: UpstreamClients, settings: Settings) -> bool:
    """Upload what is left; True when every image has its URL (the job may go on)."""
    rows = session.scalars(
        select(JobImage).where(JobImage.job_id == job.id).order_by(JobImage.position)
    ).all()
    images: list[dict[str, Any]] = list(job.images or [])
    if not images and rows:  # a job stored before images had roles: its one first frame
        images = [{"role": row.role, "upload": row.position} for row in rows]
    for row in rows:
        extension = row.content_type.split("/")[-1]
        try:
            url = outbound.imgbb.upload(
                row.data, name=f"{job.id}-{row.position}.{extension}", content_type=row.content_type
            )
        except ExternalError as exc:
            retry_or_fail(session, job, JobStatus.UPLOADING, exc, settings)
            return False
        images = [
            {"role": i["role"], "url": url} if i.get("upload") == row.position else i
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
    return True
