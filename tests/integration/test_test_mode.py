"""Test-mode keys: their jobs run on the sandbox whatever the server's Kie settings, fault
keywords included, cost nothing, show `livemode: false`, and a fault that would be a fact
about the account (a 401, a 402) fails only that job — it never pauses live admission."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from devstack.receiver import webhook_receiver
from tests.integration.conftest import ADMIN_TOKEN, EMBEDDED, Services, Stack, running_stack


@pytest.fixture(scope="module")
def dead_kie_stack(
    services: Services | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    # The server's own Kie is unreachable (nothing listens on port 9): only test-mode jobs,
    # which go to the sandbox, can succeed here.
    with running_stack(
        EMBEDDED,
        services,
        tmp_path_factory.mktemp("test-mode"),
        KIE_BASE_URL="http://127.0.0.1:9",
        KIE_API_KEY="a-real-looking-live-key",
        KIE_TIMEOUT="1",
    ) as stack:
        yield stack


def client_with_a_test_key(stack: Stack) -> tuple[httpx.Client, str]:
    key, secret = stack.local.create_client(f"tester-{uuid.uuid4().hex[:6]}", 1000, "--test")
    assert key.startswith("sk_test_")
    api = httpx.Client(
        base_url=str(stack.api.base_url), headers={"authorization": f"Bearer {key}"}, timeout=10
    )
    return api, secret


def test_a_test_key_runs_on_the_sandbox_for_free_and_says_so(dead_kie_stack: Stack) -> None:
    stack = dead_kie_stack
    api, secret = client_with_a_test_key(stack)
    with webhook_receiver() as receiver:
        path = f"/test-{uuid.uuid4().hex[:6]}"
        job = api.post(
            "/jobs", json={"prompt": "Try me", "webhook_url": receiver.script(path)}
        ).json()
        assert job["livemode"] is False
        done = api.get(f"/jobs/{job['id']}", headers={"prefer": "wait=30"}, timeout=40).json()
        assert done["status"] == "succeeded", done
        assert done["usage"]["credits_charged"] == 0
        assert done["usage"]["credits_estimated"] == 0
        for _ in range(100):
            if receiver.received.get(path):
                break
            time.sleep(0.1)
        [delivery] = receiver.received[path]
    event = Webhook(secret).verify(delivery.body, delivery.headers)
    assert event["data"]["livemode"] is False
    # The live client's jobs are unaffected in their own way: they cannot reach Kie here.
    live = stack.api.post("/jobs", json={"prompt": "Live one"}).json()
    assert live["livemode"] is True


def test_an_account_fault_in_test_mode_fails_that_job_and_pauses_nothing(
    dead_kie_stack: Stack,
) -> None:
    stack = dead_kie_stack
    api, _ = client_with_a_test_key(stack)
    refused = api.post("/jobs", json={"prompt": "No credits [kie:402]"}).json()
    done = api.get(f"/jobs/{refused['id']}", headers={"prefer": "wait=30"}, timeout=40).json()
    assert done["status"] == "failed", done
    # Admission was not paused for the account: the next test job goes straight through.
    after = api.post(
        "/jobs", json={"prompt": "Still fine"}, headers={"prefer": "wait=30"}, timeout=40
    )
    assert after.status_code == 200, after.text
    assert after.json()["status"] == "succeeded"
    stats = stack.api.get("/admin/stats", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert stats.json()["kie_credits"]["paused"] is None
    # The sandbox's balance (a test job's callback reports one) is not the account's.
    assert stats.json()["kie_credits"]["remaining"] is None


def _set_live_pause(stack: Stack, reason: str | None, probe_in: float = 0.0) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from models.account_queries import STATE
    from models.base import utcnow
    from models.db import make_engine
    from models.scheduler import SchedulerState

    engine = make_engine(stack.env["DATABASE_URL"])
    try:
        with engine.begin() as connection:
            now = utcnow()
            connection.execute(
                update(SchedulerState)
                .where(SchedulerState.name == STATE)
                .values(
                    account_reason=reason,
                    account_paused_at=now if reason else None,
                    account_probe_at=now + timedelta(seconds=probe_in) if reason else None,
                    account_probe_job=None,
                )
            )
    finally:
        engine.dispose()


def _live_pause(stack: Stack) -> tuple[str | None, str | None]:
    from sqlalchemy import select

    from models.account_queries import STATE
    from models.db import make_engine
    from models.scheduler import SchedulerState

    engine = make_engine(stack.env["DATABASE_URL"])
    try:
        with engine.connect() as connection:
            row = connection.execute(
                select(SchedulerState.account_reason, SchedulerState.account_probe_job).where(
                    SchedulerState.name == STATE
                )
            ).one()
            return row.account_reason, row.account_probe_job
    finally:
        engine.dispose()


def test_test_mode_jobs_run_through_a_live_pause_and_never_end_it(dead_kie_stack: Stack) -> None:
    """Issue 24, item 8: while the live account is paused (no credits), test-mode jobs are
    admitted on their own, are never the account's probe, and succeeding on the sandbox
    does not resume live admission."""
    stack = dead_kie_stack
    api, _ = client_with_a_test_key(stack)
    stack.api.get("/healthz")
    _set_live_pause(stack, "kie_insufficient_credits", probe_in=3600)  # no live probe soon
    live: dict[str, str] = {}
    try:
        live = stack.api.post("/jobs", json={"prompt": f"Live {uuid.uuid4().hex[:6]}"}).json()
        tried = api.post(
            "/jobs", json={"prompt": "Through the pause"}, headers={"prefer": "wait=30"}, timeout=40
        )
        assert tried.status_code == 200, tried.text
        assert tried.json()["status"] == "succeeded"
        assert tried.json().get("waiting_reason") is None
        # The live account is still paused, and its job still waits for it.
        reason, probe = _live_pause(stack)
        assert reason == "kie_insufficient_credits"
        assert probe != tried.json()["id"]
        waiting = stack.api.get(f"/jobs/{live['id']}").json()
        assert waiting["status"] == "queued"
        assert waiting["waiting_reason"] == "kie_insufficient_credits"
        # A probe is due now: it goes to a live job, never to a test-mode one.
        _set_live_pause(stack, "kie_insufficient_credits", probe_in=0)
        again = api.post(
            "/jobs", json={"prompt": "Beside the probe"}, headers={"prefer": "wait=30"}, timeout=40
        )
        assert again.json()["status"] == "succeeded"
        reason, probe = _live_pause(stack)
        assert reason == "kie_insufficient_credits"
        assert probe not in (tried.json()["id"], again.json()["id"])  # a live job, or none yet
    finally:
        _set_live_pause(stack, None)
        if live:
            stack.api.post(f"/jobs/{live['id']}/cancel")


def test_a_server_without_a_sandbox_refuses_test_keys(
    services: Services | None, tmp_path: Path
) -> None:
    with running_stack(EMBEDDED, services, tmp_path, TEST_MODE_KIE_URL="") as stack:
        api, _ = client_with_a_test_key(stack)
        response = api.post("/jobs", json={"prompt": "Anyone there?"})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "test_mode_unavailable"
