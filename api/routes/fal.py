"""fal.ai's webhooks: a hint to look at the job now, never trusted for its content.

The token is looked up before a byte of the body is read; the body is read to 64 kB at most;
the signature must be fal's (api.fal_webhooks: Ed25519, fresh, over this very body) and name
this job's own request. Then, as with Kie's callbacks, the job is due now and its worker reads
the request from fal; a job whose submit answer was lost takes the request as its candidate.
"""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api import service
from api.deps import NudgerDep, SessionDep, SettingsDep
from api.errors import NotFound, Unauthorized, error_body
from api.fal_webhooks import KeysUnavailable, keys_at
from api.inbound import MAX_CALLBACK_BYTES, read_limited
from catalogue.fal import fal_routes
from models.job import JobStatus
from upstreams.fal_queue import task_id_of

router = APIRouter(tags=["fal"], include_in_schema=False)


@router.post("/fal/webhook/{token}")
async def fal_webhook(
    token: str, request: Request, session: SessionDep, nudger: NudgerDep, settings: SettingsDep
) -> Response:
    if len(token) > 64:
        raise NotFound("unknown webhook")
    job = await service.job_for_callback(session, token)
    if job is None or job.model not in fal_routes():
        raise NotFound("unknown webhook")
    body = await read_limited(request, MAX_CALLBACK_BYTES)
    headers = {name.lower(): value[:200] for name, value in request.headers.items()}
    try:
        verified = await anyio.to_thread.run_sync(
            keys_at(settings.fal_jwks_url).verify, headers, body
        )
    except KeysUnavailable as exc:
        # Neither trusted nor refused: fal retries its webhooks, and the sweep polls anyway.
        return JSONResponse(
            error_body("fal_keys_unavailable", f"fal's public keys could not be read ({exc})"),
            status_code=503,
        )
    if not verified:
        raise Unauthorized("bad webhook signature")
    request_id = headers.get("x-fal-webhook-request-id", "")
    task_id = task_id_of(fal_routes()[job.model].endpoint, request_id)
    known = job.kie_task_id
    # The signed request must be this job's own (or, before its id is known, the job must be
    # waiting for one): a valid signature for another request is no reason to look at it.
    if known is not None and known != task_id:  # (task_id is a fal task id: fal:{app}:…)
        raise Unauthorized("the webhook names another request")
    if known is None and job.status not in (JobStatus.SUBMITTING, JobStatus.FAILED):
        raise Unauthorized("the job has no request to hear about")
    acted = await service.kie_callback(
        session,
        job,
        task_id,
        debounce=settings.callback_debounce,
        nudger=nudger,
        lease=settings.claim_lease,
    )
    return JSONResponse({"received": True, "checked": acted})
