"""Kie's market jobs API: `createTask` and `recordInfo`."""

from __future__ import annotations

import hashlib
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from sandbox.schemas import refusal
from sandbox.state import Sandbox
from sandbox.tasks import kie_body


def continued_task(sb: Sandbox, task_input: dict[str, Any]) -> tuple[int, str] | None:
    """A `task_id` input must name a task of this account that succeeded, as Kie requires
    ("the original video generation must have completed successfully")."""
    task_id = task_input.get("task_id")
    if task_id is None:
        return None
    task = sb.tasks.get(str(task_id))
    if task is None or task.family != "jobs":
        return 422, f"task_id {task_id} is not a task of this account"
    if task.stage(time.time())[0] != "success":
        return 422, f"task {task_id} has not completed successfully"
    return None


async def fetch_inputs(sb: Sandbox, model: str, prompt: str, task_input: dict[str, Any]) -> None:
    """Fetch each input file served from this machine (Kie's uploads here, soraq's own signed
    links), as Kie fetches what it is given, and record what arrived: a test can compare the
    bytes with what soraq archived. Other hosts are out of reach here and are only noted."""
    for field, value in task_input.items():
        urls = value if isinstance(value, list) else [value]
        for url in urls:
            if not isinstance(url, str) or not url.startswith("http"):
                continue
            host = urlsplit(url).hostname or ""
            if host not in ("127.0.0.1", "localhost"):
                continue
            try:
                response = await sb.http["client"].get(url, follow_redirects=True)
                digest = hashlib.sha256(response.content).hexdigest()
                status: int | str = response.status_code
            except httpx.HTTPError as exc:
                digest, status = "", f"error: {type(exc).__name__}"
            sb.calls.record(
                "inputFetch",
                model=model,
                prompt=prompt,
                field=field,
                url=url,
                status_code=status,
                sha256=digest,
                content_type=response.headers.get("content-type", "") if digest else "",
            )


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
            schema = sb.catalogue.fields(model)  # paused or removed at Kie: None
            if schema is None:
                return 422, f"The model {model} is not available"
            return refusal(schema, task_input) or continued_task(sb, task_input)

        prompt = str(task_input.get("prompt") or "")
        await fetch_inputs(sb, model, prompt, task_input)
        return await sb.create(request, "jobs", model, prompt, body, check, task_input)

    @router.get("/api/v1/jobs/recordInfo")
    async def record_info(request: Request, taskId: str = "") -> Response:  # noqa: N803
        task, refused = sb.read(request, "jobs", taskId)
        if task is None:
            assert refused is not None
            return refused
        return JSONResponse(kie_body(200, "success", task.view(task.record_time(time.time()))))

    return router
