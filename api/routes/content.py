"""The archived files of a job: `GET /jobs/{id}/content?index=0` (the video, with HTTP Range,
ETag = sha256, If-None-Match → 304) and `GET /jobs/{id}/poster?index=0` (a JPEG frame).

Open to the job's client (Authorization: Bearer) or to anyone holding a signed link from the
job's `result.videos` (valid for CONTENT_URL_TTL, re-signed on every read). From a file store
the bytes are served here; from S3 the answer is a redirect to a presigned URL."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from api import service
from api.deps import SessionDep, SettingsDep, current_client
from api.errors import APIError, NotFound
from api.params import ERRORS, JobId
from api.schemas import ErrorBody
from core.config import Settings
from media import links, store
from models.job import JobStatus

router = APIRouter(tags=["jobs"])


class ContentExpired(APIError):
    status_code = 410
    code = "content_expired"


class ContentDeleted(APIError):
    status_code = 410
    code = "content_deleted"


# 410: the files were deleted after their retention (content_expired) or with the job's data
# (content_deleted).
GONE: dict[int | str, dict[str, Any]] = {**ERRORS, 410: {"model": ErrorBody}}

Index = Annotated[int, Query(ge=0, le=31)]
Expires = Annotated[int | None, Query(ge=0)]
Signature = Annotated[str | None, Query(max_length=64)]


async def _video(
    request: Request,
    session: SessionDep,
    job_id: str,
    kind: str,
    index: int,
    exp: int | None,
    sig: str | None,
) -> dict[str, Any]:
    if exp is not None and sig is not None and links.valid(job_id, kind, index, exp, sig):
        job = await service.get_job(session, job_id, None)
    else:
        client = await current_client(request)
        job = await service.get_job(session, job_id, client.id)
    if job.deleted_at is not None:
        raise ContentDeleted(f"job {job_id}'s data was erased")
    videos = (job.result or {}).get("videos") or []
    if (
        job.status != JobStatus.SUCCEEDED
        or index >= len(videos)
        or not videos[index].get("archived", True)
    ):
        raise NotFound(f"job {job_id} has no archived file {index}")
    if videos[index].get("expired"):
        until = videos[index].get("expires_at")
        raise ContentExpired(f"job {job_id}'s files were deleted after their retention ({until})")
    video: dict[str, Any] = videos[index]
    return video


def _serve(request: Request, settings: Settings, key: str, etag: str, media_type: str) -> Response:
    """One stored object: 304 for a matching If-None-Match; the bytes (with Range) from a file
    store; a presigned redirect from S3."""
    headers = {"ETag": etag, "Cache-Control": "private, max-age=300"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if store.is_local(settings):
        path = store.local_path(settings, key)
        return FileResponse(path, media_type=media_type, headers=headers)
    ttl = timedelta(seconds=settings.content_url_ttl)
    return RedirectResponse(store.presigned_get(key, ttl), status_code=307)


@router.get(
    "/jobs/{job_id}/content",
    summary="A job's archived video (Range requests, ETag)",
    responses={**GONE, 206: {"description": "a byte range"}, 304: {"description": "unchanged"}},
    response_class=Response,
)
async def content(
    job_id: JobId,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    index: Index = 0,
    exp: Expires = None,
    sig: Signature = None,
) -> Response:
    video = await _video(request, session, job_id, "content", index, exp, sig)
    etag = f'"{video["sha256"]}"'
    return _serve(request, settings, video["key"], etag, video["content_type"])


@router.get(
    "/jobs/{job_id}/poster",
    summary="A JPEG frame of a job's archived video",
    responses=GONE,
    response_class=Response,
)
async def poster(
    job_id: JobId,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    index: Index = 0,
    exp: Expires = None,
    sig: Signature = None,
) -> Response:
    video = await _video(request, session, job_id, "poster", index, exp, sig)
    etag = f'"{video["sha256"]}-poster"'
    return _serve(request, settings, video["poster_key"], etag, "image/jpeg")
