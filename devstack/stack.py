"""Run a whole soraq on this machine as child processes: the sandbox, the API, a worker for
job steps and one for webhook deliveries.

Used by the integration tests and the benchmarks; `soraq dev` is the interactive sibling.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from core.config import JOBS_QUEUE, SANDBOX_IMGBB_KEY, SANDBOX_KIE_KEY, WEBHOOK_QUEUE


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
    raise RuntimeError(f"{url} did not come up within {timeout} s")


@dataclass
class LocalStack:
    api_url: str
    sandbox_url: str
    env: dict[str, str]
    var_dir: Path
    processes: dict[str, subprocess.Popen[bytes]]

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.var_dir / "logs" / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "soraq.cli", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: a stop reaches the worker's children too
        )
        self.processes[name] = process
        return process

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(name)
        if process.poll() is None:
            os.killpg(process.pid, sig)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def send_task(self, name: str, *args: object) -> None:
        """Publish a task to this stack's broker, as a stray or duplicate message would arrive."""
        from broker.app import create_celery
        from core.config import Settings

        settings = Settings(var_dir=self.var_dir, celery_broker_url=self.env["CELERY_BROKER_URL"])
        celery = create_celery(settings)
        try:
            celery.send_task(name, args)
        finally:
            celery.close()

    def cli(self, *args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "soraq.cli", *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def create_client(self, name: str, max_active_jobs: int = 10_000) -> tuple[str, str]:
        """A client through the real CLI; returns its API key and webhook secret."""
        out = self.cli("clients", "create", name, "--max-active-jobs", str(max_active_jobs))
        shown = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        return shown["API key"].strip(), shown["webhook secret"].strip()

    def log_tail(self, lines: int = 25) -> str:
        out = []
        for log in sorted((self.var_dir / "logs").iterdir()):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"----- {log.name} (last {lines} lines) -----\n" + "\n".join(tail))
        return "\n".join(out)


# Fast clocks, so that a test or benchmark takes seconds, not minutes.
FAST = {
    "SWEEP_INTERVAL": "0.5",
    "CHECK_INITIAL_DELAY": "0.3",
    "CHECK_MAX_INTERVAL": "1",
    "CALLBACK_CHECK_INTERVAL": "1",
    "RETRY_BASE_DELAY": "0.2",
    "RETRY_MAX_DELAY": "2",
    "SANDBOX_DURATION": "0.5",
    # Tests and benchmarks submit hundreds of jobs a minute with one client.
    "CLIENT_CREATE_RATE": "100000000/1s",
}


@contextmanager
def local_stack(var_dir: Path, *, callbacks: bool = True, **overrides: str) -> Iterator[LocalStack]:
    api_port, sandbox_port = free_port(), free_port()
    api_url, sandbox_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{sandbox_port}"
    (var_dir / "logs").mkdir(parents=True, exist_ok=True)
    (var_dir / "metrics").mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "VAR_DIR": str(var_dir),
        "DATABASE_URL": f"sqlite:///{var_dir / 'soraq.db'}",
        "CELERY_BROKER_URL": "",
        "KIE_BASE_URL": sandbox_url,
        "IMGBB_BASE_URL": sandbox_url,
        "KIE_API_KEY": SANDBOX_KIE_KEY,
        "IMGBB_API_KEY": SANDBOX_IMGBB_KEY,
        "PUBLIC_URL": api_url if callbacks else "",
        "PROMETHEUS_MULTIPROC_DIR": str(var_dir / "metrics"),
        # The sandbox hands out result files from this machine: let the archive step fetch them.
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
        **FAST,
        **overrides,
    }
    stack = LocalStack(api_url, sandbox_url, env, var_dir, {})
    subprocess.run(
        [sys.executable, "-m", "soraq.cli", "migrate"], env=env, check=True, capture_output=True
    )
    try:
        stack.start("sandbox", "sandbox", "--port", str(sandbox_port))
        stack.start("api", "api", "--port", str(api_port))
        stack.start("worker", "worker", "--queues", JOBS_QUEUE)
        stack.start("webhooks", "worker", "--queues", WEBHOOK_QUEUE, "--no-beat")
        if env["CELERY_BROKER_URL"].startswith("redis"):
            stack.start("beat", "beat")  # the embedded broker's worker runs beat itself
        wait_http(f"{sandbox_url}/healthz")
        wait_http(f"{api_url}/healthz")
        yield stack
    finally:
        for name in list(stack.processes):
            stack.stop(name)
