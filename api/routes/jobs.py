from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import service
from api.deps import CurrentClient, NudgerDep, SessionDep, SettingsDep
from api.errors import UnsupportedMediaType
from api.limits import MAX_BODY_BYTES
from api.schemas import ErrorBody, JobCreate, JobOut, JobPage
from models.catalogue import InvalidRequest, get_catalogue
from models.job import JobStatus
from soraq.images import MAX_IMAGE_BYTES

router = APIRouter(tags=["jobs"])

JobId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^job_[0-9a-f]{24}$")]

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 404, 409, 413, 415, 422, 429, 503)
}
_MULTIPART_SCHEMA = {
    "type": "object",
    "required": ["prompt"],
    "properties": {
        "prompt": {"type": "string", "minLength": 1},
        **{name: {"type": "string"} for name in ("model", "aspect_ratio", "size", "image_url")},
        "duration": {"type": "integer"},
        "remove_watermark": {"type": "boolean"},
        "metadata": {"type": "string", "description": "a JSON object"},
        "image": {"type": "string", "format": "binary", "description": "jpeg/png/webp, ≤10 MB"},
    },
}


async def _read_multipart(request: Request) -> tuple[JobCreate, service.ImageBytes | None]:
    try:
        form = await request.form(max_files=1, max_fields=50, max_part_size=MAX_BODY_BYTES)
    except StarletteHTTPException as exc:  # a body that is not a multipart form at all
        raise InvalidRequest("body", f"not a valid multipart form: {exc.detail}") from None
    fields: dict[str, Any] = {}
    upload = None
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if name != "image":
                raise InvalidRequest(name, "only the `image` part may be a file")
            data = await value.read(MAX_IMAGE_BYTES + 1)
            upload = service.check_image(data, "image", None)
        elif name == "metadata":
            try:
                fields[name] = json.loads(value)
            except ValueError:
                raise InvalidRequest("metadata", "must be a JSON object") from None
        else:
            fields[name] = value
    model = fields.get("model") or get_catalogue().default_model(has_image=upload is not None)
    spec = get_catalogue().models.get(model)
    if spec is not None:  # form values are strings: type the model's own parameters
        for name, param in spec.params.items():
            if isinstance(fields.get(name), str):
                fields[name] = param.from_form(fields[name])
    return JobCreate.model_validate(fields), upload


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobOut,
    responses=ERRORS,
    summary="Create a video job",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": JobCreate.model_json_schema()},
                "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
            },
        }
    },
)
async def create_job(
    request: Request,
    response: Response,
    client: CurrentClient,
    session: SessionDep,
    nudger: NudgerDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JobOut:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        payload, upload = JobCreate.model_validate_json(await request.body()), None
    elif content_type == "multipart/form-data":
        payload, upload = await _read_multipart(request)
    else:
        raise UnsupportedMediaType("send application/json or multipart/form-data")
    job, replayed = await service.create_job(
        session,
        client,
        payload,
        upload,
        idempotency_key=idempotency_key,
        settings=settings,
        nudger=nudger,
    )
    response.headers["Location"] = f"/jobs/{job.id}"
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return JobOut.of(job)  # queue_position: GET /jobs/{id} (one query less per submission)


@router.get("/jobs/{job_id}", response_model=JobOut, responses=ERRORS, summary="Get a job")
async def get_job(job_id: JobId, client: CurrentClient, session: SessionDep) -> JobOut:
    job = await service.get_job(session, job_id, client.id)
    deliveries = await service.latest_deliveries(session, [job])
    position = await service.queue_position(session, job)
    return JobOut.of(job, deliveries.get(job.id), position)


@router.post(
    "/jobs/{job_id}/cancel", response_model=JobOut, responses=ERRORS, summary="Cancel a job"
)
async def cancel_job(
    job_id: JobId, client: CurrentClient, session: SessionDep, nudger: NudgerDep
) -> JobOut:
    job = await service.cancel_job(session, client.id, job_id, nudger=nudger, by="the client")
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
