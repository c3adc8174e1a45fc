"""What the API does with jobs: validate against the catalogue, store, commit, then nudge."""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

import anyio.to_thread
from sqlalchemy import Table, delete, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import ClientIdentity
from api.budgets import budget_check, refuse_if_over_budget
from api.errors import APIError, JobFinished, NotFound, RateLimited, TooManyJobs
from api.nudge import Nudger
from api.schemas import JobCreate
from catalogue import ModelSpec, get_catalogue
from core.config import Rate, Settings, parse_rate
from core.errors import InvalidRequest
from core.images import MAX_IMAGE_BYTES, sniff_image_type
from core.netguard import UnsafeURL, resolve
from models.account_queries import record_balance, record_charge
from models.base import utcnow
from models.event import JobEvent
from models.idempotency import IdempotencyKey
from models.job import Job, JobImage, JobStatus, new_callback_token, new_job_id
from models.job_queries import (
    active_job_count,
    check_now_by_callback,
    insert_job_within_limit,
    job_by_id,
    jobs_ahead,
    jobs_page,
)
from models.lifecycle import NEW_DELIVERIES, TERMINAL, transition
from models.scheduler import SchedulerState
from models.spend import add_spend, day_of, sync_spend
from models.webhook import WebhookDelivery
from views.jobs import PRIORITIES

MAX_METADATA_BYTES = 8 * 1024
MAX_METADATA_DEPTH = 8
# Control characters other than tab and newline: never meaningful in a prompt or a URL, and
# a NUL is refused by PostgreSQL's text search (a 503 a client would retry forever).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Built once: on the API's hottest path, building a statement costs more than running it.
_NEW_EVENT = insert(cast(Table, JobEvent.__table__))
_CLIENT_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:client_id, 0))")
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(;[\w=.+-]+)*;base64,", re.IGNORECASE)


@dataclass(frozen=True)
class ImageBytes:
    data: bytes
    content_type: str


@dataclass(frozen=True)
class ImageSource:
    """One input image as the request gave it: a URL, or bytes to upload."""

    role: str
    field: str  # the request field that carried it, for errors a person can act on
    url: str | None = None
    upload: ImageBytes | None = None


MAX_IMAGES = 12


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


def decode_base64_image(value: str, field: str = "image_base64") -> ImageBytes:
    declared = None
    if value.startswith("data:"):
        match = _DATA_URL.match(value)
        if match is None:
            raise InvalidRequest(field, "a data URL must look like data:image/png;base64,...")
        declared = match.group("mime")
        value = value[match.end() :]
    # Base64 is 4/3 the size of the bytes: refuse an oversized image before decoding it.
    if len(value) > MAX_IMAGE_BYTES * 4 // 3 + 1024:
        raise InvalidRequest(
            field, f"image is larger than the limit of {MAX_IMAGE_BYTES} bytes (10 MB)"
        )
    try:
        data = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(field, "not valid base64") from None
    return check_image(data, field, declared)


def check_image_url(url: str, field: str = "image_url") -> str:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise InvalidRequest(field, "must be an https:// URL that Kie can fetch")
    host = parts.hostname.rstrip(".")  # "localhost." is localhost
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if (
        host == "localhost"
        or host.endswith(".localhost")
        or (address is not None and not address.is_global)
    ):
        raise InvalidRequest(field, "must point at a public host, not a private or local address")
    return url


def collect_images(
    request: JobCreate, uploads: list[tuple[str, str, ImageBytes]]
) -> list[ImageSource]:
    """Every image of a request, in order: the first frame (image_url, image_base64 or the
    multipart `image` part), then `images`, then multipart `image_<role>` parts."""
    sources: list[ImageSource] = []
    first_parts = [(r, name, img) for r, name, img in uploads if name == "image"]
    given = [request.image_url, request.image_base64, *first_parts]
    if sum(1 for g in given if g) > 1:
        raise InvalidRequest("image", "give one first image: image_url, image_base64 or a file")
    if request.image_url:
        sources.append(ImageSource("first_frame", "image_url", url=request.image_url))
    if request.image_base64:
        upload = decode_base64_image(request.image_base64)
        sources.append(ImageSource("first_frame", "image_base64", upload=upload))
    sources += [ImageSource(r, name, upload=img) for r, name, img in first_parts]
    for n, image in enumerate(request.images or []):
        field = f"images.{n}"
        if (image.url is None) == (image.base64 is None):
            raise InvalidRequest(field, "give exactly one of url or base64")
        if image.url is not None:
            sources.append(ImageSource(image.role, f"{field}.url", url=image.url))
        else:
            assert image.base64 is not None
            upload = decode_base64_image(image.base64, f"{field}.base64")
            sources.append(ImageSource(image.role, f"{field}.base64", upload=upload))
    sources += [
        ImageSource(role, name, upload=img) for role, name, img in uploads if name != "image"
    ]
    if len(sources) > MAX_IMAGES:
        raise InvalidRequest("images", f"at most {MAX_IMAGES} images per job")
    return sources


