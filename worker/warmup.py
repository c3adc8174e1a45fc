"""What a worker process does once, before its first task, so that the first jobs after a
start or a deploy do not pay for it: their webhooks came ~0.8 s after the job ended on a
fresh stack, against ~0.1 s a minute later. The costs are each small — configuring the ORM's
mappers, the first statement of each kind compiled, a database connection per thread, the CA
bundle loaded, an HTTP client's first async use, the first serialization of a job's view —
but the first burst of tasks pays all of them at once, on threads that share the GIL.

Nothing here writes anything; a failure is logged and the worker starts anyway (the first
tasks then simply pay the cost themselves).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import ExitStack

import httpx
from sqlalchemy import text
from sqlalchemy.orm import configure_mappers

from core.config import Settings
from models.base import utcnow
from models.client import Client
from models.db import get_engine, session_scope
from models.job import Job
from models.webhook import WebhookDelivery
from upstreams.http import tls_context
from views.jobs import JobOut

log = logging.getLogger(__name__)
_NO_ROW = "warm-up: no such row"


def warm_up(settings: Settings, threads: int) -> None:
    try:
        configure_mappers()
        tls_context()
        asyncio.run(_first_async_client())
        _open_connections(threads)
        with session_scope() as session:  # the reads every job step and delivery starts with
            for model in (Job, WebhookDelivery, Client):
                session.get(model, _NO_ROW)
        _first_view()
    except Exception as exc:  # the database may be down at start: the sweep waits it out
        log.warning("worker warm-up incomplete (%s); the first tasks will be slower", exc)


async def _first_async_client() -> None:
    # The webhook sender's path: an event loop, an async client and its transport, closed.
    async with httpx.AsyncClient(verify=tls_context()):
        pass


def _open_connections(threads: int) -> None:
    """One pooled connection per worker thread, up to the pool's size, each opened once."""
    engine = get_engine()
    wanted = min(threads, engine.pool.size())  # type: ignore[attr-defined]
    with ExitStack() as stack:
        for _ in range(wanted):
            stack.enter_context(engine.connect()).execute(text("SELECT 1"))


def _first_view() -> None:
    """A job's view, serialized as a webhook body is: pydantic builds its serializers then."""
    now = utcnow()
    job = Job(
        id="job_warmup",
        status="queued",
        model="",
        input={"prompt": ""},
        failures=0,
        priority=1,
        livemode=True,
        created_at=now,
        updated_at=now,
    )
    JobOut.of(job).model_dump(mode="json", exclude={"webhook"})
