from __future__ import annotations

import os
from typing import Any

import anyio.to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from api.deps import SessionDep
from api.errors import error_body
from api.health import DatabaseCollector, check_account, check_broker, check_database
from catalogue import get_catalogue

router = APIRouter(tags=["meta"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Database reachable, migrations at head, broker reachable",
    responses={503: {"description": "not ready, with the reasons"}},
)
async def readyz(session: SessionDep) -> Response:
    database, broker = await check_database(session), await check_broker()
    account = await check_account(session) if database[0] else (True, "not checked")
    checks = {"database": database[1], "broker": broker[1], "kie_account": account[1]}
    if database[0] and broker[0] and account[0]:
        return JSONResponse({"status": "ready", "checks": checks})
    failing = "; ".join(reason for ok, reason in (database, broker, account) if not ok)
    return JSONResponse(error_body("not_ready", failing, checks=checks), status_code=503)


def _render_metrics() -> bytes:
    # Counters from every process of this host (multiprocess mode), then the database's view.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        process_metrics = generate_latest(registry)
    else:
        process_metrics = generate_latest(REGISTRY)
    database = CollectorRegistry()
    database.register(DatabaseCollector())
    return process_metrics + generate_latest(database)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    body = await anyio.to_thread.run_sync(_render_metrics)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/models", summary="The model catalogue")
async def models() -> dict[str, Any]:
    catalogue = get_catalogue()
    return {
        "default_text_model": catalogue.default_text_model,
        "default_image_model": catalogue.default_image_model,
        "data": [spec.describe() for spec in catalogue.models.values()],
    }
