"""Clients, idempotency, cancel and signed webhooks, end to end against the real stack."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from devstack.receiver import Receiver, webhook_receiver
from models.base import utcnow
from models.db import make_engine
from models.job import Job
from tests.integration.conftest import Stack


def unique(prompt: str) -> str:
    return f"{prompt} #{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


def wait_for(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_a_client_at_its_active_job_limit_gets_429_until_one_finishes(stack: Stack) -> None:
    key, _ = stack.local.create_client(f"limited-{uuid.uuid4().hex[:6]}", max_active_jobs=2)
    with httpx.Client(
        base_url=str(stack.api.base_url), headers={"authorization": f"Bearer {key}"}
    ) as limited:
        slow = [limited.post("/jobs", json={"prompt": unique("slow [kie:slow=60]")}) for _ in "ab"]
        assert [r.status_code for r in slow] == [202, 202]
        refused = limited.post("/jobs", json={"prompt": unique("one too many")})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "too_many_active_jobs"
        assert "2 of your jobs are unfinished" in refused.json()["error"]["message"]
        assert refused.headers["retry-after"] == "30"
        assert limited.post(f"/jobs/{slow[0].json()['id']}/cancel").status_code == 200
        assert limited.post("/jobs", json={"prompt": unique("room again")}).status_code == 202


def test_two_clients_cannot_see_each_others_jobs(stack: Stack) -> None:
    other_key, _ = stack.local.create_client(f"other-{uuid.uuid4().hex[:6]}")
    mine = stack.create(prompt=unique("mine"))
    with httpx.Client(
        base_url=str(stack.api.base_url), headers={"authorization": f"Bearer {other_key}"}
    ) as other:
        assert other.get(f"/jobs/{mine['id']}").status_code == 404
        assert other.post(f"/jobs/{mine['id']}/cancel").status_code == 404
        assert mine["id"] not in [job["id"] for job in other.get("/jobs?limit=100").json()["data"]]
        theirs = other.post("/jobs", json={"prompt": unique("theirs")}).json()
    assert stack.api.get(f"/jobs/{theirs['id']}").status_code == 404
    assert theirs["id"] not in [
        job["id"] for job in stack.api.get("/jobs?limit=100").json()["data"]
    ]
    assert stack.api.get(f"/jobs/{mine['id']}").status_code == 200


def test_every_jobs_route_needs_a_valid_key(stack: Stack) -> None:
    job_id = stack.create(prompt=unique("auth"))["id"]
    with httpx.Client(base_url=str(stack.api.base_url)) as anonymous:
        for auth in (None, "Bearer nope", "Basic abc", f"Bearer {job_id}"):
            headers = {"authorization": auth} if auth else {}
            for method, path in (
                ("POST", "/jobs"),
                ("GET", "/jobs"),
                ("GET", f"/jobs/{job_id}"),
                ("POST", f"/jobs/{job_id}/cancel"),
            ):
                response = anonymous.request(method, path, headers=headers, json={"prompt": "x"})
                assert response.status_code == 401, (method, path, auth)
                assert response.json() == {
                    "error": {"code": "unauthorized", "message": "A valid API key is required."}
                }


def test_a_disabled_client_is_refused(stack: Stack) -> None:
    name = f"leaver-{uuid.uuid4().hex[:6]}"
    key, _ = stack.local.create_client(name)
    headers = {"authorization": f"Bearer {key}"}
    assert stack.api.get("/jobs", headers=headers).status_code == 200
    stack.local.cli("clients", "disable", name)
    # Key lookups are remembered for AUTH_CACHE_SECONDS (1 s here).
    wait_for(lambda: stack.api.get("/jobs", headers=headers).status_code == 401, timeout=5)


def test_an_idempotent_replay_returns_the_same_job_and_pays_once(stack: Stack) -> None:
    prompt = unique("Only once")
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = stack.api.post("/jobs", json={"prompt": prompt}, headers=key)
    stack.wait(first.json()["id"])
    again = stack.api.post("/jobs", json={"prompt": prompt}, headers=key)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["status"] == "succeeded"  # the job as it is now
    assert stack.creates_for(prompt) == 1

    other_body = stack.api.post("/jobs", json={"prompt": prompt + " but longer"}, headers=key)
    assert other_body.status_code == 422
    assert other_body.json()["error"]["code"] == "idempotency_key_reused"


def test_concurrent_requests_with_one_key_create_one_job(stack: Stack) -> None:
    prompt = unique("Twenty at once")
    key = {"Idempotency-Key": uuid.uuid4().hex}
    with ThreadPoolExecutor(20) as pool:
        responses = list(
            pool.map(
                lambda _: stack.api.post("/jobs", json={"prompt": prompt}, headers=key), range(20)
            )
        )
    assert {r.status_code for r in responses} == {202}
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    stack.wait(ids.pop())
    assert stack.creates_for(prompt) == 1


def _held_job(stack: Stack, prompt: str) -> str:
    """A queued job the sweep will not pick up yet (as if the worker were busy)."""
    return stack.insert_job(
        input={"prompt": prompt},
        next_check_at=utcnow() + timedelta(hours=1),
        credits_estimated=60.0,
        credits_reserved=60.0,
    )


def test_cancel_before_submit_means_no_kie_call_ever(stack: Stack) -> None:
    prompt = unique("Never mind")
    job_id = _held_job(stack, prompt)
    response = stack.api.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    # A message for the job that was already on its way arrives after the cancel.
    stack.local.send_task("soraq.advance", job_id)
    time.sleep(2)
    canceled = stack.api.get(f"/jobs/{job_id}").json()
    assert canceled["status"] == "canceled"
    assert stack.creates_for(prompt) == 0
    # Never at Kie, never charged: its budget reservation is given back.
    assert canceled["usage"]["credits_charged"] == 0
    assert canceled["usage"]["credits_charged_source"] == "not_submitted"
    # Canceling again is harmless; a finished job cannot be canceled.
    assert stack.api.post(f"/jobs/{job_id}/cancel").status_code == 200
    done = stack.wait(stack.create(prompt=unique("done"))["id"])
    refused = stack.api.post(f"/jobs/{done['id']}/cancel")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "job_finished"


def test_cancel_after_submit_ignores_the_late_success(stack: Stack) -> None:
    job = stack.create(prompt=unique("Slow one [kie:slow=2]"))
    wait_for(lambda: stack.api.get(f"/jobs/{job['id']}").json()["kie_task_id"])
    canceled = stack.api.post(f"/jobs/{job['id']}/cancel").json()
    assert canceled["status"] == "canceled"
    task_id = canceled["kie_task_id"]
    # Kie finishes and calls back; the job stays canceled.
    wait_for(lambda: any(c["task_id"] == task_id for c in stack.calls("callback")))
    time.sleep(1.5)
    after = stack.api.get(f"/jobs/{job['id']}").json()
    assert after["status"] == "canceled"
    assert after["result"] is None
    checks_after_cancel = [c for c in stack.calls("recordInfo") if c["task_id"] == task_id]
    assert len(checks_after_cancel) <= 1  # at most a check already under way at cancel time


def unsigned(value: object) -> object:
    """`value` with every URL's query (a content link's exp and sig) cut off."""
    if isinstance(value, dict):
        return {k: unsigned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unsigned(v) for v in value]
    if isinstance(value, str) and value.startswith("http"):
        return value.split("?", 1)[0]
    return value


def deliveries(receiver: Receiver, path: str) -> list:  # type: ignore[type-arg]
    return receiver.received.get(path, [])


def test_a_signed_webhook_verifies_with_the_standard_webhooks_library(
    stack: Stack, receiver: Receiver
) -> None:
    path = f"/ok-{uuid.uuid4().hex[:6]}"
    job = stack.create(prompt=unique("Tell me"), webhook_url=receiver.script(path))
    done = stack.wait(job["id"])
    wait_for(lambda: deliveries(receiver, path))
    [received] = deliveries(receiver, path)
    payload = Webhook(stack.webhook_secret).verify(received.body, received.headers)
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["id"] == job["id"]
    # The same result; its content links are signed when each view is made, so their expiry
    # (and signature) may differ by a second between the webhook's body and the GET.
    assert unsigned(payload["data"]["result"]) == unsigned(done["result"])
    # What the video cost travels with the event (Veo 3.1 Fast: 60 credits, $0.30).
    assert payload["data"]["usage"]["credits_charged"] == 60
    assert payload["data"]["usage"]["usd_estimated"] == 0.3
    assert received.headers["webhook-id"].startswith("msg_")
    wait_for(lambda: stack.api.get(f"/jobs/{job['id']}").json()["webhook"]["state"] == "delivered")
    assert stack.api.get(f"/jobs/{job['id']}").json()["webhook"]["attempts"] == 1


def test_a_receiver_failing_twice_gets_one_successful_delivery(
    stack: Stack, receiver: Receiver
) -> None:
    path = f"/flaky-{uuid.uuid4().hex[:6]}"
    job = stack.create(prompt=unique("Flaky receiver"), webhook_url=receiver.script(path, 500, 500))
    stack.wait(job["id"])
    wait_for(lambda: stack.api.get(f"/jobs/{job['id']}").json()["webhook"]["state"] == "delivered")
    time.sleep(1.5)  # nothing more arrives after the success
    attempts = deliveries(receiver, path)
    assert [a.answered for a in attempts] == [500, 500, 200]
    assert len({a.headers["webhook-id"] for a in attempts}) == 1  # one event, three attempts
    assert len({a.body for a in attempts}) == 1
    webhook = stack.api.get(f"/jobs/{job['id']}").json()["webhook"]
    assert webhook["attempts"] == 3
    assert webhook["last_status_code"] == 200


def test_a_410_stops_deliveries(stack: Stack, receiver: Receiver) -> None:
    path = f"/gone-{uuid.uuid4().hex[:6]}"
    job = stack.create(prompt=unique("Gone"), webhook_url=receiver.script(path, 410))
    stack.wait(job["id"])
    wait_for(lambda: stack.api.get(f"/jobs/{job['id']}").json()["webhook"]["state"] == "disabled")
    time.sleep(1.5)
    assert [a.answered for a in deliveries(receiver, path)] == [410]


def test_cancel_sends_a_job_canceled_event(stack: Stack, receiver: Receiver) -> None:
    path = f"/canceled-{uuid.uuid4().hex[:6]}"
    job_id = _held_job(stack, unique("to cancel"))
    engine = make_engine(stack.env["DATABASE_URL"])
    with Session(engine) as session:
        session.execute(update(Job).where(Job.id == job_id).values(webhook_url=receiver.url + path))
        session.commit()
    engine.dispose()
    stack.api.post(f"/jobs/{job_id}/cancel")
    wait_for(lambda: deliveries(receiver, path))
    body = json.loads(deliveries(receiver, path)[0].body)
    assert body["type"] == "job.canceled"
    assert body["data"]["status"] == "canceled"


def test_a_job_can_ask_for_started_and_progress_events(stack: Stack, receiver: Receiver) -> None:
    # No live model reports progress: soraq estimates it from the model's recent runs, which
    # five quick ones make about a second here.
    model = "wan/2-6-text-to-video"
    for warm_up in [stack.create(prompt=unique("Warm up"), model=model) for _ in range(5)]:
        stack.wait(warm_up["id"])
    path = f"/all-{uuid.uuid4().hex[:6]}"
    job = stack.create(
        prompt=unique("Tell me everything [kie:slow=5]"),
        model=model,
        webhook_url=receiver.script(path),
        webhook_events=["started", "progress", "completed"],
    )
    stack.wait(job["id"])
    wait_for(lambda: any(b.body.find(b'"job.succeeded"') > 0 for b in deliveries(receiver, path)))
    time.sleep(1.0)  # a progress event sent last (deliveries run side by side) is counted too
    payloads = [
        Webhook(stack.webhook_secret).verify(r.body, r.headers) for r in deliveries(receiver, path)
    ]
    types = [p["type"] for p in payloads]
    assert types.count("job.started") == 1
    assert types.count("job.succeeded") == 1
    tenths = [p["data"]["progress"] // 10 for p in payloads if p["type"] == "job.progress"]
    assert tenths, types  # a 5 s generation read every second or so reports progress
    assert len(set(tenths)) == len(tenths)
    assert {p["data"]["id"] for p in payloads} == {job["id"]}


def test_unknown_webhook_events_are_refused_by_name(stack: Stack) -> None:
    response = stack.api.post("/jobs", json={"prompt": "x", "webhook_events": ["finished"]})
    assert response.status_code == 422
    assert "webhook_events" in response.text
