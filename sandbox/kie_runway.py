"""Runway's own endpoints: `generate` and `record-detail`."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from sandbox.schemas import runway_refusal
from sandbox.state import Sandbox
from sandbox.tasks import kie_body


def routes(sb: Sandbox) -> APIRouter:
    router = APIRouter()

    @router.post("/api/v1/runway/generate")
    async def runway_generate(request: Request) -> Response:
        body = await sb.json_body(request)
        if body is None:
            sb.calls.record("createTask", family="runway", code=422)
            return JSONResponse(kie_body(422, "Invalid JSON"))
        prompt = str(body.get("prompt") or "")
        shown = {k: v for k, v in body.items() if k != "callBackUrl"}
        return await sb.create(
            request, "runway", "runway", prompt, body, lambda: runway_refusal(body), shown
        )

    @router.get("/api/v1/runway/record-detail")
    async def runway_record_detail(request: Request, taskId: str = "") -> Response:  # noqa: N803
        task, refused = sb.read(request, "runway", taskId)
        if task is None:
            assert refused is not None
            return refused
        return JSONResponse(
            kie_body(200, "success", task.runway_view(task.record_time(time.time())))
        )

    return router
