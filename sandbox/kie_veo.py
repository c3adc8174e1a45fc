"""Veo 3.1's own endpoints: `generate`, `record-info` and `get-1080p-video`."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from sandbox.schemas import veo_refusal
from sandbox.state import Sandbox
from sandbox.tasks import kie_body


def routes(sb: Sandbox) -> APIRouter:
    router = APIRouter()

    @router.post("/api/v1/veo/generate")
    async def veo_generate(request: Request) -> Response:
        body = await sb.json_body(request)
        if body is None:
            sb.calls.record("createTask", family="veo", code=422)
            return JSONResponse(kie_body(422, "Invalid JSON"))
        model = str(body.get("model") or "veo3_fast")
        prompt = str(body.get("prompt") or "")
        shown = {k: v for k, v in body.items() if k not in ("model", "callBackUrl")}
        return await sb.create(
            request, "veo", model, prompt, body, lambda: veo_refusal(body), shown
        )

    @router.get("/api/v1/veo/record-info")
    async def veo_record_info(request: Request, taskId: str = "") -> Response:  # noqa: N803
        task, refused = sb.read(request, "veo", taskId)
        if task is None:
            assert refused is not None
            return refused
        return JSONResponse(kie_body(200, "success", task.veo_view(task.record_time(time.time()))))

    @router.get("/api/v1/veo/get-1080p-video")
    async def veo_1080p(request: Request, taskId: str = "", index: int = 0) -> Response:  # noqa: N803
        task, refused = sb.read(request, "veo", taskId)
        if task is None:
            assert refused is not None
            return refused
        now = time.time()
        state, _ = task.stage(now)
        ready_at = task.created + task.duration + sb.config.veo_1080p_delay
        if state != "success" or now < ready_at:
            return JSONResponse(kie_body(422, "The 1080P video is being generated, try later"))
        return JSONResponse(
            kie_body(200, "success", {"resultUrl": f"{task.base_url}v/{task.id}-1080p.mp4"})
        )

    return router
