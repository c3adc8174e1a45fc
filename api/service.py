"""What the API does with jobs: validate against the catalogue, store, commit, then nudge."""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

import anyio.to_thread
from sqlalchemy import Table, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import ClientIdentity
from api.errors import APIError, JobFinished, NotFound, TooManyJobs
from api.nudge import Nudger
from api.schemas import PRIORITIES, JobCreate
from models.base import utcnow
from models.catalogue import InvalidRequest, get_catalogue
from models.event import JobEvent
from models.idempotency import IdempotencyKey
from models.job import Job, JobImage, JobStatus, new_callback_token, new_job_id
from models.job_queries import (
    active_job_count,
    check_now_by_callback_token,
    insert_job_within_limit,
    job_by_id,
    jobs_ahead,
    jobs_page,
)
from models.lifecycle import TERMINAL, transition
from models.webhook import WebhookDelivery
from soraq.config import Settings
from soraq.images import MAX_IMAGE_BYTES, sniff_image_type
from soraq.netguard import UnsafeURL, resolve

MAX_METADATA_BYTES = 8 * 1024
# Built once: on the API's hottest path, building a statement costs more than running it.
_NEW_EVENT = insert(cast(Table, JobEvent.__table__))
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


def request_fingerprint(request: JobCreate, upload: ImageBytes | None) -> str:
    """What makes two requests "the same body" for Idempotency-Key purposes."""
    digest = hashlib.sha256(request.model_dump_json(exclude_none=True).encode())
    if upload is not None:
        digest.update(hashlib.sha256(upload.data).digest())
    return digest.hexdigest()


async def check_webhook_url(url: str, settings: Settings) -> str:
    try:
        await anyio.to_thread.run_sync(
            lambda: resolve(
                url, allow_http=settings.webhook_allow_http, allowed=settings.allowed_networks
            )
        )
    except UnsafeURL as exc:
        raise InvalidRequest("webhook_url", str(exc)) from None
    return url


async def create_job(
    session: AsyncSession,
    client: ClientIdentity,
    request: JobCreate,
    upload: ImageBytes | None,
    *,
    idempotency_key: str | None,
    settings: Settings,
    nudger: Nudger,
) -> tuple[Job, bool]:
    """Store a new job, commit, then nudge the worker. Returns (job, replayed)."""
    now = utcnow()
    client_id = client.id  # read before any rollback expires the client object
    fingerprint = request_fingerprint(request, upload)
    if idempotency_key is not None:
        replay = await _idempotent_replay(session, client_id, idempotency_key, fingerprint, now)
        if replay is not None:
            return replay, True

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
    webhook_url = (
        await check_webhook_url(request.webhook_url, settings) if request.webhook_url else None
    )

    shown_input: dict[str, Any] = {"prompt": request.prompt, **params}
    if image is not None:
        shown_input["image"] = {"content_type": image.content_type, "bytes": len(image.data)}
    job = Job(
        id=new_job_id(),
        callback_token=new_callback_token(),
        client_id=client.id,
        status=JobStatus.QUEUED,
        model=spec.id,
        input=shown_input,
        meta=request.metadata,
        image_url=image_url,
        webhook_url=webhook_url,
        priority=PRIORITIES[request.priority],
        attempts=0,
        created_at=now,
        updated_at=now,
        next_check_at=now,
    )
    # Core statements, not the ORM's unit of work: this is the hottest path in the API.
    inserted = await session.scalar(*insert_job_within_limit(job, client.max_active_jobs))
    if inserted is None:
        active = await session.scalar(active_job_count(client.id, client.max_active_jobs))
        raise TooManyJobs(
            f"{active} of your jobs are unfinished, the most allowed at once is "
            f"{client.max_active_jobs}; retry when some finish",
            headers={"Retry-After": "30"},
        )
    await session.execute(
        _NEW_EVENT,
        {
            "job_id": job.id,
            "at": now,
            "kind": "transition",
            "to_status": JobStatus.QUEUED,
            "reason": f"created by client {client.name}",
        },
    )
    if image is not None:
        session.add(JobImage(job_id=job.id, content_type=image.content_type, data=image.data))
    if idempotency_key is not None:
        # An expired key may still hold the row: it no longer counts, so it makes way.
        await session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.client_id == client.id,
                IdempotencyKey.key == idempotency_key,
                IdempotencyKey.expires_at <= now,
            )
        )
        session.add(
            IdempotencyKey(
                client_id=client.id,
                key=idempotency_key,
                request_hash=fingerprint,
                job_id=job.id,
                status_code=202,
                created_at=now,
                expires_at=now + timedelta(seconds=settings.idempotency_ttl),
            )
        )
    # Commit before anything is enqueued: the row is what a lost message is recovered from.
    try:
        await session.commit()
    except IntegrityError:
        # A concurrent request with the same key won the insert: answer with its job.
        await session.rollback()
        if idempotency_key is None:
            raise
        replay = await _idempotent_replay(session, client_id, idempotency_key, fingerprint, now)
        if replay is None:
            raise
        return replay, True
    nudger.nudge()
    return job, False


