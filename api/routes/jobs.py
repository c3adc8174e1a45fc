from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sse_starlette import EventSourceResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import service, streams, validation
from api.auth import ClientIdentity
from api.deps import (
    CurrentClient,
    EventsDep,
    NudgerDep,
    SessionDep,
    SessionmakerDep,
)
from api.errors import UnsupportedMediaType
from api.events import EventHub, Hold
from api.limits import MAX_BODY_BYTES
from api.params import ERRORS, JobId
from api.schemas import JobCreate, JobPage
from catalogue import ROLES, get_catalogue
from catalogue.accounts import accounts
from core.config import get_settings
from core.errors import InvalidRequest
from core.images import MAX_IMAGE_BYTES
from models.job import Job, JobStatus
from models.lifecycle import AT_KIE, TERMINAL
from views import estimates
from views.jobs import JobOut

router = APIRouter(tags=["jobs"])

_PREFER = (
    "`wait=N` (RFC 7240, N ≤ 60, `wait` alone is 60): hold the answer up to N seconds; a job "
    "that ends in time comes back finished with 200, else 202 as without it."
)
_STREAM = (
    "Server-sent events: `status` (a status change), `progress` (each 10 %), `completed` (the "
    "job ended; `data.job` is the finished job). Each has an `id:`; reconnect with "
    "`Last-Event-ID` to resume. A comment line every 15 s keeps idle connections open."
)

_IMAGE_PART = {"type": "string", "format": "binary", "description": "jpeg/png/webp, ≤10 MB"}
_MULTIPART_SCHEMA = {
    "type": "object",
    "description": "The JSON fields as form fields (the model's own typed by its schema), "
    "`image` as the first frame, `image_first_frame`, `image_last_frame`, `image_reference` "
    "parts for more images by role, and `input_<role>` parts for any input role (a video "
    "as `input_video`, an audio file as `input_audio`, …).",
    "properties": {
        "prompt": {"type": "string", "minLength": 1},
        **{name: {"type": "string"} for name in ("model", "image_url", "webhook_url")},
        "metadata": {"type": "string", "description": "a JSON object"},
        "image": _IMAGE_PART,
        **{f"image_{role}": _IMAGE_PART for role in ROLES},
    },
    "patternProperties": {
        "^input_[a-z][a-z0-9_]{0,31}$": {
            "type": "string",
            "format": "binary",
            "description": "an input file by role (its kind is read from its bytes)",
        }
    },
}
_IMAGE_PARTS = {"image": "first_frame", **{f"image_{role}": role for role in ROLES}}
_INPUT_PART = re.compile(r"^input_([a-z][a-z0-9_]{0,31})$")


