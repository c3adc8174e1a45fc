"""The sandbox server: Kie's jobs API (`/api/v1/jobs/...`), Veo's (`/api/v1/veo/...`) and
Runway's (`/api/v1/runway/...`) endpoints, imgbb (`/1/upload`), the files they
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
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from core.config import SANDBOX_IMGBB_KEY, SANDBOX_KIE_KEY, parse_rate
from core.images import sniff_image_type
from sandbox.account import Account, price
from sandbox.faults import Fault, parse
from sandbox.schemas import jobs_schema, refusal, runway_refusal, veo_refusal
from sandbox.videos import padded, parse_size, sample_mp4

ACCOUNT_MESSAGES = {
    401: "You do not have access permissions",
    402: "The current credits are insufficient. Please top up.",
    433: "The sub-key usage limit has been reached",
}
FAKE_MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64


@dataclass
class SandboxConfig:
    duration: float = 0.5  # seconds a task takes to generate
    null_window: float = 0.2  # seconds recordInfo answers "recordInfo is null" after creation
    hang_seconds: float = 40.0  # how long [kie:hang] keeps createTask waiting
    callback_delay: float = 0.0
    veo_1080p_delay: float = 1.0  # seconds after success until get-1080p-video has the file
    create_rate: str = ""  # like Kie: "20/10s" new tasks per window, excess refused (429)
    max_concurrent: int = 0  # tasks generating at once; 0: no limit
    # Nonzero: every create call answers this code (401 bad key, 402 no credits, 433 sub-key
    # limit), as Kie does for an account in that state; 0 again: topped up.
    account_code: int = 0
    # The account's balance (SANDBOX_CREDITS); each accepted create draws its price from it,
    # and a create it cannot cover is refused with 402 like Kie's.
    credits: float = 10_000_000.0
    kie_key: str = SANDBOX_KIE_KEY
    imgbb_key: str = SANDBOX_IMGBB_KEY

    @classmethod
    def from_env(cls) -> SandboxConfig:
        config = cls()
        for name in (
            "duration",
            "null_window",
            "hang_seconds",
            "callback_delay",
            "veo_1080p_delay",
            "credits",
        ):
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
    family: str = "jobs"  # jobs | veo | runway: which Kie API family created it
    record_calls: int = 0
    callback_sent: bool = False
    charged: float = 0.0  # credits the create drew (refunded if the generation fails)
    remained: float = 0.0  # the balance when the callback is sent

    def finished(self, now: float) -> bool:
        return not self.has("stuck") and now - self.created >= self.duration

    def has(self, name: str) -> Fault | None:
        return next((f for f in self.faults if f.name == name), None)

    def stage(self, now: float) -> tuple[str, int]:
        """(neutral state, progress) by the clock: waiting → queuing → generating → end."""
        elapsed = now - self.created
        if self.has("stuck"):
            return "generating", min(99, int(elapsed))
        if elapsed >= self.duration:
            return ("fail" if self.has("fail") else "success"), 100
        if elapsed < self.duration * 0.1:
            return "waiting", 0
        if elapsed < self.duration * 0.25:
            return "queuing", 0
        return "generating", int(100 * elapsed / self.duration)

    def record_time(self, now: float) -> float:
        """The clock the read endpoints show the task by: [kie:lag=N] makes the record trail
        the callback by N seconds (Kie's record can lag its own callback)."""
        lag = self.has("lag")
        return now - (lag.value or 0.0) if lag else now

    def video_url(self, watermarked: bool = False) -> str:
        return f"{self.base_url}v/{self.id}{'-wm' if watermarked else ''}.mp4"

    def view(self, now: float) -> dict[str, Any]:
        """The task as the jobs API's recordInfo shows it."""
        state, progress = self.stage(now)
        odd = self.has("state")
        if odd and odd.text and state not in ("success", "fail"):
            state = odd.text  # a state word soraq does not know
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
            data["resultJson"] = json.dumps(
                {"resultUrls": [self.video_url()], "resultWaterMarkUrls": [self.video_url(True)]}
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

    def veo_view(self, now: float) -> dict[str, Any]:
        """The task as Veo's record-info shows it: successFlag, string times, no progress."""
        state, _ = self.stage(now)
        odd = self.has("state")
        flag: Any = {"success": 1, "fail": 3}.get(state, 0)
        if odd and odd.text and state not in ("success", "fail"):
            flag = odd.text
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.created))
        return {
            "taskId": self.id,
            "paramJson": json.dumps(self.param),
            "createTime": stamp,
            "completeTime": stamp if state in ("success", "fail") else None,
            "response": {
                "taskId": self.id,
                "resultUrls": [self.video_url()],
                "originUrls": [self.video_url()],
                # Veo finishes in 720p; 1080p comes from get-1080p-video a while later.
                "resolution": "720p",
            }
            if state == "success"
            else None,
            "successFlag": flag,
            "errorCode": 400 if state == "fail" else None,
            "errorMessage": "The prompt was flagged by the content policy."
            if state == "fail"
            else "",
            "fallbackFlag": False,
        }

    def runway_view(self, now: float) -> dict[str, Any]:
        state, _ = self.stage(now)
        word = {"waiting": "wait", "queuing": "queueing"}.get(state, state)
        odd = self.has("state")
        if odd and odd.text and state not in ("success", "fail"):
            word = odd.text
        return {
            "taskId": self.id,
            "state": word,
            "generateParam": self.param,
            "videoInfo": {
                "videoId": self.id,
                "videoUrl": self.video_url(),
                "imageUrl": f"{self.base_url}v/{self.id}.jpg",
            }
            if state == "success"
            else None,
            "failCode": 400 if state == "fail" else None,
            "failMsg": "The prompt was flagged by the content policy." if state == "fail" else "",
            "generateTime": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.created)),
        }

    def callback_body(self, now: float) -> dict[str, Any]:
        state, _ = self.stage(now)
        failed = state == "fail"
        if self.family == "veo":
            info = {"resultUrls": [self.video_url()], "originUrls": [self.video_url()]}
            return {
                "code": 501 if failed else 200,
                "msg": "generation failed" if failed else "Veo3.1 video generated successfully.",
                "data": {"taskId": self.id, "info": None if failed else info},
            }
        if self.family == "runway":
            return {
                "code": 501 if failed else 200,
                "msg": "generation failed" if failed else "success",
                "data": {
                    "task_id": self.id,
                    "video_id": self.id,
                    "video_url": "" if failed else self.video_url(),
                    "image_url": "",
                },
            }
        data = self.view(now)
        return {
            "code": 501 if failed else 200,
            "msg": data["failMsg"] if failed else "success",
            "data": {
                **data,
                "consumeCredits": 0 if failed else self.charged,
                "remainedCredits": self.remained,
            },
        }