async def _idempotent_replay(
    session: AsyncSession, client_id: str, key: str, fingerprint: str, now: datetime
) -> Job | None:
    record = await session.get(IdempotencyKey, (client_id, key), populate_existing=True)
    if record is None or record.expires_at <= now:
        return None
    if record.request_hash != fingerprint:
        raise APIError(
            "this Idempotency-Key was used with a different request body",
            code="idempotency_key_reused",
            status_code=422,
        )
    return await get_job(session, record.job_id, client_id)


async def cancel_job(
    session: AsyncSession, client_id: str | None, job_id: str, *, nudger: Nudger, by: str
) -> Job:
    """Cancel now: a job not yet at Kie is never submitted; one at Kie is no longer watched, and
    a late result cannot bring it back (every worker update is a compare-and-set).
    `client_id` None is an operator, who may cancel any job."""
    for _ in range(5):
        job = await get_job(session, job_id, client_id)
        status = JobStatus(job.status)
        if status == JobStatus.CANCELED:
            return job
        if status in TERMINAL:
            raise JobFinished(f"job {job_id} already {status.value}")
        moved = await session.run_sync(
            transition, job_id, status, JobStatus.CANCELED, reason=f"canceled by {by}"
        )
        await session.commit()
        if moved:
            nudger.nudge()  # its completion webhook, if any, is due now
            return await get_job(session, job_id, client_id)
    raise APIError("the job kept changing; try again", code="conflict", status_code=409)


async def get_job(session: AsyncSession, job_id: str, client_id: str | None) -> Job:
    job = await session.scalar(
        job_by_id(job_id, client_id).execution_options(populate_existing=True)
    )
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
        raise InvalidRequest("cursor", "is not a cursor this API gave out") from None


async def queue_position(session: AsyncSession, job: Job) -> int | None:
    if job.status != JobStatus.QUEUED:
        return None
    return 1 + int(await session.scalar(jobs_ahead(job)) or 0)


async def latest_deliveries(session: AsyncSession, jobs: list[Job]) -> dict[str, WebhookDelivery]:
    with_webhook = [job.id for job in jobs if job.webhook_url]
    if not with_webhook:
        return {}
    rows = await session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.job_id.in_(with_webhook))
        .order_by(WebhookDelivery.created_at)
    )
    return {delivery.job_id: delivery for delivery in rows}  # the newest one wins


async def list_jobs(
    session: AsyncSession,
    *,
    client_id: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Job], str | None]:
    after = decode_cursor(cursor) if cursor else None
    page = jobs_page(client_id=client_id, status=status, limit=limit + 1, after=after)
    rows = list((await session.scalars(page)).all())
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
