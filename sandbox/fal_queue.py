"""fal.ai's queue API, under `/fal` (a fal account's base_url is `http://sandbox/fal`):

- `POST /fal/{endpoint_id}[?fal_webhook=URL]` with `Authorization: Key …` → `request_id`;
- `GET /fal/{owner}/{app}/requests/{id}/status` → IN_QUEUE / IN_PROGRESS / COMPLETED (the app
  path only, as fal's own status URLs);
- `GET /fal/{owner}/{app}/requests/{id}` → `{"video": {"url", …}}`, or 422 `detail` when the
  generation failed, 400 while it runs;
- `PUT /fal/{owner}/{app}/requests/{id}/cancel`;
- webhooks signed as fal signs them: Ed25519 over `request_id \\n user_id \\n timestamp \\n
  sha256(body)`, hex, in `X-Fal-Webhook-*` headers, with the public key at
  `GET /fal/.well-known/jwks.json` (fal's is at rest.alpha.fal.ai);
- errors as fal answers them: HTTP statuses with `{"detail": …}`. The same fault keywords as
  Kie's ([kie:fail], [kie:slow=N], [kie:500x2], [kie:429], [kie:nocallback], [kie:lostreply],
  …), the account
  switch (`account_code` 401 or 402: a locked user) and the schema (sandbox/fal_schemas.toml).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
import tomllib
import uuid
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from jsonschema import Draft202012Validator

from core.config import parse_rate
from sandbox.faults import parse
from sandbox.state import Sandbox
from sandbox.tasks import Task

SCHEMAS = Path(__file__).with_name("fal_schemas.toml")
USER_ID = "sandbox-user"
LOCKED = (
    "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing."
)
FLAGGED = (
    "The content could not be processed because it contained material flagged by a content checker."
)


@cache
def endpoints() -> dict[str, dict[str, Any]]:
    """fal's schema per endpoint. An entry `like` another is that one's schema with its own
    `properties` added, `drop`ped ones removed and its own `required` (fal's tiers and
    text/image endpoints of one model differ in a field or two)."""
    raw = dict(tomllib.loads(SCHEMAS.read_text())["endpoints"])
    done: dict[str, dict[str, Any]] = {}

    def resolve(name: str) -> dict[str, Any]:
        if name not in done:
            entry = dict(raw[name])
            base = entry.pop("like", None)
            if base is not None:
                parent = resolve(base)
                dropped = set(entry.pop("drop", []))
                properties = {
                    k: v for k, v in parent["properties"].items() if k not in dropped
                } | dict(entry.pop("properties", {}))
                entry = {**parent, **entry, "properties": properties}
            done[name] = entry
        return done[name]

    return {name: resolve(name) for name in raw}


@cache
def signing_key() -> Ed25519PrivateKey:
    """The sandbox's webhook key: one per process (soraq reads it from the JWKS route)."""
    return Ed25519PrivateKey.generate()


def jwks() -> dict[str, Any]:
    raw = signing_key().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "sandbox"}]}


def sign(request_id: str, timestamp: str, body: bytes) -> str:
    message = "\n".join([request_id, USER_ID, timestamp, hashlib.sha256(body).hexdigest()])
    return signing_key().sign(message.encode()).hex()


def _detail(status: int, detail: Any, **headers: str) -> Response:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers or None)


def _refusal(schema: dict[str, Any], body: dict[str, Any]) -> list[dict[str, Any]]:
    errors = sorted(Draft202012Validator(schema).iter_errors(body), key=lambda e: list(e.path))
    return [
        {"loc": ["body", *map(str, error.path)], "msg": error.message, "type": "value_error"}
        for error in errors[:5]
    ]


def _app(endpoint: str) -> str:
    return "/".join(endpoint.split("/")[:2])


