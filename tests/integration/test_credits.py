"""Credits and budgets on the real stack: a budget refuses the job that would overspend it
before anything reaches Kie, reservations come back when a job never reached Kie, parallel
requests never reserve past a cap, the balance gauge follows the account, and a balance too
low for the next job holds admission (and alerts the operator) until a top-up."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from devstack.receiver import webhook_receiver
from tests.integration.conftest import (
    ADMIN_TOKEN,
    EMBEDDED,
    PRODUCTION,
    Services,
    Stack,
    running_stack,
)

# Grok Imagine at 480p for 20 s: 40 credits by the catalogue's price (and the sandbox's).
FORTY = {"model": "grok-imagine/text-to-video", "resolution": "480p", "duration": 20}


def budgeted_client(stack: Stack, *budget: str, name: str | None = None) -> httpx.Client:
    name = name or f"budget-{uuid.uuid4().hex[:8]}"
    out = stack.local.cli("clients", "create", name, *budget)
    key = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)["API key"].strip()
    client = httpx.Client(
        base_url=stack.local.api_url, timeout=30, headers={"authorization": f"Bearer {key}"}
    )
    client.headers["x-test-client-name"] = name
    return client


def assert_counters_match_jobs(stack: Stack, api: httpx.Client) -> None:
    """The spend counters hold exactly what the client's jobs hold, day by day."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from models.client import Client
    from models.db import make_engine
    from models.job import Job
    from models.spend import ClientSpend, utc_day

    engine = make_engine(stack.env["DATABASE_URL"])
    try:
        with Session(engine) as session:
            name = api.headers["x-test-client-name"]
            client_id = session.scalars(select(Client.id).where(Client.name == name)).one()
            day = utc_day(engine.dialect.name)
            jobs = dict(
                session.execute(
                    select(day, func.sum(Job.credits_reserved))
                    .where(Job.client_id == client_id)
                    .group_by(day)
                ).all()
            )
            counters = dict(
                session.execute(
                    select(ClientSpend.day, ClientSpend.credits).where(
                        ClientSpend.client_id == client_id
                    )
                ).all()
            )
    finally:
        engine.dispose()
    assert {d: round(c, 2) for d, c in counters.items()} == {
        d: round(c, 2) for d, c in jobs.items()
    }


