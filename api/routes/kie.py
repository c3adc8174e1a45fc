from __future__ import annotations

import base64
import hashlib
import hmac
import json

from fastapi import APIRouter, Request

from api import service
from api.deps import NudgerDep, SessionDep, SettingsDep
from api.errors import NotFound, Unauthorized

router = APIRouter(tags=["kie"], include_in_schema=False)


def _task_id(body: bytes) -> str:
    try:
        payload = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(payload, dict):
        return ""
    data = payload.get("data")
    data = data if isinstance(data, dict) else {}
    return str(payload.get("taskId") or data.get("taskId") or data.get("task_id") or "")


def _signature_ok(key: str, request: Request, body: bytes) -> bool:
    timestamp = request.headers.get("x-webhook-timestamp", "")
    signature = request.headers.get("x-webhook-signature", "")
    expected = base64.b64encode(
        hmac.new(key.encode(), f"{_task_id(body)}.{timestamp}".encode(), hashlib.sha256).digest()
    ).decode()
    return bool(timestamp and signature) and hmac.compare_digest(expected, signature)


@router.post("/kie/callback/{token}")
async def kie_callback(
    token: str, request: Request, session: SessionDep, nudger: NudgerDep, settings: SettingsDep
) -> dict[str, bool]:
    """Kie's completion callback: a hint to check the job now. The body is never trusted."""
    if settings.kie_webhook_hmac_key is not None:
        body = await request.body()
        if not _signature_ok(settings.kie_webhook_hmac_key.get_secret_value(), request, body):
            raise Unauthorized("bad callback signature")
    if len(token) > 64 or not await service.kie_callback(session, token, nudger=nudger):
        raise NotFound("unknown callback")
    return {"received": True}