def check_images_for(spec: ModelSpec, sources: list[ImageSource]) -> None:
    spec.check_images(source.role for source in sources)
    for source in sources:
        if source.url is not None:
            check_image_url(source.url, source.field)
        elif source.upload is not None:
            upload = source.upload
            if upload.content_type not in spec.image_types:
                allowed = ", ".join(t.split("/")[1] for t in spec.image_types)
                raise InvalidRequest(
                    source.field,
                    f"model {spec.id} takes {allowed} images; this one is {upload.content_type}",
                )
            if len(upload.data) > spec.image_max_bytes:
                raise InvalidRequest(
                    source.field,
                    f"image is {len(upload.data)} bytes; model {spec.id} takes at most "
                    f"{spec.image_max_bytes}",
                )


def check_text(request: JobCreate) -> None:
    """Every text field of a request, the model's own and the metadata's included."""
    fields: list[tuple[str, object]] = [
        ("prompt", request.prompt),
        ("model", request.model),
        ("image_url", request.image_url),
        ("webhook_url", request.webhook_url),
        *((f"images.{n}.url", image.url) for n, image in enumerate(request.images or [])),
        *((name, value) for name, value in (request.model_extra or {}).items()),
        ("metadata", request.metadata),
    ]
    for name, value in fields:
        if _has_control(value):
            raise InvalidRequest(
                name, "must not contain control characters (other than tab and newline)"
            )
    if request.metadata is not None:
        if _depth(request.metadata) > MAX_METADATA_DEPTH:
            raise InvalidRequest("metadata", f"must nest at most {MAX_METADATA_DEPTH} levels")
        if len(json.dumps(request.metadata)) > MAX_METADATA_BYTES:
            raise InvalidRequest("metadata", f"must be at most {MAX_METADATA_BYTES} bytes as JSON")


