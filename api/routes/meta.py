from __future__ import annotations

import gzip
import hmac
import json
import os
import threading
import time
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from api.account_routes import read_health, routes
from api.deps import SessionDep, SettingsDep
from api.errors import Unauthorized, error_body
from api.health import (
    check_account,
    check_broker,
    check_database,
    check_storage,
)
from api.metrics import DatabaseCollector
from api.model_states import STATES
from catalogue import get_catalogue
from catalogue.accounts import accounts
from core.config import get_settings
from models.model_state import last_report

router = APIRouter(tags=["meta"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Database, migrations, broker and storage reachable; Kie accepting the account",
    responses={503: {"description": "not ready, with the reasons"}},
)
async def readyz(session: SessionDep) -> Response:
    database, broker = await check_database(session), await check_broker()
    account = await check_account(session) if database[0] else (True, "not checked")
    storage = await check_storage()
    checks = {
        "database": database[1],
        "broker": broker[1],
        "storage": storage[1],
        "kie_account": account[1],
    }
    results = (database, broker, storage, account)
    if all(ok for ok, _ in results):
        return JSONResponse({"status": "ready", "checks": checks})
    failing = "; ".join(reason for ok, reason in results if not ok)
    return JSONResponse(error_body("not_ready", failing, checks=checks), status_code=503)


_database_figures: tuple[float, bytes] = (0.0, b"")  # (monotonic time it expires, text)
_figures_lock = threading.Lock()


def _database_metrics(cache_seconds: float) -> bytes:
    """The figures read from the database, reused for METRICS_CACHE_SECONDS: a scrape storm
    costs one set of queries, not one per scrape."""
    global _database_figures
    with _figures_lock:
        expires, text = _database_figures
        if time.monotonic() < expires:
            return text
        database = CollectorRegistry()
        database.register(DatabaseCollector())
        text = generate_latest(database)
        _database_figures = (time.monotonic() + cache_seconds, text)
        return text


def _render_metrics() -> bytes:
    # Counters from every process of this host (multiprocess mode), then the database's view.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        process_metrics = generate_latest(registry)
    else:
        process_metrics = generate_latest(REGISTRY)
    return process_metrics + _database_metrics(get_settings().metrics_cache_seconds)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request, settings: SettingsDep) -> Response:
    if settings.metrics_token is not None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expected = settings.metrics_token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
            raise Unauthorized("A valid metrics token is required.")
    body = await anyio.to_thread.run_sync(_render_metrics)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


_MODELS_BODY: dict[str, tuple[Any, bytes, bytes]] = {}  # the last body: (its key, JSON, gzip)


@router.get(
    "/models",
    summary="The model catalogue",
    responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
)
async def models(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Every model: its input schema and roles, its price (Kie's when read, else the bundled
    table's) and status as Kie's live catalogue last said, success rates (Kie's published
    one, soraq's own over its last 100 finished jobs), and its routes — the upstream accounts
    serving it, by priority, each live or paused and why. Gzip-encoded when the client takes
    it; serialized once per change of what it shows (about 85 schemas)."""
    catalogue = get_catalogue()
    await STATES.refresh(session)
    await STATES.refresh_rates(session)
    report = await session.scalar(last_report())
    every = accounts(settings)
    health = await read_health(session, every)
    key = (STATES.read_at, STATES.rates_at, report.id if report is not None else None, health)
    cached = _MODELS_BODY.get("models")
    if cached is None or cached[0] != key:
        body = {
            "default_text_model": catalogue.default_text_model,
            "default_image_model": catalogue.default_image_model,
            "catalogue": {
                "models": len(catalogue.models),
                "live": sum(1 for m in catalogue.live if STATES.unavailable(m) is None),
                "checked_at": report.checked_at.isoformat() if report is not None else None,
                "drift": report.summary if report is not None else None,
            },
            "data": [
                {**STATES.describe(spec), "routes": routes(spec.id, every, health)}
                for spec in catalogue.models.values()
            ],
        }
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        cached = (key, raw, gzip.compress(raw, compresslevel=6))
        _MODELS_BODY["models"] = cached
    _, raw, packed = cached
    headers = {"vary": "accept-encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(
            packed, media_type="application/json", headers={**headers, "content-encoding": "gzip"}
        )
    return Response(raw, media_type="application/json", headers=headers)
