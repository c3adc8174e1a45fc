"""The ingest baseline: a bare FastAPI route that inserts one row into the same jobs table,
with the same async engine and pool as soraq's API. Run by bench/ingest.py."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import insert

from models.base import utcnow
from models.db import make_async_engine
from models.job import Job


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.engine = make_async_engine(os.environ["DATABASE_URL"])
    yield
    await app.state.engine.dispose()


app = FastAPI(lifespan=lifespan)


@app.post("/jobs", status_code=202)
async def create(body: dict[str, object]) -> dict[str, str]:
    now = utcnow()
    job_id = "job_" + secrets.token_hex(12)
    async with app.state.engine.begin() as connection:
        await connection.execute(
            insert(Job).values(
                id=job_id,
                status="queued",
                model="veo3.1-fast/text-to-video",
                input=body,
                callback_token=secrets.token_urlsafe(32),
                failures=0,
                priority=1,
                created_at=now,
                updated_at=now,
                next_check_at=now,
            )
        )
    return {"id": job_id}
