"""Run a whole soraq on this machine as child processes: the sandbox, the API, a worker for
job steps and one for webhook deliveries.

One implementation for everyone: the integration tests and the benchmarks use `local_stack`
(children logging to files, fast clocks); `soraq dev` (what `make run` starts) is a thin
interactive wrapper over the same pieces (`sandbox_env`, `LocalStack.start`, `supervise`).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from core.config import (
    ARCHIVE_QUEUE,
    JOBS_QUEUE,
    SANDBOX_IMGBB_KEY,
    SANDBOX_KIE_KEY,
    WEBHOOK_QUEUE,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    """Until something listens on 127.0.0.1:`port` (RuntimeError after `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def sandbox_env(sandbox_url: str, api_url: str, control_token: str) -> dict[str, str]:
    """What a soraq needs to run against the bundled sandbox instead of Kie and imgbb (and
    the token the sandbox's `/_sandbox/` control routes take, for tests and benchmarks)."""
    return {
        "SANDBOX_CONTROL_TOKEN": control_token,
        "KIE_BASE_URL": sandbox_url,
        "IMGBB_BASE_URL": sandbox_url,
        "KIE_FILE_UPLOAD_URL": sandbox_url,
        "TEST_MODE_KIE_URL": sandbox_url,
        "KIE_API_KEY": SANDBOX_KIE_KEY,
        "IMGBB_API_KEY": SANDBOX_IMGBB_KEY,
        "PUBLIC_URL": api_url,
        # The sandbox serves its result files from this machine: let the archive step fetch
        # them (the SSRF guard refuses loopback otherwise).
        "UPSTREAM_ALLOWED_NETWORKS": "127.0.0.1/32",
        # …and webhook receivers you try it with are likely to be on this machine too.
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
    }


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
    # How each child was started, so that one found dead can be started again.
    commands: dict[str, tuple[tuple[str, ...], bool, dict[str, str] | None]] = field(
        default_factory=dict
    )

    @property
    def sandbox_headers(self) -> dict[str, str]:
        """What a call to the sandbox's control routes carries."""
        return {"authorization": f"Bearer {self.env.get('SANDBOX_CONTROL_TOKEN', '')}"}

    def start(
        self, name: str, *args: str, to_file: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """`soraq <args>` as a child (with `env` over the stack's): its output in
        logs/<name>.log, or (to_file=False) on this terminal."""
        log = (self.var_dir / "logs" / f"{name}.log").open("ab") if to_file else None
        process = subprocess.Popen(
            [sys.executable, "-m", "soraq.cli", *args],
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT if to_file else None,
            start_new_session=True,  # its own group: a stop reaches the worker's children too
        )
        self.processes[name] = process
        self.commands[name] = (args, to_file, env)
        return process

    def revive_dead(self) -> dict[str, str]:
        """Start again every child that exited without being stopped; for each, its exit code
        and the end of its log — why it died (a test that killed one without restarting it
        would otherwise leave every later test waiting on a stack that cannot work)."""
        dead = {}
        for name, process in list(self.processes.items()):
            if process.poll() is None:
                continue
            log = self.var_dir / "logs" / f"{name}.log"
            tail = log.read_text(errors="replace").splitlines()[-5:] if log.exists() else []
            dead[name] = f"exit code {process.returncode}: " + "\n".join(t[:2000] for t in tail)
            args, to_file, env = self.commands[name]
            self.start(name, *args, to_file=to_file, env=env)
        return dead

    def start_soraq(self, api_port: int, host: str = "127.0.0.1", to_file: bool = True) -> None:
        """The API, a worker for job steps and the sweep, one for webhook deliveries (a slow
        receiver never holds a thread a job needs) and one for result downloads (nor does a
        slow source); beat too on Redis."""
        self.start("api", "api", "--host", host, "--port", str(api_port), to_file=to_file)
        self.start("worker", "worker", "--queues", JOBS_QUEUE, to_file=to_file)
        self.start("webhooks", "worker", "--queues", WEBHOOK_QUEUE, "--no-beat", to_file=to_file)
        self.start("archive", "worker", "--queues", ARCHIVE_QUEUE, "--no-beat", to_file=to_file)
        if self.env.get("CELERY_BROKER_URL", "").startswith("redis"):
            self.start(
                "beat", "beat", to_file=to_file
            )  # the embedded broker's worker runs beat itself

    def supervise(self, stopping: list[bool]) -> int:
        """Until `stopping[0]` is set (by a signal handler) or a child exits: then stop them
        all. 0, or 1 when a child died first."""
        code = 0
        while not stopping[0]:
            for name, child in self.processes.items():
                if child.poll() is not None:
                    print(f"soraq: {name} exited with {child.returncode}; stopping the others")
                    stopping[0], code = True, 1
                    break
            time.sleep(0.2)
        self.stop_all()
        return code

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

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

    def create_client(
        self, name: str, max_active_jobs: int = 10_000, *options: str
    ) -> tuple[str, str]:
        """A client through the real CLI; returns its API key and webhook secret."""
        out = self.cli(
            "clients", "create", name, "--max-active-jobs", str(max_active_jobs), *options
        )
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
        **sandbox_env(sandbox_url, api_url, secrets.token_urlsafe(24)),
        "PROMETHEUS_MULTIPROC_DIR": str(var_dir / "metrics"),
        **FAST,
        **overrides,
    }
    if not callbacks:
        env["PUBLIC_URL"] = ""
    stack = LocalStack(api_url, sandbox_url, env, var_dir, {})
    subprocess.run(
        [sys.executable, "-m", "soraq.cli", "migrate"], env=env, check=True, capture_output=True
    )
    try:
        stack.start("sandbox", "sandbox", "--port", str(sandbox_port))
        stack.start_soraq(api_port)
        wait_http(f"{sandbox_url}/healthz")
        wait_http(f"{api_url}/healthz")
        yield stack
    finally:
        stack.stop_all()
