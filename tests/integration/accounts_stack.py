"""A running soraq with several upstream accounts (UPSTREAMS_FILE), each served by a sandbox
of its own that holds its own key: what the multi-account tests (test_accounts, test_fal)
share — starting it, each sandbox's call log, and the rows' accounts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from devstack.stack import free_port, wait_http
from models.db import make_engine
from models.job import Job
from tests.integration.conftest import Services, Stack, running_stack


class AccountSandboxes:
    """The stack, and each account's sandbox by account name."""

    def __init__(self, stack: Stack, ports: dict[str, int]) -> None:
        self.stack = stack
        self.sandboxes = {
            name: httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                timeout=10,
                headers=stack.local.sandbox_headers,
            )
            for name, port in ports.items()
        }

    def calls(self, name: str, endpoint: str = "createTask") -> list[dict[str, Any]]:
        """Account `name`'s calls to `endpoint`, as its sandbox logged them."""
        log = self.sandboxes[name].get("/_sandbox/calls").json()["calls"]
        return [c for c in log if c["endpoint"] == endpoint]

    def rows(self, job_ids: list[str]) -> dict[str, Job]:
        engine = make_engine(self.stack.env["DATABASE_URL"])
        try:
            with Session(engine) as session:
                query = select(Job).where(Job.id.in_(job_ids))
                found = {job.id: job for job in session.scalars(query)}
                session.expunge_all()
                return found
        finally:
            engine.dispose()


def sandbox_ports(*names: str) -> dict[str, int]:
    return {name: free_port() for name in names}


@contextmanager
def stack_with_accounts(
    backend: str,
    services: Services | None,
    folder: Path,
    accounts: str,
    keys: dict[str, tuple[int, str]],
    **extra: str,
) -> Iterator[Stack]:
    """`accounts`: the UPSTREAMS_FILE's text; `keys`: each account's sandbox, by account
    name — its port and the key it accepts (the variables the file's `key_env` names come in
    `extra`, with the rest of the settings)."""
    upstreams = folder / "upstreams.toml"
    upstreams.write_text(accounts)
    with running_stack(backend, services, folder, UPSTREAMS_FILE=str(upstreams), **extra) as s:
        for name, (port, key) in keys.items():
            env = {"SANDBOX_ACCOUNT_KEY": key}
            s.local.start(f"sandbox-{name}", "sandbox", "--port", str(port), env=env)
        for port, _ in keys.values():
            wait_http(f"http://127.0.0.1:{port}/healthz")
        yield s
