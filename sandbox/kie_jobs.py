"""Kie's market jobs API: `createTask` and `recordInfo`."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from sandbox.schemas import jobs_schema, refusal
from sandbox.state import Sandbox
from sandbox.tasks import kie_body


def routes(sb: Sandbox) -> APIRouter:
    router = APIRouter()

    @router.post("/api/v1/jobs/createTask")
    async def create_task(request: Request) -> Response:
        body = await sb.json_body(request)
        if body is None:
            sb.calls.record("createTask", family="jobs", code=422)
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
        return await sb.create(request, "jobs", model, prompt, body, check, task_input)

    @router.get("/api/v1/jobs/recordInfo")
    async def record_info(request: Request, taskId: str = "") -> Response:  # noqa: N803
        task, refused = sb.read(request, "jobs", taskId)
        if task is None:
            assert refused is not None
            return refused
        return JSONResponse(kie_body(200, "success", task.view(task.record_time(time.time()))))

    return router
