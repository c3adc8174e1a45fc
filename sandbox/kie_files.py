"""Kie's result files, a fresh link for one (`common/download-url`) and the account's
balance (`chat/credit`)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from sandbox.state import Sandbox
from sandbox.tasks import FAKE_MP4, _trickled, kie_body
from sandbox.videos import padded, parse_size, sample_mp4


def routes(sb: Sandbox) -> APIRouter:
    router = APIRouter()

    @router.get("/v/{filename}")
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
        task = sb.tasks.get(task_id)
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

    @router.post("/api/v1/common/download-url")
    async def download_url(request: Request) -> Response:
        """A fresh 20-minute link for a file Kie generated (others: 422)."""
        body = await sb.json_body(request) or {}
        url = str(body.get("url") or "")
        sb.calls.record("download-url", url=url)
        if not sb.authorized(request):
            return JSONResponse(kie_body(401, "You do not have access permissions"))
        name = url.split("/v/", 1)[-1].split("?", 1)[0].removesuffix(".mp4")
        task = sb.tasks.get(name.removesuffix("-wm").removesuffix("-1080p"))
        if "/v/" not in url or task is None or task.has("purged"):
            return JSONResponse(kie_body(422, "Only Kie-generated files are supported"))
        return JSONResponse(kie_body(200, "success", url.split("?", 1)[0] + "?fresh=1"))

    @router.get("/api/v1/chat/credit")
    async def credit(request: Request) -> Response:
        sb.calls.record("credit")
        if not sb.authorized(request):
            return JSONResponse(kie_body(401, "You do not have access permissions"))
        for task in sb.tasks.values():
            if task.finished(time.time()):
                sb.settle(task)
        return JSONResponse(kie_body(200, "success", sb.account.credits))

    return router
