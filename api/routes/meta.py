from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from models.catalogue import get_catalogue

router = APIRouter(tags=["meta"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/models", summary="The model catalogue")
async def models() -> dict[str, Any]:
    catalogue = get_catalogue()
    return {
        "default_text_model": catalogue.default_text_model,
        "default_image_model": catalogue.default_image_model,
        "data": [spec.describe() for spec in catalogue.models.values()],
    }
