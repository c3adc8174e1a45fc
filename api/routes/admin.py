from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api import admin_service
from api.admin_service import WINDOW_PATTERN
from api.deps import AdminDep, NudgerDep, SessionDep
from api.params import ERRORS, IsoTime, JobId
from api.schemas import AdminJobDetail, AdminJobOut, AdminJobPage, DeliveryOut, EventOut, Stats
from api.service import cancel_job, erase_job
from models.job import JobStatus

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[AdminDep], responses=ERRORS)


@router.get("/jobs", response_model=AdminJobPage, summary="Every client's jobs, newest first")
async def list_jobs(
    session: SessionDep,
    status: Annotated[list[JobStatus] | None, Query()] = None,
    model: Annotated[str | None, Query(max_length=100)] = None,
    client: Annotated[str | None, Query(max_length=100, description="name or id")] = None,
    created_after: IsoTime | None = None,
    created_before: IsoTime | None = None,
    q: Annotated[
        str | None, Query(max_length=200, description="prompt text, job id or Kie task id")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> AdminJobPage:
    rows, next_cursor = await admin_service.list_jobs(
        session,
        statuses=[s.value for s in status or []],
        model=model,
        client=client,
        created_after=created_after,
        created_before=created_before,
        q=q,
        limit=limit,
        cursor=cursor,
    )
    return AdminJobPage(
        data=[AdminJobOut.of_admin(job, name) for job, name in rows], next_cursor=next_cursor
    )


@router.get("/jobs/{job_id}", response_model=AdminJobDetail, summary="A job and its history")
async def get_job(job_id: JobId, session: SessionDep) -> AdminJobDetail:
    job, client_name, events, deliveries = await admin_service.job_detail(session, job_id)
    return AdminJobDetail(
        job=AdminJobOut.of_admin(job, client_name),
        events=[EventOut.model_validate(e) for e in events],
        webhooks=[DeliveryOut.model_validate(d) for d in deliveries],
    )


@router.post("/jobs/{job_id}/retry", response_model=AdminJobOut, summary="Retry a failed job")
async def retry_job(job_id: JobId, session: SessionDep, nudger: NudgerDep) -> AdminJobOut:
    job = await admin_service.retry_job(session, job_id, nudger=nudger)
    return AdminJobOut.of_admin(job, None)


@router.post("/jobs/{job_id}/cancel", response_model=AdminJobOut, summary="Cancel any job")
async def cancel(job_id: JobId, session: SessionDep, nudger: NudgerDep) -> AdminJobOut:
    job = await cancel_job(session, None, job_id, nudger=nudger, by="an operator")
    return AdminJobOut.of_admin(job, None)


@router.delete(
    "/jobs/{job_id}", response_model=AdminJobOut, summary="Erase any finished job's data"
)
async def erase(job_id: JobId, session: SessionDep) -> AdminJobOut:
    job = await erase_job(session, None, job_id, by="an operator")
    return AdminJobOut.of_admin(job, None)


@router.post(
    "/webhooks/{delivery_id}/replay",
    response_model=DeliveryOut,
    summary="Send a webhook event again",
)
async def replay(
    delivery_id: Annotated[str, Path(pattern=r"^msg_[0-9a-f]{24}$")],
    session: SessionDep,
    nudger: NudgerDep,
) -> DeliveryOut:
    delivery = await admin_service.replay_delivery(session, delivery_id, nudger=nudger)
    return DeliveryOut.model_validate(delivery)


@router.get("/stats", response_model=Stats, summary="Counts, success rate, timings, Kie errors")
async def stats(
    session: SessionDep,
    window: Annotated[
        str,
        Query(max_length=10, pattern=WINDOW_PATTERN, description="e.g. 60m, 24h, 7d"),
    ] = "24h",
) -> Stats:
    return Stats(**await admin_service.stats(session, admin_service.parse_window(window)))
