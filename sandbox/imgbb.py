"""imgbb's `/1/upload` and the images it hands out."""

from __future__ import annotations

import base64
import secrets

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from core.images import sniff_image_type
from sandbox.state import Sandbox
from sandbox.tasks import imgbb_error


def routes(sb: Sandbox) -> APIRouter:
    router = APIRouter()

    @router.post("/1/upload")
    async def imgbb_upload(request: Request) -> Response:
        form = await request.form()
        key = request.query_params.get("key") or form.get("key")
        if key != sb.config.imgbb_key:
            sb.calls.record("imgbb_upload", status_code=400)
            return imgbb_error(400, "Invalid API v1 key.", 100)
        source = form.get("image")
        if source is None or source == "":
            sb.calls.record("imgbb_upload", status_code=400)
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
            sb.calls.record("imgbb_upload", status_code=400)
            return imgbb_error(400, "Invalid image source.", 310)
        image_id = secrets.token_urlsafe(6)
        extension = content_type.split("/")[1]
        sb.images[image_id] = (data, content_type)
        sb.calls.record("imgbb_upload", status_code=200, image_id=image_id, size=len(data))
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

    @router.get("/i/{image_id}/{filename}")
    async def image(image_id: str, filename: str) -> Response:
        if image_id not in sb.images:
            return PlainTextResponse("not found", status_code=404)
        data, content_type = sb.images[image_id]
        return Response(data, media_type=content_type)

    return router
