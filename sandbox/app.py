"""The sandbox server: Kie's jobs API (`/api/v1/jobs/...`), Veo's (`/api/v1/veo/...`) and
Runway's (`/api/v1/runway/...`) endpoints, Kie's account and files, imgbb (`/1/upload`), and
control routes under `/_sandbox/` for tests and benchmarks — one router per API family it
imitates, over one shared state (sandbox.state)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from sandbox import (
    catalogue,
    control,
    fal_queue,
    imgbb,
    kie_files,
    kie_jobs,
    kie_runway,
    kie_uploads,
    kie_veo,
)
from sandbox.state import Sandbox
from sandbox.tasks import SandboxConfig


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    sb = Sandbox(config or SandboxConfig.from_env())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        sb.http["client"] = httpx.AsyncClient(timeout=10)
        yield
        for pending in sb.background:
            pending.cancel()
        await sb.http["client"].aclose()

    app = FastAPI(title="soraq sandbox (Kie.ai + imgbb stand-in)", lifespan=lifespan)
    for family in (
        kie_jobs,
        kie_veo,
        kie_runway,
        kie_files,
        kie_uploads,
        catalogue,
        imgbb,
        fal_queue,
        control,
    ):
        app.include_router(family.routes(sb))
    return app