def routes(sb: Sandbox) -> APIRouter:
    router = APIRouter()
    requests: dict[str, tuple[str, Task]] = {}  # request id → (app, task)

    def record(endpoint: str, **fields: Any) -> None:
        sb.calls.record(endpoint, family="fal", **fields)

    def authorized(request: Request) -> bool:
        return secrets.compare_digest(
            request.headers.get("authorization", "").encode(),
            f"Key {sb.config.kie_key}".encode(),
        )

    async def send_webhook(request_id: str, task: Task, url: str) -> None:
        await asyncio.sleep(task.duration + sb.config.callback_delay)
        state, _ = task.stage(time.time())
        if state == "success":
            payload: dict[str, Any] = {"status": "OK", "payload": _video(task), "error": None}
        else:
            payload = {
                "status": "ERROR",
                "error": "Invalid status code: 422",
                "payload": {"detail": [{"msg": FLAGGED, "type": "content_policy_violation"}]},
            }
        body = json.dumps({"request_id": request_id, "gateway_request_id": request_id, **payload})
        raw = body.encode()
        stamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "x-fal-webhook-request-id": request_id,
            "x-fal-webhook-user-id": USER_ID,
            "x-fal-webhook-timestamp": stamp,
            "x-fal-webhook-signature": sign(request_id, stamp, raw),
        }
        status: int | str
        try:
            response = await sb.http["client"].post(url, content=raw, headers=headers)
            status = response.status_code
        except httpx.HTTPError as exc:
            status = f"error: {type(exc).__name__}"
        task.callback_sent = True
        record("callback", task_id=request_id, status_code=status)

    def _video(task: Task) -> dict[str, Any]:
        return {
            "video": {
                "url": task.video_url(),
                "content_type": "video/mp4",
                "file_name": f"{task.id}.mp4",
                "file_size": 1024,
            }
        }

    def lookup(request: Request, owner: str, app: str, request_id: str) -> Task | Response:
        """The request's task, or fal's answer when the key or the request is wrong (a
        request is found only under the app it was submitted to, as at fal)."""
        if not authorized(request):
            return _detail(401, "Unauthorized")
        found = requests.get(request_id)
        if found is None or found[0] != f"{owner}/{app}":
            return _detail(404, "Request not found")
        return found[1]

    @router.get("/fal/.well-known/jwks.json")
    async def fal_jwks() -> dict[str, Any]:
        return jwks()

    @router.get("/fal/{owner}/{app}/requests/{request_id}/status")
    async def fal_status(owner: str, app: str, request_id: str, request: Request) -> Response:
        task = lookup(request, owner, app, request_id)
        if isinstance(task, Response):
            record("recordInfo", task_id=request_id, code=task.status_code)
            return task
        task.record_calls += 1
        fault = task.has("checkfail")
        if fault and task.record_calls <= (fault.times or 10**9):
            record("recordInfo", task_id=request_id, code=fault.code or 500)
            return _detail(fault.code or 500, "Internal Server Error")
        record("recordInfo", task_id=request_id, code=200)
        state, _ = task.stage(time.time())
        word = {"waiting": "IN_QUEUE", "queuing": "IN_QUEUE", "generating": "IN_PROGRESS"}
        shown: dict[str, Any] = {"status": word.get(state, "COMPLETED")}
        if state in ("waiting", "queuing"):
            shown["queue_position"] = 0
        shown["response_url"] = f"{request.base_url}fal/{owner}/{app}/requests/{request_id}"
        return JSONResponse(shown)

    @router.get("/fal/{owner}/{app}/requests/{request_id}")
    async def fal_result(owner: str, app: str, request_id: str, request: Request) -> Response:
        task = lookup(request, owner, app, request_id)
        if isinstance(task, Response):
            return task
        state, _ = task.stage(time.time())
        if state not in ("success", "fail"):
            return _detail(400, "Request is still in progress")
        if state == "fail":
            return _detail(422, [{"msg": FLAGGED, "type": "content_policy_violation"}])
        return JSONResponse(_video(task))

    @router.put("/fal/{owner}/{app}/requests/{request_id}/cancel")
    async def fal_cancel(owner: str, app: str, request_id: str, request: Request) -> Response:
        task = lookup(request, owner, app, request_id)
        if isinstance(task, Response):
            return task if task.status_code != 404 else JSONResponse({"status": "NOT_FOUND"}, 404)
        if task.finished(time.time()):
            record("cancel", task_id=request_id, code=400)
            return JSONResponse({"status": "ALREADY_COMPLETED"}, status_code=400)
        record("cancel", task_id=request_id, code=202)
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)

    @router.post("/fal/{endpoint:path}")
    async def fal_submit(endpoint: str, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        prompt = str(body.get("prompt") or "") if isinstance(body, dict) else ""
        attempt = sb.calls.create_by_prompt[prompt]
        sb.calls.create_by_prompt[prompt] += 1
        faults = parse(prompt)

        def active(name: str) -> Any:
            fault = next((f for f in faults if f.name == name), None)
            return fault if fault and (fault.times is None or attempt < fault.times) else None

        def answer(status: int, content: Any, **headers: str) -> Response:
            request_id = content.get("request_id") if isinstance(content, dict) else None
            record(
                "createTask",
                prompt=prompt,
                code=200 if status < 300 else status,
                model=endpoint,
                input=body if isinstance(body, dict) else None,
                callback_url=request.query_params.get("fal_webhook"),
                task_id=request_id,
            )
            return JSONResponse(content, status_code=status, headers=headers or None)

        if not authorized(request):
            return answer(401, {"detail": "Invalid Key authorization header"})
        if sb.config.account_code == 401:
            return answer(401, {"detail": "Invalid Key authorization header"})
        if sb.config.account_code:
            return answer(403, {"detail": LOCKED})
        if fault := active("code"):
            code = fault.code or 500
            code = 403 if code == 402 else code
            headers = {"Retry-After": "1"} if code == 429 else {}
            detail = LOCKED if code == 403 else f"HTTP {code}"
            return answer(code, {"detail": detail}, **headers)
        if active("hang"):
            await asyncio.sleep(sb.config.hang_seconds)
        schema = endpoints().get(endpoint.strip("/"))
        if schema is None:
            return answer(404, {"detail": f"Application '{endpoint}' not found"})
        if not isinstance(body, dict):
            return answer(422, {"detail": [{"loc": ["body"], "msg": "not a JSON object"}]})
        refused = _refusal(schema, body)
        if refused:
            return answer(422, {"detail": refused})
        now = time.time()
        if sb.config.create_rate:
            rate = parse_rate(sb.config.create_rate)
            while sb.created_at and sb.created_at[0] <= now - rate.window:
                sb.created_at.popleft()
            if len(sb.created_at) >= rate.count:
                return answer(429, {"detail": "Too many requests"}, **{"Retry-After": "1"})
        sb.created_at.append(now)
        request_id = str(uuid.uuid4())
        slow = active("slow")
        task = Task(
            id=f"fal_{request_id}",
            model=endpoint,
            prompt=prompt,
            param=body,
            created=now,
            duration=slow.value if slow and slow.value is not None else sb.config.duration,
            faults=faults,
            callback_url=request.query_params.get("fal_webhook"),
            base_url=str(request.base_url),
            family="fal",
        )
        sb.tasks[task.id] = task
        app = _app(endpoint.strip("/"))
        requests[request_id] = (app, task)
        if task.callback_url and not task.has("nocallback") and not task.has("stuck"):
            pending = asyncio.create_task(send_webhook(request_id, task, task.callback_url))
            sb.background.add(pending)
            pending.add_done_callback(sb.background.discard)
        if active("lostreply"):
            # fal queued the request (its webhook will come), but its answer never arrives whole.
            record(
                "createTask",
                prompt=prompt,
                code="lostreply",
                model=endpoint,
                input=body,
                callback_url=task.callback_url,
                task_id=request_id,
            )
            return PlainTextResponse('{"request_id": "', media_type="application/json")
        base = f"{request.base_url}fal/{app}/requests/{request_id}"
        return answer(
            200,
            {
                "request_id": request_id,
                "gateway_request_id": request_id,
                "status": "IN_QUEUE",
                "queue_position": 0,
                "response_url": base,
                "status_url": f"{base}/status",
                "cancel_url": f"{base}/cancel",
            },
        )

    return router
