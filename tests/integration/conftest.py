"""The real stack: `soraq sandbox`, `soraq api` and `soraq worker` as processes, over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from soraq.localstack import LocalStack, local_stack

TERMINAL = {"succeeded", "failed"}


@dataclass
class Stack:
    api: httpx.Client
    sandbox: httpx.Client
    sandbox_url: str
    env: dict[str, str]
    var_dir: Path
    local: LocalStack
    webhook_secret: str

    def create(self, **body: Any) -> dict[str, Any]:
        response = self.api.post("/jobs", json=body)
        assert response.status_code == 202, response.text
        return dict(response.json())

    def wait(self, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.api.get(f"/jobs/{job_id}").json()
            if job["status"] in TERMINAL:
                return dict(job)
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")

    def calls(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        log = self.sandbox.get("/_sandbox/calls").json()["calls"]
        return [c for c in log if endpoint is None or c["endpoint"] == endpoint]

    def creates_for(self, prompt: str) -> int:
        return int(self.sandbox.get("/_sandbox/calls").json()["create_by_prompt"].get(prompt, 0))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    var_dir = tmp_path_factory.mktemp("stack")
    overrides = {
        "JOB_TIMEOUT": "6",
        "KIE_TIMEOUT": "2",
        "PENDING_GRACE": "5",
        "SANDBOX_HANG_SECONDS": "4",
        # Webhook receivers in tests are plain http on this machine, with a short schedule.
        "WEBHOOK_ALLOW_HTTP": "true",
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
        "WEBHOOK_RETRY_SCHEDULE": "0,0.5,0.5,0.5",
    }
    with local_stack(var_dir, **overrides) as running:
        try:
            key, secret = running.create_client("integration")
            with (
                httpx.Client(
                    base_url=running.api_url, timeout=10, headers={"authorization": f"Bearer {key}"}
                ) as api,
                httpx.Client(base_url=running.sandbox_url, timeout=10) as sandbox,
            ):
                yield Stack(
                    api, sandbox, running.sandbox_url, running.env, var_dir, running, secret
                )
        finally:
            print(running.log_tail())
