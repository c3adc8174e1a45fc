"""The Python client (clients/python) against a running soraq: create, wait, stream, batch,
errors as exceptions, and a real webhook verified."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from soraq_client import AsyncSoraq, Soraq, SoraqError, verify_webhook

from devstack.receiver import webhook_receiver
from tests.integration.conftest import EMBEDDED, Stack


def unique(prompt: str) -> str:
    return f"{prompt} {uuid.uuid4().hex[:8]}"


@pytest.fixture
def one_stack(stack: Stack) -> Stack:
    if stack.backend != EMBEDDED:
        pytest.skip("the client speaks HTTP; one stack is enough (test_waiting.py runs both)")
    return stack


@pytest.fixture
def client(one_stack: Stack) -> Soraq:
    stack = one_stack
    key = stack.api.headers["authorization"].removeprefix("Bearer ")
    return Soraq(str(stack.api.base_url), key)


def test_create_with_wait_stream_and_wait(client: Soraq) -> None:
    fast = client.jobs.create(unique("A kite"), wait=10)
    assert fast.done
    assert fast.status == "succeeded"
    assert fast.video_url
    slow = client.jobs.create(unique("A slow kite [kie:slow=3]"), model="kling-2.6/text-to-video")
    assert not slow.done
    events = list(client.jobs.stream(slow.id))
    assert [e.type for e in events][-1] == "completed"
    assert [int(e.id) for e in events] == sorted(int(e.id) for e in events)
    finished = events[-1].job
    assert finished is not None
    assert finished.status == "succeeded"
    assert client.jobs.wait(slow.id, timeout=5).id == slow.id
    assert client.jobs.get(slow.id).usage.credits_charged is not None
    assert any(job.id == slow.id for job in client.jobs.list(limit=50).data)


def test_batches_models_and_errors(client: Soraq) -> None:
    batch = client.batches.create([{"prompt": unique(f"Batch {i}")} for i in range(3)])
    assert batch.job_count == 3
    assert "veo3.1-fast/text-to-video" in {m.id for m in client.models.list()}
    with pytest.raises(SoraqError) as refused:
        client.jobs.create("x", model="sora-9")
    assert refused.value.status == 422
    assert refused.value.code == "validation_error"
    assert refused.value.fields[0]["field"] == "model"
    with pytest.raises(SoraqError) as missing:
        client.jobs.get("job_000000000000000000000000")
    assert missing.value.status == 404
    assert missing.value.code == "not_found"
    bad = client.batches.create
    with pytest.raises(SoraqError) as bad_item:
        bad([{"prompt": "fine"}, {"prompt": ""}])
    assert bad_item.value.fields[0]["field"] == "jobs[1].prompt"


def test_the_async_client_does_the_same(one_stack: Stack) -> None:
    stack = one_stack
    key = stack.api.headers["authorization"].removeprefix("Bearer ")

    async def run() -> list[str]:
        async with AsyncSoraq(str(stack.api.base_url), key) as client:
            job = await client.jobs.create(unique("Async kite [kie:slow=2]"))
            types = [event.type async for event in client.jobs.stream(job.id)]
            done = await client.jobs.wait(job.id, timeout=10)
            assert done.status == "succeeded"
            return types

    types = asyncio.run(run())
    assert types[0] == "status"
    assert types[-1] == "completed"


def test_a_real_webhook_verifies_and_a_forged_one_does_not(one_stack: Stack, client: Soraq) -> None:
    stack = one_stack
    from soraq_client import WebhookVerificationError

    with webhook_receiver() as receiver:
        path = f"/py-{uuid.uuid4().hex[:6]}"
        job = client.jobs.create(unique("Signed"), webhook_url=receiver.script(path))
        client.jobs.wait(job.id, timeout=30)
        deadline = time.monotonic() + 20
        while not receiver.received.get(path) and time.monotonic() < deadline:
            time.sleep(0.1)
        [received] = receiver.received[path]
    event = verify_webhook(received.body, received.headers, stack.webhook_secret)
    assert event["type"] == "job.succeeded"
    assert event["data"]["id"] == job.id
    with pytest.raises(WebhookVerificationError):
        verify_webhook(received.body + b" ", received.headers, stack.webhook_secret)
