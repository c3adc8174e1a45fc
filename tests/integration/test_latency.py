"""No avoidable delay on top of Kie: when Kie's record trails its own callback, the job does
not fall back to the safety net's minute (CALLBACK_CHECK_INTERVAL) but looks again within
seconds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.integration.conftest import EMBEDDED, PRODUCTION, Services, Stack, running_stack


@pytest.fixture(params=[EMBEDDED, PRODUCTION])
def slow_net_stack(
    request: pytest.FixtureRequest, services: Services | None, tmp_path: Path
) -> Iterator[Stack]:
    # The production safety net: without follow-ups a lagging record would cost a minute.
    with running_stack(
        request.param, services, tmp_path, CALLBACK_CHECK_INTERVAL="60", JOB_TIMEOUT="120"
    ) as stack:
        yield stack


def test_a_record_trailing_its_callback_is_read_again_within_seconds(
    slow_net_stack: Stack,
) -> None:
    stack = slow_net_stack
    lag = 3.0
    job = stack.create(prompt=f"The record trails [kie:lag={lag:g}]")
    done = stack.wait(job["id"], timeout=30)
    assert done["status"] == "succeeded"
    [callback] = [c for c in stack.calls("callback") if c["task_id"] == done["kie_task_id"]]
    finished = datetime.fromisoformat(done["finished_at"]).timestamp()
    assert finished - callback["at"] <= lag + 3.0, finished - callback["at"]
    reads = [c for c in stack.calls("recordInfo") if c["task_id"] == done["kie_task_id"]]
    # The callback's read, then follow-ups 1 and 2 s apart until the record shows the end.
    assert len(reads) <= 4, [round(r["at"] - callback["at"], 2) for r in reads]
