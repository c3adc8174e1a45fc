"""Today's Kie, end to end: every live model through its own API family, images by role,
retired models refused, account-level refusals that pause instead of failing jobs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from catalogue import ModelSpec, get_catalogue
from tests.integration.conftest import EMBEDDED, PRODUCTION, Services, Stack, running_stack

LIVE = [spec for spec in get_catalogue().models.values() if spec.live]


def unique(prompt: str) -> str:
    return f"{prompt} #{uuid.uuid4().hex[:8]}"


EXTENSIONS = {"image": "png", "video": "mp4", "audio": "mp3"}


def required_inputs(spec: ModelSpec, earlier: dict[str, str]) -> list[dict[str, Any]]:
    """The inputs the model needs (each role's minimum, and one of each `one_of` group): files
    as URLs on a public host (Kie fetches them; the sandbox does not reach out), an earlier
    task as the job that made it."""
    counts = {name: role.min for name, role in spec.roles.items()}
    for group in spec.one_of_roles:
        if not any(counts[r] for r in group):
            counts[group[0]] = 1
    inputs: list[dict[str, Any]] = []
    for name, count in counts.items():
        role = spec.roles[name]
        for n in range(count):
            if role.kind == "task":
                source = next(m for m in role.from_models if m in earlier)
                inputs.append({"role": name, "job": earlier[source]})
            else:
                url = f"https://1.1.1.1/test/{name}-{n}.{EXTENSIONS[role.kind]}"
                inputs.append({"role": name, "url": url})
    return inputs


def requests_for(spec: ModelSpec, earlier: dict[str, str]) -> Iterator[dict[str, Any]]:
    """The model's default request, then one per value of each of its enums."""
    base: dict[str, Any] = {"model": spec.id}
    if inputs := required_inputs(spec, earlier):
        base["inputs"] = inputs

    def prompted(text: str) -> dict[str, Any]:
        return {"prompt": unique(text)} if spec.prompt_taken else {}

    yield {**base, **prompted(f"defaults of {spec.id}")}
    for name, param in spec.params.items():
        for value in param.schema.get("enum", []):
            yield {**base, **prompted(f"{spec.id} {name}={value}"), name: value}


def test_every_live_model_succeeds_with_its_defaults_and_each_enum_value(stack: Stack) -> None:
    # Models that continue a task need an earlier job of a model they continue.
    grok = stack.create(prompt=unique("a first grok video"), model="grok-imagine/text-to-video")
    assert stack.wait(grok["id"])["status"] == "succeeded"
    earlier = {"grok-imagine/text-to-video": grok["id"]}
    bodies = [body for spec in LIVE for body in requests_for(spec, earlier)]
    jobs = [(body, stack.create(**body)) for body in bodies]
    failed = []
    for body, job in jobs:
        done = stack.wait(job["id"], timeout=180)
        if done["status"] != "succeeded":
            failed.append((body["model"], body.get("prompt"), done["error"]))
    assert not failed, failed
    # Each went through its own family's create call, and Kie's schema accepted it.
    families = {c["family"] for c in stack.calls("createTask") if c["code"] == 200}
    assert {"jobs", "veo", "runway"} <= families
    accepted = {c["model"] for c in stack.calls("createTask") if c["code"] == 200}
    assert {spec.upstream_model for spec in LIVE} <= accepted


def test_veo_first_and_last_frames_go_in_order(stack: Stack) -> None:
    prompt = unique("from dawn to dusk")
    job = stack.create(
        prompt=prompt,
        model="veo3.1-fast/image-to-video",
        images=[
            {"role": "last_frame", "url": "https://1.1.1.1/test/dusk.png"},
            {"role": "first_frame", "url": "https://1.1.1.1/test/dawn.png"},
        ],
    )
    assert stack.wait(job["id"])["status"] == "succeeded"
    [call] = [c for c in stack.calls("createTask") if c["prompt"] == prompt]
    assert call["family"] == "veo"
    assert call["model"] == "veo3_fast"
    assert call["input"]["generationType"] == "FIRST_AND_LAST_FRAMES_2_VIDEO"
    assert call["input"]["imageUrls"] == [
        "https://1.1.1.1/test/dawn.png",
        "https://1.1.1.1/test/dusk.png",
    ]


def test_a_retired_model_is_refused_and_nothing_goes_upstream(stack: Stack) -> None:
    prompt = unique("a retired model")
    response = stack.api.post("/jobs", json={"prompt": prompt, "model": "sora-2-text-to-video"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "model_retired"
    assert response.json()["error"]["replaced_by"] == "veo3.1-fast/text-to-video"
    assert stack.creates_for(prompt) == 0


@pytest.mark.parametrize(
    "model", ["kling-2.6/text-to-video", "veo3.1-fast/text-to-video", "runway/video"]
)
def test_an_unknown_upstream_state_does_not_fail_the_job(stack: Stack, model: str) -> None:
    job = stack.create(prompt=unique("odd words [kie:state=rendering] [kie:slow=1.5]"), model=model)
    assert stack.wait(job["id"])["status"] == "succeeded"


def test_an_estimated_progress_and_eta_while_generating(stack: Stack) -> None:
    job = stack.create(prompt=unique("slow enough to watch [kie:slow=3]"))
    deadline = time.monotonic() + 10
    seen: dict[str, Any] = {}
    while time.monotonic() < deadline:
        seen = stack.api.get(f"/jobs/{job['id']}").json()
        if seen["status"] in ("waiting", "queuing", "generating"):
            break
        time.sleep(0.1)
    assert seen["progress_source"] == "estimated"
    assert seen["eta"] is not None
    assert 0 <= seen["progress"] <= 95
    assert stack.wait(job["id"])["progress"] == 100


@pytest.fixture(scope="module", params=[EMBEDDED, PRODUCTION])
def long_stack(
    request: pytest.FixtureRequest,
    services: Services | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """Its own stack: jobs that wait out an account pause need a JOB_TIMEOUT longer than it."""
    with running_stack(
        request.param,
        services,
        tmp_path_factory.mktemp("long"),
        JOB_TIMEOUT="120",
        ACCOUNT_PROBE_INTERVAL="1",
    ) as started:
        yield started


def test_a_402_during_a_burst_pauses_admission_and_every_job_succeeds_after(
    long_stack: Stack,
) -> None:
    stack = long_stack
    stack.sandbox.post("/_sandbox/config", json={"account_code": 402})
    try:
        jobs = [stack.create(prompt=unique("burst while broke")) for _ in range(50)]

        def waiting() -> int:
            shown = [stack.api.get(f"/jobs/{job['id']}").json() for job in jobs]
            assert all(job["status"] != "failed" for job in shown), shown
            return sum(job["waiting_reason"] == "kie_insufficient_credits" for job in shown)

        # Every job waits with the account's reason — but one, the probe, may be on its way
        # to Kie at the moment we look.
        deadline = time.monotonic() + 30
        while waiting() < 49 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert waiting() >= 49
        ready = stack.api.get("/readyz")
        assert ready.status_code == 503
        assert "kie_insufficient_credits" in ready.json()["error"]["message"]
        assert 'soraq_account_paused{account="kie",reason="kie_insufficient_credits"} 1.0' in (
            stack.api.get("/metrics").text
        )
        time.sleep(4)  # a few probe intervals of 1 s
    finally:
        stack.sandbox.post("/_sandbox/config", json={"account_code": 0})  # topped up

    refused = sorted(c["at"] for c in stack.calls("createTask") if c["code"] == 402)
    first = refused[0]
    # Calls already on their way when the first 402 came back may meet it too; from then on,
    # at most one createTask (the probe) per ACCOUNT_PROBE_INTERVAL.
    later = [at for at in refused if at > first + 1.0]
    span = refused[-1] - first
    assert len(later) <= span + 1, (len(refused), len(later), span)
    for job in jobs:
        assert stack.wait(job["id"], timeout=60)["status"] == "succeeded"
    assert stack.api.get("/readyz").status_code == 200
