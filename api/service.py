"""What the API does with jobs: validate against the catalogue, store, commit, then nudge."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import APIError, NotFound
from api.nudge import Nudger
from api.schemas import JobCreate
from models.base import utcnow
from models.catalogue import InvalidRequest, get_catalogue
from models.job import Job, JobImage
from models.job_queries import check_now_by_callback_token, job_by_id, jobs_page
from soraq.config import Settings
from soraq.images import MAX_IMAGE_BYTES, sniff_image_type

MAX_METADATA_BYTES = 8 * 1024
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(;[\w=.+-]+)*;base64,", re.IGNORECASE)


@dataclass(frozen=True)
class ImageBytes:
    data: bytes
    content_type: str


def check_image(data: bytes, field: str, declared: str | None = None) -> ImageBytes:
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidRequest(
            field, f"image is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES} (10 MB)"
        )
    content_type = sniff_image_type(data)
    if content_type is None:
        raise InvalidRequest(field, "not a JPEG, PNG or WebP image")
    if declared and declared.lower() not in (
        content_type,
        "image/jpg" if content_type == "image/jpeg" else "",
    ):
        raise InvalidRequest(field, f"declared as {declared} but the bytes are {content_type}")
    return ImageBytes(data, content_type)


def decode_base64_image(value: str) -> ImageBytes:
    declared = None
    if value.startswith("data:"):
        match = _DATA_URL.match(value)
        if match is None:
            raise InvalidRequest(
                "image_base64", "a data URL must look like data:image/png;base64,..."
            )
        declared = match.group("mime")
        value = value[match.end() :]
    # Base64 is 4/3 the size of the bytes: refuse an oversized image before decoding it.
    if len(value) > MAX_IMAGE_BYTES * 4 // 3 + 1024:
        raise InvalidRequest(
            "image_base64", f"image is larger than the limit of {MAX_IMAGE_BYTES} bytes (10 MB)"
        )
    try:
        data = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("image_base64", "not valid base64") from None
    return check_image(data, "image_base64", declared)


def check_image_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise InvalidRequest("image_url", "must be an https:// URL that Kie can fetch")
    host = parts.hostname
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if (
        host == "localhost"
        or host.endswith(".localhost")
        or (address is not None and not address.is_global)
    ):
        raise InvalidRequest(
            "image_url", "must point at a public host, not a private or local address"
        )
    return url


async def create_job(
    session: AsyncSession,
    request: JobCreate,
    upload: ImageBytes | None,
    *,
    settings: Settings,
    nudger: Nudger,
) -> Job:
    sources = [s for s in (request.image_url, request.image_base64, upload) if s]
    if len(sources) > 1:
        raise InvalidRequest("image", "give one image: image_url, image_base64 or an image file")
    image = decode_base64_image(request.image_base64) if request.image_base64 else upload
    image_url = check_image_url(request.image_url) if request.image_url else None
    has_image = bool(image or image_url)

    catalogue = get_catalogue()
    spec = catalogue.get(request.model or catalogue.default_model(has_image=has_image))
    params = spec.normalize(request.model_params(), has_image=has_image)
    prompt_limit = spec.prompt_max_length or settings.prompt_max_length
    if not request.prompt.strip():
        raise InvalidRequest("prompt", "must not be blank")
    if len(request.prompt) > prompt_limit:
        raise InvalidRequest(
            "prompt", f"is {len(request.prompt)} characters; the limit is {prompt_limit}"
        )
    if request.metadata is not None and len(json.dumps(request.metadata)) > MAX_METADATA_BYTES:
        raise InvalidRequest("metadata", f"must be at most {MAX_METADATA_BYTES} bytes as JSON")

    shown_input: dict[str, Any] = {"prompt": request.prompt, **params}
    if image is not None:
        shown_input["image"] = {"content_type": image.content_type, "bytes": len(image.data)}
    job = Job(
        model=spec.id,
        input=shown_input,
        meta=request.metadata,
        image_url=image_url,
        created_at=utcnow(),
    )
    job.updated_at = job.created_at
    job.next_check_at = job.created_at
    session.add(job)
    if image is not None:
        await session.flush()
        session.add(JobImage(job_id=job.id, content_type=image.content_type, data=image.data))
    # Commit before anything is enqueued: the row is what a lost message is recovered from.
    await session.commit()
    nudger.nudge()
    return job


async def get_job(session: AsyncSession, job_id: str) -> Job:
    job = await session.scalar(job_by_id(job_id))
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def encode_cursor(job: Job) -> str:
    raw = json.dumps([job.created_at.isoformat(), job.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, job_id = json.loads(raw)
        return datetime.fromisoformat(created_at), str(job_id)
    except (ValueError, TypeError, binascii.Error):
        raise APIError("cursor is not one this API gave out", code="invalid_cursor") from None


async def list_jobs(
    session: AsyncSession, *, status: str | None, limit: int, cursor: str | None
) -> tuple[list[Job], str | None]:
    after = decode_cursor(cursor) if cursor else None
    rows = list(
        (await session.scalars(jobs_page(status=status, limit=limit + 1, after=after))).all()
    )
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def kie_callback(session: AsyncSession, token: str, *, nudger: Nudger) -> bool:
    """Kie says a task finished. The body is not trusted: the job is checked with recordInfo."""
    found = (await session.execute(check_now_by_callback_token(token, now=utcnow()))).first()
    await session.commit()
    if found is None:
        return False
    nudger.nudge()
    return True
