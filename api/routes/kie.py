"""Kie's completion callbacks: a hint to look at the job now, never trusted for its content.

Hostile input first: the token is looked up before a byte of the body is read, the body is
read to 64 kB at most (413 beyond) and parsed off the event loop. With the account's
webhookHmacKey set, the signature must be fresh (±5 minutes) and sign the job's own task id;
repeated callbacks within CALLBACK_DEBOUNCE cause one upstream read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request

from api import service
from api.deps import NudgerDep, SessionDep, SettingsDep
from api.errors import APIError, NotFound, Unauthorized
from api.inbound import MAX_CALLBACK_BYTES, read_limited
from models.job import JobStatus
from upstreams.kie_http import callback_credits, callback_task_id

router = APIRouter(tags=["kie"], include_in_schema=False)

SIGNATURE_TOLERANCE = 300  # seconds, either way


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None
    except RecursionError:  # "[" × 20,000 fits in 64 kB: a hostile body, not a 500
        raise APIError("the callback body nests too deeply") from None


def _signature_ok(key: str, request: Request, task_id: str) -> bool:
    timestamp = request.headers.get("x-webhook-timestamp", "")
    signature = request.headers.get("x-webhook-signature", "")
    if not (timestamp.isdigit() and signature):
        return False
    if abs(time.time() - int(timestamp)) > SIGNATURE_TOLERANCE:
        return False  # a replay of an old callback
    expected = base64.b64encode(
        hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    ).decode()
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "surrogateescape"))


@router.post("/kie/callback/{token}")
async def kie_callback(
    token: str, request: Request, session: SessionDep, nudger: NudgerDep, settings: SettingsDep
) -> dict[str, bool]:
    if len(token) > 64:
        raise NotFound("unknown callback")
    job = await service.job_for_callback(session, token)
    if job is None:
        raise NotFound("unknown callback")
    body = await read_limited(request, MAX_CALLBACK_BYTES)
    payload = await anyio.to_thread.run_sync(_parse, body)
    task_id = callback_task_id(payload) or ""
    if settings.kie_webhook_hmac_key is not None:
        key = settings.kie_webhook_hmac_key.get_secret_value()
        if not _signature_ok(key, request, task_id):
            raise Unauthorized("bad callback signature")
        # The signed task must be this job's own (or, before its id is known, the job must be
        # waiting for one): a valid signature for another task is no reason to look at this job.
        known = job.kie_task_id
        if known is not None and task_id != known:
            raise Unauthorized("the callback names another task")
        if known is None and job.status not in (JobStatus.SUBMITTING, JobStatus.FAILED):
            raise Unauthorized("the job has no task to call back about")
    charged, remaining = callback_credits(payload)
    acted = await service.kie_callback(
        session,
        job,
        task_id,
        debounce=settings.callback_debounce,
        nudger=nudger,
        charged=charged,
        remaining=remaining,
        lease=settings.claim_lease,
    )
    return {"received": True, "checked": acted}