def wait_for(stack_or_client: httpx.Client, job_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = stack_or_client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            return dict(job)
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_the_job_that_would_overspend_a_daily_budget_is_refused_before_kie(stack: Stack) -> None:
    with budgeted_client(stack, "--daily-credits", "100", "--monthly-credits", "1000") as api:
        tag = uuid.uuid4().hex[:8]
        first = api.post("/jobs", json={**FORTY, "prompt": f"one {tag}"})
        second = api.post("/jobs", json={**FORTY, "prompt": f"two {tag}"})
        assert (first.status_code, second.status_code) == (202, 202)
        assert first.json()["usage"]["credits_estimated"] == 40

        third = api.post("/jobs", json={**FORTY, "prompt": f"three {tag}"})
        assert third.status_code == 402, third.text
        error = third.json()["error"]
        assert error["code"] == "budget_exceeded"
        assert error["budget"]["period"] == "day"
        assert error["budget"]["remaining"] == 20
        assert error["credits_estimated"] == 40
        assert 0 < int(third.headers["retry-after"]) <= 86400
        assert stack.creates_for(f"three {tag}") == 0  # nothing stored, nothing sent

        done = wait_for(api, first.json()["id"])
        assert done["status"] == "succeeded"
        # The jobs API's callback reports consumeCredits: Kie's figure settles the job (the
        # callback may land just after the poll that finished it).
        deadline = time.monotonic() + 10
        while done["usage"]["credits_charged_source"] != "kie" and time.monotonic() < deadline:
            time.sleep(0.2)
            done = api.get(f"/jobs/{done['id']}").json()
        usage = done["usage"]
        assert usage["credits_charged_source"] == "kie"
        assert usage["credits_charged"] == 40
        assert usage["usd_estimated"] == pytest.approx(0.2)
        # The client's own report counts both jobs against today.
        report = api.get("/usage", params={"group_by": "model"}).json()
        assert report["total"]["jobs"] == 2
        assert report["budgets"] == {"daily": 100, "monthly": 1000}
        wait_for(api, second.json()["id"])
        assert_counters_match_jobs(stack, api)


def test_a_job_that_never_reached_kie_gives_its_reservation_back(stack: Stack) -> None:
    with budgeted_client(stack, "--daily-credits", "100") as api:
        tag = uuid.uuid4().hex[:8]
        # Kie refuses the create with a definite answer: no task, nothing spent.
        refused = api.post("/jobs", json={**FORTY, "prompt": f"refused [kie:422] {tag}"})
        assert refused.status_code == 202
        failed = wait_for(api, refused.json()["id"])
        assert failed["status"] == "failed"
        assert failed["usage"]["credits_charged"] == 0
        assert failed["usage"]["credits_charged_source"] == "not_submitted"
        # 40 + 40 fit in 100 only if the refused job's 40 came back.
        for n in range(2):
            response = api.post("/jobs", json={**FORTY, "prompt": f"after {n} {tag}"})
            assert response.status_code == 202, response.text
        over = api.post("/jobs", json={**FORTY, "prompt": f"over {tag}"})
        assert over.status_code == 402
        for job in api.get("/jobs").json()["data"]:
            wait_for(api, job["id"])
        assert_counters_match_jobs(stack, api)


def test_a_budget_set_later_counts_the_jobs_already_made(stack: Stack) -> None:
    name = f"later-{uuid.uuid4().hex[:8]}"
    with budgeted_client(stack, name=name) as api:
        tag = uuid.uuid4().hex[:8]
        for n in range(2):
            assert api.post("/jobs", json={**FORTY, "prompt": f"{n} {tag}"}).status_code == 202
        stack.local.cli("clients", "set-budget", name, "--daily-credits", "100")
        time.sleep(1.5)  # AUTH_CACHE_SECONDS: the API sees the new budget
        refused = api.post("/jobs", json={**FORTY, "prompt": f"third {tag}"})
        assert refused.status_code == 402, refused.text
        assert refused.json()["error"]["budget"]["used"] == 80
        assert_counters_match_jobs(stack, api)


def test_parallel_requests_never_reserve_past_the_cap(stack: Stack) -> None:
    with budgeted_client(stack, "--daily-credits", "1000") as api:
        tag = uuid.uuid4().hex[:8]

        def post(n: int) -> int:
            body = {**FORTY, "prompt": f"parallel {n} {tag}"}
            return api.post("/jobs", json=body).status_code

        with ThreadPoolExecutor(max_workers=50) as pool:
            codes = list(pool.map(post, range(50)))
        assert codes.count(202) == 25, codes  # 25 × 40 = 1000, not one credit more
        assert codes.count(402) == 25
        report = api.get("/usage").json()
        assert report["total"]["credits_estimated"] == 1000
        for job in api.get("/jobs", params={"limit": 50}).json()["data"]:
            assert wait_for(api, job["id"])["status"] == "succeeded"
        settled = api.get("/usage").json()["total"]
        assert settled["credits_charged"] == 1000
        assert settled["credits_reserved"] == 0
        assert_counters_match_jobs(stack, api)


def _gauge(stack: Stack) -> float | None:
    text = stack.api.get("/metrics").text
    match = re.search(
        r'^soraq_kie_credits_remaining\{account="kie"\} ([0-9.e+]+)$', text, re.MULTILINE
    )
    return float(match.group(1)) if match else None


def test_the_balance_gauge_follows_the_account(stack: Stack) -> None:
    before = stack.sandbox.post("/_sandbox/topup", json={}).json()["credits"]
    try:
        stack.sandbox.post("/_sandbox/topup", json={"set": 4_321_000})
        # The gauge shows the account's balance within a read or two (jobs still running
        # from earlier tests may draw on it meanwhile: compare with the account as it is).
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            balance = stack.sandbox.post("/_sandbox/topup", json={}).json()["credits"]
            if _gauge(stack) == balance:
                break
            time.sleep(0.2)
        assert _gauge(stack) == balance
        assert 4_000_000 < balance <= 4_321_000
        stats = stack.api.get(
            "/admin/stats", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
        ).json()
        assert 4_000_000 < stats["kie_credits"]["remaining"] <= 4_321_000
    finally:
        stack.sandbox.post("/_sandbox/topup", json={"set": before})


@pytest.fixture(params=[EMBEDDED, PRODUCTION])
def low_stack(
    request: pytest.FixtureRequest, services: Services | None, tmp_path: Path
) -> Iterator[tuple[Stack, object]]:
    with webhook_receiver() as receiver:
        with running_stack(
            request.param,
            services,
            tmp_path,
            SANDBOX_CREDITS="30",
            KIE_LOW_CREDITS="500",
            KIE_MIN_CREDITS="5",
            JOB_TIMEOUT="120",
            OPERATOR_WEBHOOK_URL=receiver.url + "/ops",
        ) as stack:
            yield stack, receiver


def test_a_balance_below_the_next_job_holds_admission_until_a_top_up(
    low_stack: tuple[Stack, object],
) -> None:
    stack, receiver = low_stack
    # The first balance read sees 30 credits: below KIE_LOW_CREDITS, so one alert goes out.
    deadline = time.monotonic() + 20
    while not receiver.received["/ops"] and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.2)
    alerts = receiver.received["/ops"]  # type: ignore[attr-defined]
    assert len(alerts) == 1
    secret = stack.local.cli("operator-secret").strip()
    event = Webhook(secret).verify(alerts[0].body, alerts[0].headers)
    assert event["type"] == "account.low_credits"
    assert event["data"]["credits_remaining"] == 30

    job = stack.create(prompt="waits for credits", **FORTY)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        seen = stack.api.get(f"/jobs/{job['id']}").json()
        if seen.get("waiting_reason") == "kie_low_credits":
            break
        time.sleep(0.2)
    assert seen["status"] == "queued"
    assert seen["waiting_reason"] == "kie_low_credits"
    time.sleep(2)  # several admission rounds: still nothing reaches Kie
    assert stack.creates_for("waits for credits") == 0
    assert stack.api.get(f"/jobs/{job['id']}").json()["status"] == "queued"

    stack.sandbox.post("/_sandbox/topup", json={"credits": 1000})
    done = stack.wait(job["id"], timeout=30)
    assert done["status"] == "succeeded"
    assert stack.creates_for("waits for credits") == 1
    assert len(receiver.received["/ops"]) == 1  # type: ignore[attr-defined]  # one per episode
    assert json.loads(alerts[0].body)["data"]["low_credits_threshold"] == 500