def _has_control(value: object) -> bool:
    """Walks nested values without recursion: a deep structure cannot exhaust the stack."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _CONTROL.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _depth(value: object) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def request_fingerprint(request: JobCreate, uploads: list[tuple[str, str, ImageBytes]]) -> str:
    """What makes two requests "the same body" for Idempotency-Key purposes."""
    digest = hashlib.sha256(request.model_dump_json(exclude_none=True).encode())
    for role, name, upload in uploads:
        digest.update(f"{role}:{name}:".encode())
        digest.update(hashlib.sha256(upload.data).digest())
    return digest.hexdigest()


async def check_public_url(url: str, field: str, settings: Settings) -> None:
    """An input image's URL must resolve to public addresses only — the same guard as
    webhooks: `https://2130706433/`, `https://0x7f.1/` and `localhost.` are loopback."""
    try:
        await anyio.to_thread.run_sync(
            lambda: resolve(url, allow_http=False, allowed=settings.allowed_networks)
        )
    except UnsafeURL as exc:
        raise InvalidRequest(field, str(exc)) from None


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
    uploads: list[tuple[str, str, ImageBytes]],
    *,
    idempotency_key: str | None,
    settings: Settings,
    nudger: Nudger,
) -> tuple[Job, bool]:
    """Store a new job, commit, then nudge the worker. Returns (job, replayed)."""
    now = utcnow()
    client_id = client.id
    fingerprint = request_fingerprint(request, uploads)
    if idempotency_key is not None:
        replay = await _idempotent_replay(session, client_id, idempotency_key, fingerprint, now)
        if replay is not None:
            return replay, True

    check_text(request)
    sources = collect_images(request, uploads)
    catalogue = get_catalogue()
    spec = catalogue.get(request.model or catalogue.default_model(has_image=bool(sources)))
    params = spec.validate(request.model_fields_given())
    if len(request.prompt) > settings.prompt_max_length:  # the operator's cap over every model
        raise InvalidRequest(
            "prompt",
            f"is {len(request.prompt)} characters; this service takes at most "
            f"{settings.prompt_max_length}",
        )
    check_images_for(spec, sources)
    estimate = spec.estimate(params)
    for source in sources:
        if source.url is not None:
            await check_public_url(source.url, source.field, settings)
    webhook_url = (
        await check_webhook_url(request.webhook_url, settings) if request.webhook_url else None
    )

    images: list[dict[str, Any]] = []
    shown_images: list[dict[str, Any]] = []
    to_upload: list[tuple[int, ImageSource]] = []
    for position, source in enumerate(sources):
        if source.url is not None:
            images.append({"role": source.role, "url": source.url})
            shown_images.append({"role": source.role, "url": source.url})
        else:
            assert source.upload is not None
            images.append({"role": source.role, "upload": position})
            shown_images.append(
                {
                    "role": source.role,
                    "content_type": source.upload.content_type,
                    "bytes": len(source.upload.data),
                }
            )
            to_upload.append((position, source))
    shown_input: dict[str, Any] = {"prompt": request.prompt, **params}
    if shown_images:
        shown_input["images"] = shown_images
    first_url = next((i["url"] for i in images if i["role"] == "first_frame" and "url" in i), None)
    job = Job(
        id=new_job_id(),
        callback_token=new_callback_token(),
        client_id=client.id,
        status=JobStatus.QUEUED,
        model=spec.id,
        input=shown_input,
        meta=request.metadata,
        image_url=first_url,
        images=images or None,
        webhook_url=webhook_url,
        priority=PRIORITIES[request.priority],
        credits_estimated=estimate,
        credits_reserved=estimate,  # counts against the client's budgets until it settles
        credits_counted=estimate,  # and is in its spend counter (models.spend)
        failures=0,
        created_at=now,
        updated_at=now,
        next_check_at=now,
    )
    rate = parse_rate(client.create_rate or settings.client_create_rate)
    since = now - timedelta(seconds=rate.window)
    if session.get_bind().dialect.name == "postgresql":
        # Count and insert one request at a time per client: under READ COMMITTED two
        # concurrent inserts would each count without the other and both pass the limit.
        await session.execute(_CLIENT_LOCK, {"client_id": client.id})
    # Core statements, not the ORM's unit of work: this is the hottest path in the API.
    inserted = await session.scalar(
        *insert_job_within_limit(
            job, client.max_active_jobs, rate.count, since, budget_check(client, now)
        )
    )
    if inserted is None:
        await _refuse_over_limit(session, client, rate, since, now, estimate)
    if estimate and (client.daily_credits is not None or client.monthly_credits is not None):
        # The reservation goes into the client's spend counter in this same transaction.
        dialect = session.get_bind().dialect.name
        await session.execute(add_spend(dialect, client.id, day_of(now), estimate))
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
    for position, source in to_upload:
        assert source.upload is not None
        session.add(
            JobImage(
                job_id=job.id,
                position=position,
                role=source.role,
                content_type=source.upload.content_type,
                data=source.upload.data,
            )
        )
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


async def _refuse_over_limit(
    session: AsyncSession,
    client: ClientIdentity,
    rate: Rate,
    since: datetime,
    now: datetime,
    estimate: float,
) -> None:
    active = await session.scalar(active_job_count(client.id, client.max_active_jobs))
    if (active or 0) >= client.max_active_jobs:
        raise TooManyJobs(
            f"{active} of your jobs are unfinished, the most allowed at once is "
            f"{client.max_active_jobs}; retry when some finish",
            headers={"Retry-After": "30"},
        )
    await refuse_if_over_budget(session, client, estimate, now)
    oldest = await session.scalar(
        select(func.min(Job.created_at)).where(Job.client_id == client.id, Job.created_at > since)
    )
    wait = max(1, math.ceil(rate.window - (now - (oldest or now)).total_seconds()))
    raise RateLimited(
        f"at most {rate.count} new jobs per {rate.window:g} s for this client; retry in {wait} s",
        headers={"Retry-After": str(wait)},
    )


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
        # The worker publishes new deliveries after its commits; here the nudge's sweep
        # claims the webhook (due now), so the list transition() kept is dropped.
        session.sync_session.info.pop(NEW_DELIVERIES, None)
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


async def account_waiting_reason(session: AsyncSession, job: Job) -> str | None:
    """While the account is refused, every queued job waits for the same reason."""
    if job.status != JobStatus.QUEUED:
        return None
    state = await session.get(SchedulerState, "kie", populate_existing=True)
    return state.account_reason if state is not None else None


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


async def job_for_callback(session: AsyncSession, token: str) -> Job | None:
    return await session.scalar(
        select(Job).where(Job.callback_token == token).execution_options(populate_existing=True)
    )


async def kie_callback(
    session: AsyncSession,
    job: Job,
    task_id: str,
    *,
    debounce: float,
    nudger: Nudger,
    charged: float | None = None,
    remaining: float | None = None,
) -> bool:
    """Kie says a task finished: make the job due now (its worker re-reads the task), at most
    once per `debounce` seconds. A job with no task id of its own (its createTask answer was
    lost) keeps the named task id as a candidate the worker will check before adopting it.

    The callback's consumeCredits settles the job's charge (its own task only) and its
    remainedCredits is the account's balance as of now — committed before the worker is
    nudged, so the completion webhook already carries Kie's figure."""
    now = utcnow()
    found = (
        await session.execute(
            check_now_by_callback(job.id, task_id or None, now=now, debounce=debounce)
        )
    ).first()
    if task_id and charged is not None:
        await session.execute(record_charge(job.id, task_id, charged))
        for statement in sync_spend(session.get_bind().dialect.name, job.id):
            await session.execute(statement)
    if task_id and remaining is not None:
        await session.execute(record_balance(remaining, now))
    await session.commit()
    if found is None:
        return False
    nudger.nudge()
    return True
