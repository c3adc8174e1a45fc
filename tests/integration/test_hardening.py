"""Findings of the adversarial review, kept fixed end to end on both stacks."""

from __future__ import annotations

import time
import uuid

from tests.integration.conftest import ADMIN_TOKEN, Stack
from tests.integration.receiver import slow_receiver


def unique(prompt: str) -> str:
    return f"{prompt} #{uuid.uuid4().hex[:8]}"


def test_slow_webhook_receivers_never_stall_jobs(stack: Stack) -> None:
    with slow_receiver() as slow:
        hooked = [
            stack.create(prompt=unique("to a slow receiver"), webhook_url=f"{slow.url}/{path}")
            for path in ["headers", "body"] * 5
        ]
        deadline = time.monotonic() + 20
        while slow.connections < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert slow.connections >= 4, "the deliveries never reached the receiver"

        # Ten deliveries are hanging on the receiver: a plain job must not notice.
        plain = stack.create(prompt=unique("a plain job meanwhile"))
        assert stack.wait(plain["id"], timeout=30)["status"] == "succeeded"
        assert slow.most_at_once <= 4  # WEBHOOK_MAX_IN_FLIGHT_PER_HOST

        # The receiver that sends `200` at once has its event delivered; the one that trickles
        # its headers is cut off at WEBHOOK_TIMEOUT, and the attempt recorded as such.
        def webhook(job_id: str) -> dict[str, object]:
            return dict(stack.api.get(f"/jobs/{job_id}").json()["webhook"] or {})

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = [webhook(job["id"]) for job in hooked]
            body_ok = all(s.get("state") == "delivered" for s in states[1::2])
            headers_cut = all(
                "WEBHOOK_TIMEOUT" in str(s.get("last_error") or "") for s in states[0::2]
            )
            if body_ok and headers_cut:
                break
            time.sleep(0.5)
        assert body_ok, states
        assert headers_cut, states


def callback_url_of(stack: Stack, prompt: str) -> str:
    [call] = [c for c in stack.calls("createTask") if c.get("prompt") == prompt and c["code"]]
    return str(call["callback_url"])


def test_a_callback_is_read_to_64_kb_and_only_for_a_known_token(stack: Stack) -> None:
    prompt = unique("a callback target [kie:slow=3] [kie:nocallback]")
    stack.create(prompt=prompt)
    deadline = time.monotonic() + 10
    while not [c for c in stack.calls("createTask") if c.get("prompt") == prompt]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    path = callback_url_of(stack, prompt).removeprefix(stack.env["PUBLIC_URL"])
    big = b'{"data": {"taskId": "' + b"x" * 100_000 + b'"}}'
    response = stack.api.post(path, content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    # Chunked, with no length to trust: counted as it arrives.
    chunks = (b"x" * 8192 for _ in range(20))
    assert stack.api.post(path, content=chunks).status_code == 413
    # An unknown token is a 404 before a byte of the body is read.
    unknown = stack.api.post("/kie/callback/not-a-token", content=big)
    assert unknown.status_code == 404


def test_repeated_callbacks_cost_one_upstream_read(stack: Stack) -> None:
    prompt = unique("a callback storm [kie:slow=6] [kie:nocallback]")
    job = stack.create(prompt=prompt)
    deadline = time.monotonic() + 10
    while stack.api.get(f"/jobs/{job['id']}").json()["kie_task_id"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    task_id = stack.api.get(f"/jobs/{job['id']}").json()["kie_task_id"]
    path = callback_url_of(stack, prompt).removeprefix(stack.env["PUBLIC_URL"])
    before = len([c for c in stack.calls("recordInfo") if c["task_id"] == task_id])
    started = time.monotonic()
    answers = [stack.api.post(path, json={"data": {"taskId": task_id}}) for _ in range(20)]
    assert all(a.status_code == 200 for a in answers)
    assert sum(a.json()["checked"] for a in answers) == 1  # CALLBACK_DEBOUNCE: 5 s
    time.sleep(max(0.0, 1.5 - (time.monotonic() - started)))
    reads = len([c for c in stack.calls("recordInfo") if c["task_id"] == task_id]) - before
    # One read for the storm, plus the safety-net checks (every 1 s here) that run anyway.
    assert reads <= 3, reads


def test_a_lost_createtask_answer_is_adopted_from_its_callback(stack: Stack) -> None:
    prompt = unique("the answer is lost [kie:lostreply] [kie:slow=1]")
    created = stack.create(prompt=prompt, model="kling-2.6/text-to-video")
    first = stack.wait(created["id"])  # submit_unknown first: the answer never came
    assert first["error"]["code"] == "submit_unknown", first
    deadline = time.monotonic() + 20
    job = first
    while job["status"] != "succeeded" and time.monotonic() < deadline:
        time.sleep(0.2)
        job = stack.api.get(f"/jobs/{created['id']}").json()
    assert job["status"] == "succeeded", job  # the callback came, and the task was adopted
    assert stack.creates_for(prompt) == 1  # never a second createTask
    events = stack.api.get(
        f"/admin/jobs/{job['id']}", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
    ).json()["events"]
    reasons = [e["reason"] or "" for e in events]
    assert any("adopted Kie task" in r for r in reasons), reasons
    assert any(e.get("detail") and e["detail"].get("kie_task_id") for e in events)