async def _read_multipart(
    request: Request,
) -> tuple[JobCreate, list[tuple[str, str, validation.ImageBytes]]]:
    try:
        form = await request.form(
            max_files=validation.MAX_INPUTS, max_fields=50, max_part_size=MAX_BODY_BYTES
        )
    except StarletteHTTPException as exc:  # a body that is not a multipart form at all
        raise InvalidRequest("body", f"not a valid multipart form: {exc.detail}") from None
    fields: dict[str, Any] = {}
    uploads: list[tuple[str, str, validation.ImageBytes]] = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            role = _IMAGE_PARTS.get(name)
            if role is not None:
                data = await value.read(MAX_IMAGE_BYTES + 1)
                uploads.append((role, name, validation.check_image(data, name, None)))
                continue
            matched = _INPUT_PART.match(name)
            if matched is None:
                parts = ", ".join(_IMAGE_PARTS)
                raise InvalidRequest(name, f"only these parts may be files: {parts}, input_<role>")
            data = await value.read(validation.MAX_INPUT_BYTES + 1)
            if len(data) > validation.MAX_INPUT_BYTES:
                raise InvalidRequest(
                    name, f"the file is larger than {validation.MAX_INPUT_BYTES} bytes"
                )
            uploads.append((matched.group(1), name, validation.sniff_file(data, name)))
        elif name == "metadata":
            # The same limits as a JSON body's metadata; a deep nest is refused, not a 500.
            if len(value) > validation.MAX_METADATA_BYTES:
                raise InvalidRequest("metadata", "must be at most 8192 bytes as JSON")
            try:
                fields[name] = json.loads(value)
            except (ValueError, RecursionError):
                raise InvalidRequest("metadata", "must be a JSON object") from None
        else:
            fields[name] = value
    catalogue = get_catalogue()
    spec = catalogue.models.get(
        fields.get("model") or catalogue.default_model(has_image=bool(uploads))
    )
    if spec is not None:  # form values are strings: type the model's own parameters
        for name, param in spec.params.items():
            if isinstance(fields.get(name), str):
                fields[name] = param.from_form(fields[name])
    return JobCreate.model_validate(fields), uploads


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobOut,
    responses={
        200: {"model": JobOut, "description": "The job ended within `Prefer: wait`."},
        **ERRORS,
    },
    summary="Create a video job",
    description=f"`Prefer: {_PREFER[1:]}",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                # The component FastAPI lists for POST /batches' items (with ImageIn beside it):
                # an inlined schema's own $defs would not resolve inside the OpenAPI document.
                "application/json": {"schema": {"$ref": "#/components/schemas/JobCreate"}},
                "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
            },
        }
    },
)
async def create_job(
    request: Request,
    response: Response,
    client: CurrentClient,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
    # Out of the schema (the description says it): fuzzers would hold every request 60 s.
    prefer: Annotated[str | None, Header(max_length=200, include_in_schema=False)] = None,
) -> JobOut:
    # The API's hottest route takes its session and the app's parts itself rather than as
    # dependencies: FastAPI's resolution of each (a yielding one most) costs more CPU than
    # most of what the route does.
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        uploads: list[tuple[str, str, validation.ImageBytes]] = []
        payload = JobCreate.model_validate_json(await request.body())
    elif content_type == "multipart/form-data":
        payload, uploads = await _read_multipart(request)
    else:
        raise UnsupportedMediaType("send application/json or multipart/form-data")
    state = request.app.state
    sessionmaker: async_sessionmaker[AsyncSession] = state.sessionmaker
    hub: EventHub = state.events
    async with sessionmaker() as session:
        job, replayed = await service.create_job(
            session,
            client,
            payload,
            uploads,
            idempotency_key=idempotency_key,
            settings=get_settings(),
            nudger=state.nudger,
        )
        response.headers["Location"] = f"/jobs/{job.id}"
        if replayed:
            response.headers["Idempotent-Replayed"] = "true"
        else:
            hub.publish(job.id, client.id)  # this process's event streams see it at once
        wait = streams.parse_prefer_wait(prefer)
        if wait is not None:
            return await _after_waiting(session, sessionmaker, hub, response, job.id, client, wait)
        return JobOut.of(job)  # queue_position: GET /jobs/{id} (one query less per submission)


async def _after_waiting(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    hub: EventHub,
    response: Response,
    job_id: str,
    client: ClientIdentity,
    seconds: int,
) -> JobOut:
    """`Prefer: wait`: hold the answer until the job ends or `seconds` pass, with no
    connection held meanwhile; 200 if it ended, else 202 (the job goes on either way)."""
    await session.close()
    with hub.hold(client.id, client.key_hash) as hold:
        ended = await streams.wait_for_end(hub, sessionmaker, job_id, seconds, hold)
    response.headers["Preference-Applied"] = f"wait={seconds}"
    if ended is not None:
        response.status_code = 200
        return ended
    response.status_code = 202
    return await _job_view(session, await service.get_job(session, job_id, client.id))


