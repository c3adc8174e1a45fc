"""Control routes for tests and benchmarks, under `/_sandbox/`, and `/healthz`."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends

from sandbox.catalogue import LiveCatalogue
from sandbox.state import Sandbox
from sandbox.tasks import Task


def routes(sb: Sandbox) -> APIRouter:
    router = APIRouter()
    control = APIRouter(dependencies=[Depends(sb.guard_control)])

    @control.post("/_sandbox/topup")
    async def topup(change: dict[str, float]) -> dict[str, float]:
        """{"credits": N} adds N; {"set": N} sets the balance."""
        if "set" in change:
            sb.account.credits = float(change["set"])
        sb.account.refund(float(change.get("credits", 0)))
        return {"credits": sb.account.credits}

    @control.get("/_sandbox/calls")
    async def call_log() -> dict[str, Any]:
        return {"calls": sb.calls.log, "create_by_prompt": dict(sb.calls.create_by_prompt)}

    @control.get("/_sandbox/config")
    async def get_config() -> dict[str, Any]:
        return asdict(sb.config)

    @control.post("/_sandbox/config")
    async def set_config(changes: dict[str, Any]) -> dict[str, Any]:
        for name, value in changes.items():
            if hasattr(sb.config, name):
                setattr(sb.config, name, type(getattr(sb.config, name))(value))
        return asdict(sb.config)

    @control.post("/_sandbox/tasks")
    async def seed_tasks(seed: dict[str, Any]) -> dict[str, int]:
        """Tasks that exist at "Kie" without a createTask (for jobs a benchmark writes as rows):
        {"ids": [...], "model": "...", "duration": seconds}. Not counted as creates."""
        now = time.time()
        for task_id in seed["ids"]:
            sb.tasks[task_id] = Task(
                id=task_id,
                model=str(seed.get("model", "sora-2-text-to-video")),
                prompt="seeded",
                param={},
                created=now,
                duration=float(seed.get("duration", sb.config.duration)),
                faults=[],
                callback_url=None,
                base_url="",
            )
        return {"tasks": len(sb.tasks)}

    @control.post("/_sandbox/reset")
    async def reset() -> dict[str, bool]:
        sb.created_at.clear()
        sb.tasks.clear()
        sb.images.clear()
        sb.calls.log.clear()
        sb.calls.create_by_prompt.clear()
        sb.account.credits = sb.config.credits
        sb.catalogue = LiveCatalogue.transcribed()
        return {"ok": True}

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    router.include_router(control)
    return router
