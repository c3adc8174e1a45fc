"""Kie's File Upload API (its own host in Kie's docs; the sandbox serves it beside the rest):
stream (multipart), base64 and URL uploads, each file served back from `/files/…` with the
content type its name says — as Kie's host does, which is why soraq names files by their real
format. Files live in memory, the oldest dropped past a bound."""

from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
import secrets
import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.datastructures import UploadFile

from sandbox.state import Sandbox

MAX_FILES = 200
MAX_FILE_BYTES = 64 * 1024 * 1024


def _answer(code: int, msg: str, data: object = None) -> JSONResponse:
    return JSONResponse({"success": code == 200, "code": code, "msg": msg, "data": data})


def routes(sb: Sandbox) -> APIRouter:
    router = APIRouter()

    def keep(request: Request, data: bytes, name: str, path: str) -> JSONResponse:
        if len(data) > MAX_FILE_BYTES:
            return _answer(413, "File too large")
        file_id = secrets.token_hex(8)
        safe = "".join(c for c in name if c.isalnum() or c in "._-")[:100] or "file"
        mime = mimetypes.guess_type(safe)[0] or "application/octet-stream"
        while len(sb.files) >= MAX_FILES:
            sb.files.pop(next(iter(sb.files)))
        sb.files[file_id] = (data, mime)
        url = f"{request.base_url}files/{file_id}/{safe}"
        sb.calls.record(
            "fileUpload",
            name=safe,
            path=path,
            bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            url=url,
        )
        return _answer(
            200,
            "File uploaded successfully",
            {
                "fileName": safe,
                "filePath": f"{path}/{safe}",
                "downloadUrl": url,
                "fileSize": len(data),
                "mimeType": mime,
                "uploadedAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            },
        )

    @router.post("/api/file-stream-upload")
    async def stream_upload(request: Request) -> Response:
        if not sb.authorized(request):
            return _answer(401, "You do not have access permissions")
        form = await request.form(max_part_size=MAX_FILE_BYTES + 1)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return _answer(400, "file is required")
        name = str(form.get("fileName") or upload.filename or "file")
        return keep(request, await upload.read(), name, str(form.get("uploadPath") or ""))

    @router.post("/api/file-base64-upload")
    async def base64_upload(request: Request) -> Response:
        if not sb.authorized(request):
            return _answer(401, "You do not have access permissions")
        body = await sb.json_body(request) or {}
        raw = str(body.get("base64Data") or "")
        if "," in raw[:100] and raw.startswith("data:"):
            raw = raw.split(",", 1)[1]
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return _answer(400, "base64Data is not valid base64")
        name = str(body.get("fileName") or "file")
        return keep(request, data, name, str(body.get("uploadPath") or ""))

    @router.get("/files/{file_id}/{name}")
    async def served(file_id: str) -> Response:
        found = sb.files.get(file_id)
        if found is None:
            return PlainTextResponse("not found", status_code=404)
        data, mime = found
        return Response(data, media_type=mime)

    return router
