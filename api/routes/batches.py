from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response

from api import batches, service
from api.deps import CurrentClient, NudgerDep, SessionDep, SettingsDep
from api.params import ERRORS
from api.schemas import BatchCreate, BatchWithJobs
from views.batches import BatchOut
from views.jobs import JobOut

router = APIRouter(tags=["batches"])

BatchId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^batch_[0-9a-f]{24}$")]


@router.post(
    "/batches",
    status_code=202,
    response_model=BatchOut,
    responses=ERRORS,
    summary="Create up to 1,000 jobs at once",
    description="Every item is a job request as for `POST /jobs`, checked before anything is "
    "stored: one bad item answers 422 naming it (e.g. `jobs[4].prompt`) and creates nothing. "
    "The whole batch fits the client's limits and budgets or none of it is made. One "
    "`batch.completed` event goes to `webhook_url` when the last job ends.",
)
async def create_batch(
    body: BatchCreate,
    response: Response,
    client: CurrentClient,
    session: SessionDep,
    nudger: NudgerDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> BatchOut:
    batch, replayed = await batches.create_batch(
        session, client, body, idempotency_key=idempotency_key, settings=settings, nudger=nudger
    )
    response.headers["Location"] = f"/batches/{batch.id}"
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return BatchOut.of(batch, await batches.counts(session, batch.id))


@router.get(
    "/batches/{batch_id}", response_model=BatchWithJobs, responses=ERRORS, summary="Get a batch"
)
async def get_batch(
    batch_id: BatchId,
    client: CurrentClient,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> BatchWithJobs:
    batch = await batches.get_batch(session, batch_id, client.id)
    jobs, next_cursor = await service.list_jobs(
        session, client_id=client.id, status=None, limit=limit, cursor=cursor, batch_id=batch.id
    )
    deliveries = await service.latest_deliveries(session, jobs)
    shown = BatchOut.of(batch, await batches.counts(session, batch.id))
    return BatchWithJobs(
        **shown.model_dump(),
        jobs=[JobOut.of(job, deliveries.get(job.id)) for job in jobs],
        next_cursor=next_cursor,
    )


@router.post(
    "/batches/{batch_id}/cancel",
    response_model=BatchOut,
    responses=ERRORS,
    summary="Cancel a batch's jobs not yet sent to Kie",
)
async def cancel_batch(
    batch_id: BatchId, client: CurrentClient, session: SessionDep, nudger: NudgerDep
) -> BatchOut:
    batch = await batches.cancel_batch(session, client.id, batch_id, nudger=nudger)
    return BatchOut.of(batch, await batches.counts(session, batch.id))
