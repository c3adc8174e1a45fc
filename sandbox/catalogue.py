"""Kie's live catalogue, as its "kie-models" agent docs describe it: `GET /api/v1/models`
(the market's models, by type), `GET /api/v1/models/{id}/schema` (the request schema and the
path to call; the id's slashes are not encoded), `…/pricing` and `…/success-rate`, each in
Kie's `{code, msg, data}` envelope. It starts as the sandbox's own transcription
(kie_schemas.toml, prices.toml) and moves under `/_sandbox/catalogue`, so tests can change an
enum, add or pause a model and move a price — and the sandbox's createTask follows it."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from catalogue.drift import json_schema_of
from catalogue.pricing import case_credits
from sandbox.account import cases as listed_cases
from sandbox.schemas import schemas
from sandbox.tasks import kie_body

# Kie's published success rates are the sandbox's own invention: a steady figure per model.
DEFAULT_SUCCESS_RATE = 0.97


@dataclass
class LiveCatalogue:
    models: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def transcribed(cls) -> LiveCatalogue:
        models = {
            model_id: {
                "status": "active",
                "fields": copy.deepcopy(dict(fields)),
                "cases": [
                    {k: v for k, v in c.items() if k not in ("family", "model")}
                    for c in listed_cases("jobs", model_id)
                ],
                "success_rate": DEFAULT_SUCCESS_RATE,
            }
            for model_id, fields in schemas()["jobs"].items()
        }
        return cls(models)

    def fields(self, model_id: str) -> dict[str, Any] | None:
        found = self.models.get(model_id)
        if found is None or found["status"] != "active":
            return None
        return dict(found["fields"])

    def price(self, family: str, model_id: str, body: dict[str, Any]) -> float | None:
        if family != "jobs":
            return case_credits(
                [{k: v for k, v in c.items()} for c in listed_cases(family, model_id)], body
            )
        found = self.models.get(model_id)
        return case_credits(found["cases"], body) if found else None


def routes(sb: Any) -> APIRouter:
    router = APIRouter()

    def guard(request: Request) -> Response | None:
        sb.calls.record("catalogue", path=request.url.path)
        if not sb.authorized(request):
            return JSONResponse(kie_body(401, "You do not have access permissions"))
        return None

    @router.get("/api/v1/models")
    async def models(request: Request, type: str = "") -> Response:  # noqa: A002
        if refused := guard(request):
            return refused
        listed = [
            {"id": model_id, "name": model_id, "type": "video", "status": entry["status"]}
            for model_id, entry in sb.catalogue.models.items()
            if entry["status"] != "removed" and type in ("", "video")
        ]
        return JSONResponse(kie_body(200, "success", listed))

    @router.get("/api/v1/models/{model_id:path}/schema")
    async def schema(request: Request, model_id: str) -> Response:
        if refused := guard(request):
            return refused
        entry = sb.catalogue.models.get(model_id)
        if entry is None or entry["status"] == "removed":
            return JSONResponse(kie_body(404, "model not found"))
        data = {
            "model": model_id,
            "path": "/api/v1/jobs/createTask",
            # A brand-new model may have no schema yet (Kie's docs: may be null).
            "schema": json_schema_of(entry["fields"], model_id) if entry["fields"] else None,
        }
        return JSONResponse(kie_body(200, "success", data))

    @router.get("/api/v1/models/{model_id:path}/pricing")
    async def pricing(request: Request, model_id: str) -> Response:
        if refused := guard(request):
            return refused
        entry = sb.catalogue.models.get(model_id)
        if entry is None or entry["status"] == "removed":
            return JSONResponse(kie_body(404, "model not found"))
        return JSONResponse(
            kie_body(
                200, "success", {"model": model_id, "unit": "credits", "cases": entry["cases"]}
            )
        )

    @router.get("/api/v1/models/{model_id:path}/success-rate")
    async def success_rate(request: Request, model_id: str) -> Response:
        if refused := guard(request):
            return refused
        entry = sb.catalogue.models.get(model_id)
        if entry is None or entry["status"] == "removed":
            return JSONResponse(kie_body(404, "model not found"))
        data = {"model": model_id, "success_rate": entry["success_rate"], "window": "7d"}
        return JSONResponse(kie_body(200, "success", data))

    @router.post("/_sandbox/catalogue", dependencies=[Depends(sb.guard_control)])
    async def change(changes: dict[str, Any]) -> dict[str, Any]:
        """{"pause": [ids]}, {"resume": [ids]}, {"remove": [ids]}, {"add": {id: {"fields":
        {...}, "cases": [...]}}}, {"field": {"model", "name", "rule"}} (a changed or new
        field), {"price": {id: [cases]}}, {"reset": true}."""
        live = sb.catalogue
        if changes.get("reset"):
            sb.catalogue = live = LiveCatalogue.transcribed()
        for model_id in changes.get("pause", []):
            live.models[model_id]["status"] = "paused"
        for model_id in changes.get("resume", []):
            live.models[model_id]["status"] = "active"
        for model_id in changes.get("remove", []):
            live.models[model_id]["status"] = "removed"
        for model_id, entry in (changes.get("add") or {}).items():
            live.models[model_id] = {
                "status": "active",
                "fields": dict(entry.get("fields") or {}),
                "cases": list(entry.get("cases") or []),
                "success_rate": DEFAULT_SUCCESS_RATE,
            }
        if edit := changes.get("field"):
            live.models[edit["model"]]["fields"][edit["name"]] = dict(edit["rule"])
        for model_id, cases in (changes.get("price") or {}).items():
            live.models[model_id]["cases"] = list(cases)
        return {"models": len(live.models)}

    return router
