"""In step with Kie: the sandbox's live catalogue moves (an enum changes, a model appears, a
model is paused, a price moves) and soraq notices — `soraq catalogue check` reports it and
exits 1, the running service pauses and resumes models, queued jobs wait then run, operators
get `catalogue.changed`, and estimates follow Kie's prices."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from api.model_states import STATE_SECONDS
from devstack.receiver import Receiver, webhook_receiver
from tests.integration.conftest import EMBEDDED, PRODUCTION, Services, Stack, running_stack

MODEL = "kling-2.6/text-to-video"


@pytest.fixture(scope="module", params=[EMBEDDED, PRODUCTION])
def watched(
    request: pytest.FixtureRequest,
    services: Services | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Stack, Receiver]]:
    with webhook_receiver() as receiver:
        with running_stack(
            request.param,
            services,
            tmp_path_factory.mktemp("catalogue"),
            CATALOGUE_CHECK_INTERVAL="1",
            KIE_PRICES_INTERVAL="1",
            OPERATOR_WEBHOOK_URL=receiver.url + "/ops",
        ) as stack:
            yield stack, receiver


@pytest.fixture
def stack(watched: tuple[Stack, Receiver]) -> Iterator[Stack]:
    stack = watched[0]
    yield stack
    stack.sandbox.post("/_sandbox/catalogue", json={"reset": True})
    until(lambda: _model(stack, MODEL)["status"] == "live", 20)


def until(condition: Callable[[], Any], seconds: float = 15.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.25)
    raise AssertionError(f"not within {seconds} s")


def _model(stack: Stack, model_id: str) -> dict[str, Any]:
    listed = stack.api.get("/models").json()["data"]
    return next(m for m in listed if m["id"] == model_id)


def check(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "soraq.cli", "catalogue", *args],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_in_step_at_first(watched: tuple[Stack, Receiver]) -> None:
    stack = watched[0]
    out = check(stack, "check")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "in step with Kie" in out.stdout
    listed = stack.api.get("/models").json()
    assert listed["catalogue"]["models"] >= 85
    model = _model(stack, MODEL)
    assert model["input_roles"] == {}
    assert model["success_rate"]["kie"] == pytest.approx(0.97)


def test_a_changed_enum_is_drift(stack: Stack, watched: tuple[Stack, Receiver]) -> None:
    receiver = watched[1]
    rule = {"type": "string", "required": True, "enum": ["16:9", "9:16"]}
    edit = {"model": MODEL, "name": "aspect_ratio", "rule": rule}
    stack.sandbox.post("/_sandbox/catalogue", json={"field": edit})
    out = check(stack, "check")
    assert out.returncode == 1
    assert f"~ {MODEL}: aspect_ratio: Kie no longer takes ['1:1']" in out.stdout
    # The running service noticed too: one operator event, the report in /models.
    event = until(lambda: _events(receiver, "catalogue.changed"))
    assert MODEL in event[-1]["data"]["changes"]
    assert "changed" in stack.api.get("/models").json()["catalogue"]["drift"]


def test_a_new_model_is_proposed(stack: Stack, tmp_path: Path) -> None:
    fields = {
        "prompt": {"type": "string", "required": True, "maxLength": 3000},
        "video_url": {"type": "string", "required": True},
        "strength": {"type": "string", "enum": ["low", "high"]},
    }
    stack.sandbox.post(
        "/_sandbox/catalogue",
        json={"add": {"acme/video-restyle": {"fields": fields, "cases": [{"per_task": 50}]}}},
    )
    out = check(stack, "check")
    assert out.returncode == 1
    assert "+ new at Kie: acme/video-restyle" in out.stdout
    assert 'id = "acme/video-restyle"' in out.stdout  # the entry, ready to review
    target = tmp_path / "proposed.toml"
    synced = check(stack, "sync", "--write", str(target))
    assert synced.returncode == 1
    import tomllib

    proposed = tomllib.loads(target.read_text())
    [entry] = [m for m in proposed["models"] if m["id"] == "acme/video-restyle"]
    assert entry["status"] == "paused"  # to review before it is offered
    assert entry["roles"]["video"]["kind"] == "video"
    assert entry["params"]["strength"]["enum"] == ["low", "high"]
    assert "# The video models soraq serves" in target.read_text()  # comments kept


def test_a_paused_model_is_refused_and_its_queued_jobs_wait_then_run(stack: Stack) -> None:
    stack.sandbox.post("/_sandbox/catalogue", json={"pause": [MODEL]})
    until(lambda: _model(stack, MODEL)["status"] == "paused")
    assert "paused" in _model(stack, MODEL)["paused_reason"]
    prompt = f"while paused {uuid.uuid4().hex[:8]}"
    refused = stack.api.post("/jobs", json={"prompt": prompt, "model": MODEL})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "model_unavailable"
    assert "kling-3.0/video" in error["alternatives"]  # live, of the same kind
    assert stack.creates_for(prompt) == 0
    # Jobs queued for it (made before soraq knew) wait, saying why.
    queued = [
        stack.insert_job(
            model=MODEL,
            status="queued",
            input={"prompt": f"{prompt} {n}", "aspect_ratio": "1:1", "duration": 5, "sound": False},
        )
        for n in range(3)
    ]
    until(
        lambda: all(
            stack.api.get(f"/jobs/{j}").json()["waiting_reason"] == "model_paused" for j in queued
        )
    )
    time.sleep(1.5)
    assert all(stack.api.get(f"/jobs/{j}").json()["status"] == "queued" for j in queued)
    # Kie lists it again: the jobs run.
    stack.sandbox.post("/_sandbox/catalogue", json={"resume": [MODEL]})
    for job_id in queued:
        assert stack.wait(job_id, timeout=30)["status"] == "succeeded"


def test_a_moved_price_moves_the_estimates(stack: Stack) -> None:
    assert _model(stack, MODEL)["price"]["default_credits"] == 55
    stack.sandbox.post(
        "/_sandbox/catalogue",
        json={
            "price": {
                MODEL: [
                    {"when": {"sound": True}, "per_second": 30},
                    {"per_second": 20},
                ]
            }
        },
    )
    price = until(lambda: (p := _model(stack, MODEL)["price"])["default_credits"] == 100 and p)
    assert price["source"] == "kie"
    assert price["read_at"] is not None
    time.sleep(STATE_SECONDS + 0.5)  # every API process has read it (each reads every 5 s)
    job = stack.create(prompt=f"priced anew {uuid.uuid4().hex[:8]}", model=MODEL, sound=True)
    assert job["usage"]["credits_estimated"] == 150
    done = stack.wait(job["id"])
    assert done["status"] == "succeeded"
    assert done["usage"]["credits_estimated"] == 150


def _events(receiver: Receiver, kind: str) -> list[dict[str, Any]]:
    bodies = [json.loads(r.body) for r in receiver.received["/ops"]]
    return [b for b in bodies if b["type"] == kind]
