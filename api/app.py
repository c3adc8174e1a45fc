from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.middleware.sessions import SessionMiddleware

from api import errors
from api.auth import KeyCache
from api.events import EventHub
from api.limits import BodySizeLimit
from api.nudge import Nudger
from api.routes import admin, batches, content, dashboard, fal, jobs, kie, meta, usage
from api.scoped import UnderPrefix
from api.security_headers import DashboardHeaders
from api.sessions import session_signing_key
from catalogue.accounts import accounts
from core import tracing
from core.auth_events import file_epoch, listen
from core.config import get_settings
from core.logs import setup_logging
from models.db import async_session_factory, make_async_engine

log = logging.getLogger(__name__)


def _send_nudge() -> None:
    from broker.app import celery_app  # the Celery app only, not the tasks

    # No publish retries here: a request must not wait on a broker. The sweep covers a miss.
    celery_app.send_task("soraq.dispatch", retry=False, expires=60)


def _send_check(job_id: str) -> None:
    from broker.app import celery_app

    celery_app.send_task("soraq.check_now", (job_id,), retry=False, expires=60)


def _send_upstream_cancel(job_id: str) -> None:
    from broker.app import celery_app

    celery_app.send_task("soraq.cancel_upstream", (job_id,), retry=False, expires=300)


async def _open_connections(engine: AsyncEngine, at_most: int = 5) -> None:
    async def one() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    try:
        await asyncio.gather(*(one() for _ in range(min(at_most, engine.pool.size()))))  # type: ignore[attr-defined]
    except Exception as exc:  # the database is down: requests will say so, one by one
        log.warning("could not open database connections at start: %s", exc)


def create_app() -> FastAPI:
    settings = get_settings()
    accounts(settings)  # a broken UPSTREAMS_FILE stops the start here, naming what is wrong
    setup_logging(settings.log_level, settings.resolved_log_format)
    tracing.setup("soraq-api")  # before the engine and any HTTP client are made

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_async_engine(settings.resolved_database_url)
        app.state.sessionmaker = async_session_factory(engine)
        app.state.events = EventHub(
            app.state.sessionmaker,
            settings.resolved_database_url,
            client_max_held=settings.client_max_held,
            max_held=settings.max_held,
            key_check_interval=settings.auth_cache_seconds,
        )
        app.state.nudger = Nudger(
            _send_nudge, send_check=_send_check, send_cancel=_send_upstream_cancel
        )
        # Key changes are announced on Redis (a listening thread), else through a file that
        # every request stats.
        on_redis = settings.resolved_broker_url.startswith("redis")
        app.state.keys = KeyCache(
            settings.auth_cache_seconds, None if on_redis else file_epoch(settings)
        )
        stop_listening = listen(settings, app.state.keys.clear)
        # Ready for the first burst: the dispatcher looks at the queue at once (which also
        # opens the broker connection the first callback's direct check will use), and a few
        # database connections are opened before any request waits on one.
        app.state.nudger.nudge()
        await _open_connections(engine)
        yield
        if stop_listening is not None:
            stop_listening.set()
        await app.state.nudger.drain()
        await app.state.events.stop()
        await engine.dispose()

    app = FastAPI(
        title="soraq",
        version="0.1.0",
        description="Durable, observable jobs for AI video generation through Kie.ai.",
        lifespan=lifespan,
        # Starlette's slash redirects build an absolute URL from the request's Host header
        # (`GET /admin/` with `Host: evil.example` → `Location: http://evil.example/admin`):
        # none here; the dashboard's own `/admin/` answers with a relative one.
        redirect_slashes=False,
    )
    errors.install(app)
    tracing.instrument_app(app)
    app.add_middleware(BodySizeLimit)
    app.add_middleware(DashboardHeaders)
    app.add_middleware(
        UnderPrefix,
        middleware=SessionMiddleware,
        prefix="/admin",  # the dashboard's login; the API itself takes no cookies
        # No admin token: a random key nobody knows, and no session is accepted anyway.
        secret_key=session_signing_key(settings) or secrets.token_hex(32),
        session_cookie="soraq_admin",
        max_age=8 * 3600,
        same_site="strict",
        https_only=settings.environment == "production",
    )
    app.include_router(meta.router)
    app.include_router(jobs.router)
    app.include_router(batches.router)
    app.include_router(content.router)
    app.include_router(kie.router)
    app.include_router(fal.router)
    app.include_router(admin.router)
    app.include_router(usage.router)
    app.include_router(dashboard.router)
    return app
