"""The real stack: `soraq sandbox`, `soraq api` and `soraq worker` as processes, over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

TERMINAL = {"succeeded", "failed"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@dataclass
class Stack:
    api: httpx.Client
    sandbox: httpx.Client
    sandbox_url: str
    env: dict[str, str]
    var_dir: Path

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


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "soraq.cli", *args],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    var_dir = tmp_path_factory.mktemp("stack")
    api_port, sandbox_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = {
        **os.environ,
        "VAR_DIR": str(var_dir),
        "DATABASE_URL": f"sqlite:///{var_dir / 'soraq.db'}",
        "CELERY_BROKER_URL": "",
        "KIE_BASE_URL": sandbox_url,
        "IMGBB_BASE_URL": sandbox_url,
        "KIE_API_KEY": "sandbox-kie-key",
        "IMGBB_API_KEY": "sandbox-imgbb-key",
        "PUBLIC_URL": f"http://127.0.0.1:{api_port}",
        # Fast clocks, so that the suite takes seconds.
        "SWEEP_INTERVAL": "0.5",
        "CHECK_INITIAL_DELAY": "0.3",
        "CHECK_MAX_INTERVAL": "1",
        "CALLBACK_CHECK_INTERVAL": "1",
        "RETRY_BASE_DELAY": "0.2",
        "RETRY_MAX_DELAY": "2",
        "JOB_TIMEOUT": "6",
        "KIE_TIMEOUT": "2",
        "PENDING_GRACE": "5",
        "SANDBOX_DURATION": "0.5",
        "SANDBOX_HANG_SECONDS": "4",
    }
    logs = var_dir / "logs"
    logs.mkdir()
    subprocess.run([sys.executable, "-m", "soraq.cli", "migrate"], env=env, check=True)
    processes = [
        _start(["sandbox", "--port", str(sandbox_port)], env, logs / "sandbox.log"),
        _start(["api", "--port", str(api_port)], env, logs / "api.log"),
        _start(["worker"], env, logs / "worker.log"),
    ]
    try:
        wait_http(f"{sandbox_url}/healthz")
        wait_http(f"http://127.0.0.1:{api_port}/healthz")
        with (
            httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=10) as api,
            httpx.Client(base_url=sandbox_url, timeout=10) as sandbox,
        ):
            yield Stack(api, sandbox, sandbox_url, env, var_dir)
    finally:
        for process in reversed(processes):
            _stop(process)
        for log in logs.iterdir():
            print(f"----- {log.name} (last lines) -----")
            print("\n".join(log.read_text(errors="replace").splitlines()[-25:]))
