"""The sandbox server: Kie's jobs API (`/api/v1/jobs/...`), imgbb (`/1/upload`), the files they
hand out, and control routes under `/_sandbox/` for tests and benchmarks.

Tasks move through waiting → queuing → generating (with progress) → success by the clock, so
no background work is needed except the one callback each task sends.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from sandbox.faults import Fault, parse
from soraq.config import SANDBOX_IMGBB_KEY, SANDBOX_KIE_KEY, parse_rate
from soraq.images import sniff_image_type

FAKE_MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64


@dataclass
class SandboxConfig:
    duration: float = 0.5  # seconds a task takes to generate
    null_window: float = 0.2  # seconds recordInfo answers "recordInfo is null" after creation
    hang_seconds: float = 40.0  # how long [kie:hang] keeps createTask waiting
    callback_delay: float = 0.0
    create_rate: str = ""  # like Kie: "20/10s" new tasks per window, excess refused (429)
    max_concurrent: int = 0  # tasks generating at once; 0: no limit
    kie_key: str = SANDBOX_KIE_KEY
    imgbb_key: str = SANDBOX_IMGBB_KEY

    @classmethod
    def from_env(cls) -> SandboxConfig:
        config = cls()
        for name in ("duration", "null_window", "hang_seconds", "callback_delay"):
            if value := os.environ.get(f"SANDBOX_{name.upper()}"):
                setattr(config, name, float(value))
        config.create_rate = os.environ.get("SANDBOX_CREATE_RATE", "")
        config.max_concurrent = int(os.environ.get("SANDBOX_MAX_CONCURRENT", "0"))
        return config


@dataclass
class Task:
    id: str
    model: str
    prompt: str
    param: dict[str, Any]
    created: float
    duration: float
    faults: list[Fault]
    callback_url: str | None
    base_url: str
    record_calls: int = 0
    callback_sent: bool = False

    def finished(self, now: float) -> bool:
        return not self.has("stuck") and now - self.created >= self.duration

    def has(self, name: str) -> Fault | None:
        return next((f for f in self.faults if f.name == name), None)

    def view(self, now: float) -> dict[str, Any]:
        elapsed = now - self.created
        state, progress = "generating", 0
        if self.has("stuck"):
            progress = min(99, int(elapsed))
        elif elapsed >= self.duration:
            state, progress = ("fail" if self.has("fail") else "success"), 100
        elif elapsed < self.duration * 0.1:
            state = "waiting"
        elif elapsed < self.duration * 0.25:
            state = "queuing"
        else:
            progress = int(100 * elapsed / self.duration)
        ms = int(self.created * 1000)
        data: dict[str, Any] = {
            "taskId": self.id,
            "model": self.model,
            "state": state,
            "param": json.dumps(self.param),
            "resultJson": "",
            "failCode": "",
            "failMsg": "",
            "costTime": None,
            "progress": progress,
            "completeTime": None,
            "createTime": ms,
            "updateTime": int(now * 1000),
        }
        if state == "success":
            url = f"{self.base_url}v/{self.id}.mp4"
            data["resultJson"] = json.dumps(
                {"resultUrls": [url], "resultWaterMarkUrls": [f"{self.base_url}v/{self.id}-wm.mp4"]}
            )
        if state == "fail":
            data.update(
                failCode="content_policy", failMsg="The prompt was flagged by the content policy."
            )
        if state in ("success", "fail"):
            data.update(
                costTime=int(self.duration * 1000), completeTime=ms + int(self.duration * 1000)
            )
        return data


@dataclass
class Calls:
    log: list[dict[str, Any]] = field(default_factory=list)
    create_by_prompt: Counter[str] = field(default_factory=Counter)

    def record(self, endpoint: str, **details: Any) -> None:
        self.log.append({"endpoint": endpoint, "at": time.time(), **details})


def kie_body(code: int, msg: str, data: Any = None) -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": data}


def imgbb_error(status: int, message: str, code: int | None = None) -> JSONResponse:
    error: dict[str, Any] = {"message": message}
    if code is not None:
        error["code"] = code
    return JSONResponse(
        {"status_code": status, "error": error, "status_txt": "Bad Request"}, status
    )


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    config = config or SandboxConfig.from_env()
    tasks: dict[str, Task] = {}
    images: dict[str, tuple[bytes, str]] = {}
    calls = Calls()
    created_at: deque[float] = deque()  # createTask acceptances, for the rate limit
    background: set[asyncio.Task[None]] = set()
    http: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        http["client"] = httpx.AsyncClient(timeout=10)
        yield
        for pending in background:
            pending.cancel()
        await http["client"].aclose()

    app = FastAPI(title="soraq sandbox (Kie.ai + imgbb stand-in)", lifespan=lifespan)

    def authorized(request: Request) -> bool:
        return request.headers.get("authorization", "") == f"Bearer {config.kie_key}"

    async def send_callback(task: Task) -> None:
        await asyncio.sleep(task.duration + config.callback_delay)
        data = task.view(time.time())
        failed = data["state"] == "fail"
        payload = {
            "code": 501 if failed else 200,
            "msg": data["failMsg"] if failed else "success",
            "data": {**data, "consumeCredits": 10, "remainedCredits": 990},
        }
        status: int | str
        try:
            response = await http["client"].post(task.callback_url or "", json=payload)
            status = response.status_code
        except httpx.HTTPError as exc:
            status = f"error: {type(exc).__name__}"
        task.callback_sent = True
        calls.record("callback", task_id=task.id, status_code=status)

    @app.post("/api/v1/jobs/createTask")
    async def create_task(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            calls.record("createTask", code=422)
            return JSONResponse(kie_body(422, "Invalid JSON"))
        prompt = str((body.get("input") or {}).get("prompt") or "")
        attempt = calls.create_by_prompt[prompt]
        calls.create_by_prompt[prompt] += 1
        faults = parse(prompt)

        def active(name: str) -> Fault | None:
            fault = next((f for f in faults if f.name == name), None)
            if fault and (fault.times is None or attempt < fault.times):
                return fault
            return None

        def answer(code: int, msg: str, data: Any = None, **kwargs: Any) -> Response:
            calls.record(
                "createTask",
                prompt=prompt,
                code=code,
                model=body.get("model"),
                input=body.get("input"),
                callback_url=body.get("callBackUrl"),
                task_id=(data or {}).get("taskId"),
            )
            return JSONResponse(kie_body(code, msg, data), **kwargs)

        if not authorized(request):
            return answer(401, "You do not have access permissions")
        if fault := active("code"):
            headers = {"Retry-After": "1"} if fault.code == 429 else None
            messages = {
                402: "The current credits are insufficient. Please top up.",
                429: "Rate limited",
                500: "Internal Error",
                455: "Maintenance",
            }
            return answer(
                fault.code or 500, messages.get(fault.code or 500, "Error"), headers=headers
            )
        if fault := active("http"):
            calls.record("createTask", prompt=prompt, code=fault.code)
            return PlainTextResponse("<html>error</html>", status_code=fault.code or 500)
        if active("hang"):
            await asyncio.sleep(config.hang_seconds)
        if active("malformed"):
            calls.record("createTask", prompt=prompt, code="malformed")
            return PlainTextResponse(
                '{"code": 200, "data": {"taskId": ', media_type="application/json"
            )
        model = str(body.get("model") or "")
        if not model:
            return answer(422, "model is required")
        if not prompt:
            return answer(422, "input.prompt is required")
        if "image-to-video" in model:
            image = body.get("input") or {}
            if not (image.get("image_urls") or image.get("image_url") or image.get("input_urls")):
                return answer(422, "image_urls is required")
        now = time.time()
        if config.create_rate:
            rate = parse_rate(config.create_rate)
            while created_at and created_at[0] <= now - rate.window:
                created_at.popleft()
            if len(created_at) >= rate.count:
                return answer(429, f"Rate limit: {config.create_rate} new tasks")
        if (
            config.max_concurrent
            and sum(1 for t in tasks.values() if not t.finished(now)) >= config.max_concurrent
        ):
            return answer(429, f"Too many concurrent tasks (max {config.max_concurrent})")
        created_at.append(now)
        slow = active("slow")
        task = Task(
            id=f"task_{model.replace('/', '-')}_{int(time.time() * 1000)}{secrets.token_hex(3)}",
            model=model,
            prompt=prompt,
            param=body,
            created=time.time(),
            duration=slow.value if slow and slow.value is not None else config.duration,
            faults=faults,
            callback_url=body.get("callBackUrl"),
            base_url=str(request.base_url),
        )
        tasks[task.id] = task
        if task.callback_url and not task.has("nocallback") and not task.has("stuck"):
            pending = asyncio.create_task(send_callback(task))
            background.add(pending)
            pending.add_done_callback(background.discard)
        if delay := active("createdelay"):
            # Kie has the task; its answer is slow to come back (a client may give up first).
            calls.record("createTask.created", prompt=prompt, task_id=task.id)
            await asyncio.sleep(delay.value or 1.0)
        return answer(200, "success", {"taskId": task.id})

    @app.get("/api/v1/jobs/recordInfo")
    async def record_info(request: Request, taskId: str = "") -> Response:  # noqa: N803
        def answer(code: int, msg: str, data: Any = None, status: int = 200) -> Response:
            calls.record("recordInfo", task_id=taskId, code=code)
            return JSONResponse(kie_body(code, msg, data), status_code=status)

        if not authorized(request):
            return answer(401, "You do not have access permissions")
        if not taskId:
            return answer(400, "taskId is required")
        task = tasks.get(taskId)
        if task is None:
            return answer(404, "task not found")
        task.record_calls += 1
        fault = task.has("checkfail")
        if fault and task.record_calls <= (fault.times or 10**9):
            return answer(fault.code or 500, "Internal Error")
        now = time.time()
        if now - task.created < config.null_window:
            return answer(422, "recordInfo is null")
        return answer(200, "success", task.view(now))

    @app.post("/1/upload")
    async def imgbb_upload(request: Request) -> Response:
        form = await request.form()
        key = request.query_params.get("key") or form.get("key")
        if key != config.imgbb_key:
            calls.record("imgbb_upload", status_code=400)
            return imgbb_error(400, "Invalid API v1 key.", 100)
        source = form.get("image")
        if source is None or source == "":
            calls.record("imgbb_upload", status_code=400)
            return imgbb_error(400, "Empty upload source.")
        if isinstance(source, str):
            try:
                data = base64.b64decode(source.split(",", 1)[-1], validate=True)
            except ValueError:
                data = b""
        else:
            data = await source.read()
        content_type = sniff_image_type(data)
        if content_type is None:
            calls.record("imgbb_upload", status_code=400)
            return imgbb_error(400, "Invalid image source.", 310)
        image_id = secrets.token_urlsafe(6)
        extension = content_type.split("/")[1]
        images[image_id] = (data, content_type)
        calls.record("imgbb_upload", status_code=200, image_id=image_id, size=len(data))
        url = f"{request.base_url}i/{image_id}/image.{extension}"
        return JSONResponse(
            {
                "data": {
                    "id": image_id,
                    "url": url,
                    "display_url": url,
                    "url_viewer": f"{request.base_url}i/{image_id}",
                    "delete_url": f"{request.base_url}i/{image_id}/delete",
                    "size": str(len(data)),
                    "expiration": str(request.query_params.get("expiration") or 0),
                    "width": "1",
                    "height": "1",
                },
                "success": True,
                "status": 200,
            }
        )

    @app.get("/i/{image_id}/{filename}")
    async def image(image_id: str, filename: str) -> Response:
        if image_id not in images:
            return PlainTextResponse("not found", status_code=404)
        data, content_type = images[image_id]
        return Response(data, media_type=content_type)

    @app.get("/v/{filename}")
    async def video(filename: str) -> Response:
        task_id = filename.removesuffix(".mp4").removesuffix("-wm")
        if task_id not in tasks:
            return PlainTextResponse("not found", status_code=404)
        return Response(FAKE_MP4, media_type="video/mp4")

    @app.get("/_sandbox/calls")
    async def call_log() -> dict[str, Any]:
        return {"calls": calls.log, "create_by_prompt": dict(calls.create_by_prompt)}

    @app.get("/_sandbox/config")
    async def get_config() -> dict[str, Any]:
        return asdict(config)

    @app.post("/_sandbox/config")
    async def set_config(changes: dict[str, Any]) -> dict[str, Any]:
        for name, value in changes.items():
            if hasattr(config, name):
                setattr(config, name, type(getattr(config, name))(value))
        return asdict(config)

    @app.post("/_sandbox/tasks")
    async def seed_tasks(seed: dict[str, Any]) -> dict[str, int]:
        """Tasks that exist at "Kie" without a createTask (for jobs a benchmark writes as rows):
        {"ids": [...], "model": "...", "duration": seconds}. Not counted as creates."""
        now = time.time()
        for task_id in seed["ids"]:
            tasks[task_id] = Task(
                id=task_id,
                model=str(seed.get("model", "sora-2-text-to-video")),
                prompt="seeded",
                param={},
                created=now,
                duration=float(seed.get("duration", config.duration)),
                faults=[],
                callback_url=None,
                base_url="",
            )
        return {"tasks": len(tasks)}

    @app.post("/_sandbox/reset")
    async def reset() -> dict[str, bool]:
        created_at.clear()
        tasks.clear()
        images.clear()
        calls.log.clear()
        calls.create_by_prompt.clear()
        return {"ok": True}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
