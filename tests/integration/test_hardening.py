"""Findings of the adversarial review, kept fixed end to end on both stacks."""

from __future__ import annotations

import time
import uuid

from tests.integration.conftest import Stack
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