@router.get(
    "/jobs/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": _STREAM}, **ERRORS},
    summary="Stream every event of your jobs",
)
async def client_events(
    client: CurrentClient,
    session: SessionDep,
    hub: EventsDep,
    sessionmaker: SessionmakerDep,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> EventSourceResponse:
    await session.close()
    hold = hub.hold(client.id, client.key_hash)
    after = streams.parse_last_event_id(last_event_id)
    return _sse(hold, streams.client_stream(hub, sessionmaker, client.id, after, hold))


@router.get(
    "/jobs/{job_id}/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": _STREAM}, **ERRORS},
    summary="Stream a job's events",
)
async def job_events(
    job_id: JobId,
    client: CurrentClient,
    session: SessionDep,
    hub: EventsDep,
    sessionmaker: SessionmakerDep,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> EventSourceResponse:
    await service.get_job(session, job_id, client.id)  # 404 unless it is the client's own
    await session.close()
    hold = hub.hold(client.id, client.key_hash)
    return _sse(
        hold,
        streams.job_stream(
            hub, sessionmaker, job_id, streams.parse_last_event_id(last_event_id) or 0, hold
        ),
    )


def _sse(hold: Hold, stream: AsyncIterator[dict[str, Any]]) -> EventSourceResponse:
    """The stream as server-sent events with heartbeats; the client's place is freed when it
    ends (or the client goes away)."""
    return EventSourceResponse(
        streams.released(hold, stream), ping=streams.HEARTBEAT, send_timeout=30
    )


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    responses=ERRORS,
    summary="Get a job",
    description=f"`Prefer: {_PREFER[1:]}",
)
async def get_job(
    job_id: JobId,
    response: Response,
    client: CurrentClient,
    session: SessionDep,
    hub: EventsDep,
    sessionmaker: SessionmakerDep,
    # Out of the schema (the description says it): fuzzers would hold every request 60 s.
    prefer: Annotated[str | None, Header(max_length=200, include_in_schema=False)] = None,
) -> JobOut:
    job = await service.get_job(session, job_id, client.id)
    wait = streams.parse_prefer_wait(prefer)
    if wait is not None and JobStatus(job.status) not in TERMINAL:
        return await _after_waiting(session, sessionmaker, hub, response, job.id, client, wait)
    return await _job_view(session, job)


async def _job_view(session: AsyncSession, job: Job) -> JobOut:
    deliveries = await service.latest_deliveries(session, [job])
    position = await service.queue_position(session, job)
    reason = await service.account_waiting_reason(session, job, accounts(get_settings()))
    if job.status in AT_KIE:
        await estimates.refresh(session, job.model)
    return JobOut.of(job, deliveries.get(job.id), position, reason)


@router.post(
    "/jobs/{job_id}/cancel", response_model=JobOut, responses=ERRORS, summary="Cancel a job"
)
async def cancel_job(
    job_id: JobId, client: CurrentClient, session: SessionDep, nudger: NudgerDep
) -> JobOut:
    job = await service.cancel_job(session, client.id, job_id, nudger=nudger, by="the client")
    return JobOut.of(job)


@router.delete(
    "/jobs/{job_id}",
    response_model=JobOut,
    responses=ERRORS,
    summary="Erase a finished job's data",
    description="Its prompt, inputs, metadata, uploaded files and archived videos are erased; "
    "the job stays as a tombstone (`deleted: true`: status, times and usage) so usage and "
    "budgets still add up, and its content links stop working at once (410). A job that has "
    "not ended is refused with 409 `job_not_finished`: cancel it first. Deleting it again "
    "answers the same.",
)
async def delete_job(job_id: JobId, client: CurrentClient, session: SessionDep) -> JobOut:
    job = await service.erase_job(session, client.id, job_id, by="the client")
    return JobOut.of(job)


@router.get("/jobs", response_model=JobPage, responses=ERRORS, summary="List jobs, newest first")
async def list_jobs(
    client: CurrentClient,
    session: SessionDep,
    status: JobStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> JobPage:
    jobs, next_cursor = await service.list_jobs(
        session, client_id=client.id, status=status, limit=limit, cursor=cursor
    )
    deliveries = await service.latest_deliveries(session, jobs)
    return JobPage(
        data=[JobOut.of(job, deliveries.get(job.id)) for job in jobs], next_cursor=next_cursor
    )