@pytest.mark.parametrize("field", ["creditsConsumed", "consumeCredits"])
@pytest.mark.parametrize("callback", [True, False], ids=["callback", "recordInfo"])
def test_kies_charge_is_read_under_either_name_from_callbacks_and_records(
    stack: Stack, field: str, callback: bool
) -> None:
    # One model per API family; without a callback, only recordInfo reports the charge.
    tag = f"[kie:charge={field}]" + ("" if callback else " [kie:nocallback]")
    models = ["kling-2.6/text-to-video", "veo3.1-fast/text-to-video", "runway/video"]
    jobs = [stack.create(prompt=f"charged {tag} {uuid.uuid4().hex[:8]}", model=m) for m in models]
    for job in jobs:
        done = stack.wait(job["id"])
        assert done["status"] == "succeeded"
        deadline = time.monotonic() + 10
        while done["usage"]["credits_charged_source"] != "kie" and time.monotonic() < deadline:
            time.sleep(0.2)  # a callback may land just after the read that finished the job
            done = stack.api.get(f"/jobs/{job['id']}").json()
        usage = done["usage"]
        assert usage["credits_charged_source"] == "kie", (done["model"], usage)
        assert usage["credits_charged"] == usage["credits_estimated"]  # the sandbox's price
        where = usage["credits_charged_from"]
        assert where.endswith(f".{field}"), where
        if not callback:
            assert where == f"recordInfo.{field}"