@dataclass
class Calls:
    log: list[dict[str, Any]] = field(default_factory=list)
    create_by_prompt: Counter[str] = field(default_factory=Counter)

    def record(self, endpoint: str, **details: Any) -> None:
        self.log.append({"endpoint": endpoint, "at": time.time(), **details})


async def _trickled(data: bytes, seconds: float) -> AsyncIterator[bytes]:
    """`data` spread over `seconds` (a slow CDN), in 20 pieces."""
    step = max(1, len(data) // 20)
    for start in range(0, len(data), step):
        yield data[start : start + step]
        await asyncio.sleep(seconds / 20)


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
    account = Account(config.credits)

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
        settle(task)
        task.remained = account.credits
        payload = task.callback_body(time.time())
        status: int | str
        try:
            response = await http["client"].post(task.callback_url or "", json=payload)
            status = response.status_code
        except httpx.HTTPError as exc:
            status = f"error: {type(exc).__name__}"
        task.callback_sent = True
        calls.record("callback", task_id=task.id, status_code=status)

    def settle(task: Task) -> None:
        """A failed generation gives its credits back (once)."""
        if task.charged and task.stage(time.time())[0] == "fail":
            account.refund(task.charged)
            task.charged = 0.0

    async def create(
        request: Request,
        family: str,
        model: str,
        prompt: str,
        body: dict[str, Any],
        check: Any,
        shown: dict[str, Any],
    ) -> Response:
        """A create call of any family: auth, faults, the account switch, the schema, Kie's
        limits, then a task that moves by the clock (and one callback)."""
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
                family=family,
                prompt=prompt,
                code=code,
                msg=msg,
                model=model,
                input=shown,
                callback_url=body.get("callBackUrl"),
                task_id=(data or {}).get("taskId"),
            )
            return JSONResponse(kie_body(code, msg, data), **kwargs)

        if not authorized(request):
            return answer(401, "You do not have access permissions")
        if config.account_code:
            return answer(config.account_code, ACCOUNT_MESSAGES.get(config.account_code, "Error"))
        if fault := active("code"):
            headers = {"Retry-After": "1"} if fault.code == 429 else None
            messages = {
                **ACCOUNT_MESSAGES,
                429: "Rate limited",
                500: "Internal Error",
                455: "Maintenance",
            }
            return answer(
                fault.code or 500, messages.get(fault.code or 500, "Error"), headers=headers
            )
        if fault := active("http"):
            calls.record("createTask", family=family, prompt=prompt, code=fault.code)
            return PlainTextResponse("<html>error</html>", status_code=fault.code or 500)
        if active("hang"):
            await asyncio.sleep(config.hang_seconds)
        if active("malformed"):
            calls.record("createTask", family=family, prompt=prompt, code="malformed")
            return PlainTextResponse(
                '{"code": 200, "data": {"taskId": ', media_type="application/json"
            )
        refused = check()
        if refused is not None:
            return answer(*refused)
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
        cost = price(family, model, body if family != "jobs" else shown)
        if cost is None:
            return answer(422, f"No price for model {model}")
        if not account.charge(cost):
            return answer(402, ACCOUNT_MESSAGES[402])
        created_at.append(now)
        slow = active("slow")
        prefix = {"veo": "veo_task", "runway": "runway_task"}.get(family, "task")
        task = Task(
            id=f"{prefix}_{model.replace('/', '-')}_{int(now * 1000)}{secrets.token_hex(3)}",
            model=model,
            prompt=prompt,
            param=body,
            created=time.time(),
            duration=slow.value if slow and slow.value is not None else config.duration,
            faults=faults,
            callback_url=body.get("callBackUrl"),
            base_url=str(request.base_url),
            family=family,
            charged=cost,
        )
        tasks[task.id] = task
        if task.callback_url and not task.has("nocallback") and not task.has("stuck"):
            pending = asyncio.create_task(send_callback(task))
            background.add(pending)
            pending.add_done_callback(background.discard)
        if active("lostreply"):
            # Kie made the task (and will call back), but its answer never arrives whole.
            calls.record(
                "createTask", family=family, prompt=prompt, code="lostreply", task_id=task.id
            )
            return PlainTextResponse(
                '{"code": 200, "data": {"taskId', media_type="application/json"
            )
        if delay := active("createdelay"):
            # Kie has the task; its answer is slow to come back (a client may give up first).
            calls.record("createTask.created", prompt=prompt, task_id=task.id)
            await asyncio.sleep(delay.value or 1.0)
        return answer(200, "success", {"taskId": task.id})

    async def json_body(request: Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    @app.post("/api/v1/jobs/createTask")
    async def create_task(request: Request) -> Response:
        body = await json_body(request)
        if body is None:
            calls.record("createTask", family="jobs", code=422)
            return JSONResponse(kie_body(422, "Invalid JSON"))
        raw_input = body.get("input")
        task_input: dict[str, Any] = raw_input if isinstance(raw_input, dict) else {}
        model = str(body.get("model") or "")

        def check() -> tuple[int, str] | None:
            if not model:
                return 500, "This field is required: model"
            schema = jobs_schema(model)
            if schema is None:
                return 422, f"The model {model} is not available"
            return refusal(schema, task_input)

        prompt = str(task_input.get("prompt") or "")
        return await create(request, "jobs", model, prompt, body, check, task_input)

    @app.post("/api/v1/veo/generate")
    async def veo_generate(request: Request) -> Response:
        body = await json_body(request)
        if body is None:
            calls.record("createTask", family="veo", code=422)
            return JSONResponse(kie_body(422, "Invalid JSON"))
        model = str(body.get("model") or "veo3_fast")
        prompt = str(body.get("prompt") or "")
        shown = {k: v for k, v in body.items() if k not in ("model", "callBackUrl")}
        return await create(request, "veo", model, prompt, body, lambda: veo_refusal(body), shown)

    @app.post("/api/v1/runway/generate")
    async def runway_generate(request: Request) -> Response:
        body = await json_body(request)
        if body is None:
            calls.record("createTask", family="runway", code=422)
            return JSONResponse(kie_body(422, "Invalid JSON"))
        prompt = str(body.get("prompt") or "")
        shown = {k: v for k, v in body.items() if k != "callBackUrl"}
        return await create(
            request, "runway", "runway", prompt, body, lambda: runway_refusal(body), shown
        )

    def read(request: Request, family: str, task_id: str) -> tuple[Task | None, Response | None]:
        """The common part of every family's read: auth, lookup, injected check faults."""

        def answer(code: int, msg: str) -> Response:
            calls.record("recordInfo", family=family, task_id=task_id, code=code)
            return JSONResponse(kie_body(code, msg))

        if not authorized(request):
            return None, answer(401, "You do not have access permissions")
        if not task_id:
            return None, answer(400, "taskId is required")
        task = tasks.get(task_id)
        if task is None:
            return None, answer(404, "task not found")
        task.record_calls += 1
        fault = task.has("checkfail")
        if fault and task.record_calls <= (fault.times or 10**9):
            return None, answer(fault.code or 500, "Internal Error")
        if time.time() - task.created < config.null_window:
            # Right after creation the task is not visible yet: the jobs API and Runway say
            # "recordInfo is null" (422); Veo answers 404.
            if family == "veo":
                return None, answer(404, "task not found")
            return None, answer(422, "recordInfo is null")
        calls.record("recordInfo", family=family, task_id=task_id, code=200)
        return task, None

    @app.get("/api/v1/jobs/recordInfo")
    async def record_info(request: Request, taskId: str = "") -> Response:  # noqa: N803
        task, refused = read(request, "jobs", taskId)
        if task is None:
            assert refused is not None
            return refused
        return JSONResponse(kie_body(200, "success", task.view(task.record_time(time.time()))))

    @app.get("/api/v1/veo/record-info")
    async def veo_record_info(request: Request, taskId: str = "") -> Response:  # noqa: N803
        task, refused = read(request, "veo", taskId)
        if task is None:
            assert refused is not None
            return refused
        return JSONResponse(kie_body(200, "success", task.veo_view(task.record_time(time.time()))))

    @app.get("/api/v1/veo/get-1080p-video")
    async def veo_1080p(request: Request, taskId: str = "", index: int = 0) -> Response:  # noqa: N803
        task, refused = read(request, "veo", taskId)
        if task is None:
            assert refused is not None
            return refused
        now = time.time()
        state, _ = task.stage(now)
        ready_at = task.created + task.duration + config.veo_1080p_delay
        if state != "success" or now < ready_at:
            return JSONResponse(kie_body(422, "The 1080P video is being generated, try later"))
        return JSONResponse(
            kie_body(200, "success", {"resultUrl": f"{task.base_url}v/{task.id}-1080p.mp4"})
        )

    @app.get("/api/v1/runway/record-detail")
    async def runway_record_detail(request: Request, taskId: str = "") -> Response:  # noqa: N803
        task, refused = read(request, "runway", taskId)
        if task is None:
            assert refused is not None
            return refused
        return JSONResponse(
            kie_body(200, "success", task.runway_view(task.record_time(time.time())))
        )

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
    async def video(filename: str, fresh: str = "") -> Response:
        """A generated file: a real MP4 (H.264 + AAC) unless the prompt asked otherwise —
        [kie:badvideo] garbage, [kie:size=5MB] padded to that size, [kie:expire=5] gone 5 s
        after the task finished (as Kie's links expire)."""
        task_id = (
            filename.removesuffix(".mp4")
            .removesuffix(".jpg")
            .removesuffix("-wm")
            .removesuffix("-1080p")
        )
        task = tasks.get(task_id)
        if task is None:
            return PlainTextResponse("not found", status_code=404)
        if task.has("purged"):
            return PlainTextResponse("gone", status_code=404)
        expire = task.has("expire")
        ended = task.created + task.duration + (expire.value or 0) if expire else None
        if ended is not None and time.time() > ended and not fresh:
            return PlainTextResponse("expired", status_code=404)
        if task.has("badvideo"):
            return Response(FAKE_MP4, media_type="video/mp4")
        data = sample_mp4()
        size = task.has("size")
        if size and size.text:
            data = padded(data, parse_size(size.text))
        slow = task.has("slowfile")
        if slow and slow.value:
            return StreamingResponse(
                _trickled(data, slow.value),
                media_type="video/mp4",
                headers={"content-length": str(len(data))},
            )
        return Response(data, media_type="video/mp4")

    @app.post("/api/v1/common/download-url")
    async def download_url(request: Request) -> Response:
        """A fresh 20-minute link for a file Kie generated (others: 422)."""
        body = await json_body(request) or {}
        url = str(body.get("url") or "")
        calls.record("download-url", url=url)
        if not authorized(request):
            return JSONResponse(kie_body(401, "You do not have access permissions"))
        name = url.split("/v/", 1)[-1].split("?", 1)[0].removesuffix(".mp4")
        task = tasks.get(name.removesuffix("-wm").removesuffix("-1080p"))
        if "/v/" not in url or task is None or task.has("purged"):
            return JSONResponse(kie_body(422, "Only Kie-generated files are supported"))
        return JSONResponse(kie_body(200, "success", url.split("?", 1)[0] + "?fresh=1"))

    @app.get("/api/v1/chat/credit")
    async def credit(request: Request) -> Response:
        calls.record("credit")
        if not authorized(request):
            return JSONResponse(kie_body(401, "You do not have access permissions"))
        for task in tasks.values():
            if task.finished(time.time()):
                settle(task)
        return JSONResponse(kie_body(200, "success", account.credits))

    @app.post("/_sandbox/topup")
    async def topup(change: dict[str, float]) -> dict[str, float]:
        """{"credits": N} adds N; {"set": N} sets the balance."""
        if "set" in change:
            account.credits = float(change["set"])
        account.refund(float(change.get("credits", 0)))
        return {"credits": account.credits}

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
        account.credits = config.credits
        return {"ok": True}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
