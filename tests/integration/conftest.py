"""The real stack: `soraq sandbox`, `soraq api`, `soraq worker` (and `soraq beat` on Redis) as
processes, over HTTP — once on the embedded default (SQLite + file broker), once on
PostgreSQL + Redis, which this suite starts itself."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.services import (
    Postgres,
    Redis,
    S3Server,
    Unavailable,
    start_postgres,
    start_redis,
    start_s3,
)
from devstack.stack import LocalStack, local_stack

TERMINAL = {"succeeded", "failed", "canceled"}
EMBEDDED, PRODUCTION = "sqlite+filesystem", "postgres+redis"
ADMIN_TOKEN = "integration-admin-token"
_databases = itertools.count()


@dataclass
class Services:
    postgres: Postgres
    redis: Redis
    s3: S3Server


@dataclass
class Stack:
    api: httpx.Client
    sandbox: httpx.Client
    sandbox_url: str
    env: dict[str, str]
    var_dir: Path
    local: LocalStack
    webhook_secret: str
    backend: str
    services: Services | None

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

    def insert_job(self, **values: Any) -> str:
        """A job row made directly, owned by the suite's client: for states the API cannot
        produce on demand (a lost message, a crash mid-submit, a job held back)."""
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from models.base import utcnow
        from models.client import Client
        from models.db import make_engine
        from models.job import Job

        engine = make_engine(self.env["DATABASE_URL"])
        now = utcnow()
        try:
            with Session(engine) as session:
                client = session.scalars(select(Client).where(Client.name == "integration")).one()
                job = Job(
                    client_id=client.id,
                    created_at=now,
                    updated_at=now,
                    **{"model": "veo3.1-fast/text-to-video", "next_check_at": now, **values},
                )
                session.add(job)
                session.commit()
                return job.id
        finally:
            engine.dispose()

    def forget_auth_failures(self) -> None:
        """The admin throttle's count, cleared: a test that sent wrong admin tokens must not
        leave the next one a 429 for the rest of the minute."""
        from sqlalchemy import delete

        from models.admin import AdminAuthFailures
        from models.db import make_engine

        engine = make_engine(self.env["DATABASE_URL"])
        try:
            with engine.begin() as connection:
                connection.execute(delete(AdminAuthFailures))
        finally:
            engine.dispose()

    def creates_for(self, prompt: str) -> int:
        return int(self.sandbox.get("/_sandbox/calls").json()["create_by_prompt"].get(prompt, 0))


@pytest.fixture(scope="session")
def services(request: pytest.FixtureRequest) -> Iterator[Services | None]:
    try:
        redis = start_redis()
    except Unavailable as exc:
        _shout(request, f"Postgres+Redis integration run SKIPPED: {exc} (make test installs it)")
        yield None
        return
    try:
        postgres = start_postgres()
    except Unavailable as exc:
        redis.close()
        _shout(request, f"Postgres+Redis integration run SKIPPED: {exc}")
        yield None
        return
    try:
        s3 = start_s3()
    except Unavailable as exc:
        redis.close()
        postgres.close()
        _shout(request, f"Postgres+Redis+S3 integration run SKIPPED: {exc}")
        yield None
        return
    try:
        yield Services(postgres, redis, s3)
    finally:
        s3.close()
        postgres.close()
        redis.close()


@pytest.fixture
def postgres_url(services: Services | None) -> str:
    """A migrated PostgreSQL database of this test's own, for tests of what only concurrent
    transactions on Postgres show (no stack runs on it)."""
    if services is None:
        pytest.skip("PostgreSQL is not installed on this machine")
    from models.migrate import migrate

    url = services.postgres.create_database(f"bare_{next(_databases)}")
    migrate(url)
    return url


def _shout(request: pytest.FixtureRequest, line: str) -> None:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"!!! {line}", red=True, bold=True)


@pytest.fixture(scope="session", params=[EMBEDDED, PRODUCTION])
def stack(
    request: pytest.FixtureRequest,
    services: Services | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    with running_stack(request.param, services, tmp_path_factory.mktemp("stack")) as started:
        yield started


@pytest.fixture(autouse=True)
def stack_processes_survive(request: pytest.FixtureRequest) -> Iterator[None]:
    """A stack's process that dies during a test fails that test, named with its last log
    lines, and is started again: the shared stack stays whole for every later test (a dead
    worker once turned one failure into fifty timeouts and an hour of CI)."""
    yield
    stack = request.node.funcargs.get("stack")
    if isinstance(stack, Stack):
        dead = stack.local.revive_dead()
        if dead:
            pytest.fail(
                "died during this test (started again for the next):\n"
                + "\n".join(f"{name}: {why}" for name, why in dead.items())
            )


@contextmanager
def running_stack(
    backend: str, services: Services | None, var_dir: Path, **extra: str
) -> Iterator[Stack]:
    """A whole soraq on `backend` (skipped when its services are missing), with the suite's
    fast settings plus `extra`."""
    overrides = {
        "JOB_TIMEOUT": "6",
        "ACCOUNT_PROBE_INTERVAL": "1",
        "KIE_TIMEOUT": "2",
        "PENDING_GRACE": "5",
        "SANDBOX_HANG_SECONDS": "4",
        # Short leases, so that work abandoned by a killed worker comes back within seconds.
        "SUBMIT_LEASE": "5",
        "CLAIM_LEASE": "3",
        # Webhook receivers in tests are plain http on this machine, with a short schedule.
        "WEBHOOK_ALLOW_HTTP": "true",
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
        # The sandbox's result files are on this machine too: soraq's own allowance.
        "UPSTREAM_ALLOWED_NETWORKS": "127.0.0.1/32",
        "WEBHOOK_RETRY_SCHEDULE": "0,0.5,0.5,0.5",
        "WEBHOOK_TIMEOUT": "3",
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "LOG_FORMAT": "json",
        "AUTH_CACHE_SECONDS": "1",
        # The suite makes hundreds of jobs a minute with one client; the limit has its own test.
        "CLIENT_CREATE_RATE": "100000/1m",
        "METRICS_CACHE_SECONDS": "0",  # tests read /metrics right after a change
        "KIE_BALANCE_INTERVAL": "1",  # the balance gauge follows the sandbox's account
        # A killed worker's archiving comes back after ARCHIVE_TIMEOUT + CLAIM_LEASE.
        "ARCHIVE_TIMEOUT": "10",
        # Kie's limits, scaled down to seconds: the sandbox refuses excess like Kie does. soraq
        # keeps 10 % under it here: at a 1 s window the few tens of milliseconds between a
        # token and the call reaching "Kie" on two loaded cores (now with archiving in the
        # same workers) are more than the 0.1 s margin made for Kie's real 10 s window.
        "KIE_CREATE_RATE": "36/1s",
        "SANDBOX_CREATE_RATE": "40/1s",
        "KIE_MAX_IN_FLIGHT": "100",
        "SANDBOX_MAX_CONCURRENT": "100",
    }
    overrides.update(extra)
    if backend == PRODUCTION:
        if services is None:
            pytest.skip("PostgreSQL or Redis is not installed on this machine")
        number = next(_databases)
        overrides["DATABASE_URL"] = services.postgres.create_database(f"soraq_{number}")
        # A Redis database of its own: two stacks alive at once must not share a broker
        # queue (one's worker would take the other's tasks) or a create window.
        overrides["CELERY_BROKER_URL"] = services.redis.url.rsplit("/", 1)[0] + f"/{number % 16}"
        # Result videos go to a real S3-protocol server, a bucket per stack.
        bucket = f"soraq-{number}"
        services.s3.create_bucket(bucket)
        overrides.update(services.s3.env(bucket))
    with local_stack(var_dir, **overrides) as running:
        try:
            key, secret = running.create_client("integration")
            with (
                httpx.Client(
                    base_url=running.api_url, timeout=10, headers={"authorization": f"Bearer {key}"}
                ) as api,
                httpx.Client(
                    base_url=running.sandbox_url, timeout=10, headers=running.sandbox_headers
                ) as sandbox,
            ):
                yield Stack(
                    api,
                    sandbox,
                    running.sandbox_url,
                    running.env,
                    var_dir,
                    running,
                    secret,
                    backend,
                    services,
                )
        finally:
            print(running.log_tail())
