"""Batches: checked as a whole, stored at once, one `batch.completed` when the last job ends."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from standardwebhooks import Webhook

from devstack.receiver import Receiver, webhook_receiver
from tests.integration.conftest import EMBEDDED, TERMINAL, Stack


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


def wait_until(condition, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def batch_events(receiver: Receiver, path: str, secret: str) -> list[dict]:  # type: ignore[type-arg]
    return [Webhook(secret).verify(r.body, r.headers) for r in receiver.received.get(path, [])]


def test_a_1000_job_batch_ends_with_exactly_one_batch_completed(
    stack: Stack, receiver: Receiver
) -> None:
    # The full 1,000 where jobs end concurrently in separate transactions (PostgreSQL); 200 on
    # the embedded default, whose single writer runs the same code a minute faster.
    size = 200 if stack.backend == EMBEDDED else 1000
    tag = uuid.uuid4().hex[:8]
    path = f"/batch-{tag}"
    body = {
        "jobs": [{"prompt": f"Batch {tag} item {i}"} for i in range(size)],
        "webhook_url": receiver.script(path),
        "metadata": {"campaign": tag},
    }
    response = stack.api.post("/batches", json=body, timeout=60)
    assert response.status_code == 202, response.text
    batch = response.json()
    assert batch["job_count"] == size
    assert batch["counts"] == {"queued": size}
    assert response.headers["location"] == f"/batches/{batch['id']}"

    def finished() -> bool:
        shown = stack.api.get(f"/batches/{batch['id']}").json()
        return bool(shown["status"] == "completed")

    wait_until(finished, timeout=240)
    wait_until(lambda: batch_events(receiver, path, stack.webhook_secret), timeout=30)
    time.sleep(1.0)  # a second event, if one were sent, would arrive meanwhile
    [event] = batch_events(receiver, path, stack.webhook_secret)
    assert event["type"] == "batch.completed"
    assert event["data"]["id"] == batch["id"]
    assert event["data"]["counts"] == {"succeeded": size}
    assert event["data"]["metadata"] == {"campaign": tag}
    # Its jobs page by cursor, carry the batch's metadata, and each was created once at Kie.
    shown = stack.api.get(f"/batches/{batch['id']}", params={"limit": 100}).json()
    assert len(shown["jobs"]) == 100
    assert shown["next_cursor"]
    assert shown["jobs"][0]["metadata"] == {"campaign": tag}
    assert all(stack.creates_for(f"Batch {tag} item {i}") == 1 for i in (0, size // 2, size - 1))


def test_one_bad_item_refuses_the_batch_by_its_index(stack: Stack) -> None:
    tag = uuid.uuid4().hex[:8]
    before = len(stack.api.get("/jobs", params={"limit": 100}).json()["data"])
    jobs: list[dict[str, object]] = [{"prompt": f"Fine {tag} {i}"} for i in range(10)]
    jobs[4] = {"prompt": ""}
    response = stack.api.post("/batches", json={"jobs": jobs})
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "jobs[4].prompt"
    # A model's own parameter is checked too, and named the same way.
    jobs[4] = {"prompt": "ok", "model": "kling-2.6/text-to-video", "duration": "forever"}
    response = stack.api.post("/batches", json={"jobs": jobs})
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"].startswith("jobs[4].")
    assert stack.api.post("/batches", json={"jobs": []}).status_code == 422
    garbage = stack.api.post(
        "/batches", content=b"\xff\xfe\xa3", headers={"content-type": "application/json"}
    )
    assert garbage.status_code == 422  # the fuzzer's find: bytes that are not UTF-8 JSON
    assert garbage.json()["error"]["fields"][0]["field"] == "body"
    too_many = {"jobs": [{"prompt": "x"}] * 1001}
    assert stack.api.post("/batches", json=too_many).status_code == 422
    after = stack.api.get("/jobs", params={"limit": 100}).json()["data"]
    assert not any(tag in job["input"]["prompt"] for job in after)
    assert len(after) >= before


def test_an_idempotent_batch_is_made_once(stack: Stack) -> None:
    tag = uuid.uuid4().hex[:8]
    body = {"jobs": [{"prompt": f"Once {tag} {i}"} for i in range(3)]}
    headers = {"idempotency-key": f"batch-{tag}"}
    first = stack.api.post("/batches", json=body, headers=headers)
    second = stack.api.post("/batches", json=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["idempotent-replayed"] == "true"
    other = stack.api.post("/batches", json={"jobs": [{"prompt": "else"}]}, headers=headers)
    assert other.status_code == 422


def test_cancel_stops_the_jobs_not_yet_at_kie_and_the_batch_still_completes_once(
    stack: Stack, receiver: Receiver
) -> None:
    tag = uuid.uuid4().hex[:8]
    path = f"/cancel-{tag}"
    body = {
        "jobs": [{"prompt": f"Cancel {tag} {i}"} for i in range(300)],
        "webhook_url": receiver.script(path),
    }
    batch = stack.api.post("/batches", json=body).json()
    canceled = stack.api.post(f"/batches/{batch['id']}/cancel")
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["counts"].get("canceled", 0) > 0

    def ended() -> bool:
        shown = stack.api.get(f"/batches/{batch['id']}").json()
        return shown["status"] == "completed"

    wait_until(ended, timeout=120)
    wait_until(lambda: batch_events(receiver, path, stack.webhook_secret), timeout=30)
    time.sleep(1.0)
    [event] = batch_events(receiver, path, stack.webhook_secret)
    counts = event["data"]["counts"]
    assert set(counts) <= TERMINAL
    assert sum(counts.values()) == 300
    assert counts["canceled"] > 0
    # A canceled job never reached Kie.
    page = stack.api.get(f"/batches/{batch['id']}", params={"limit": 100}).json()
    for job in page["jobs"]:
        if job["status"] == "canceled" and job["kie_task_id"] is None:
            assert stack.creates_for(job["input"]["prompt"]) == 0
    assert stack.api.get("/batches/batch_000000000000000000000000").status_code == 404
