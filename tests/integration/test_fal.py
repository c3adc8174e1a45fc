"""fal.ai as a provider: a Kie-compatible account `a` (a sandbox) and a fal account `f` (the
sandbox's fal queue API, with fal's webhook signatures and fal's request schema). A job
pinned to fal succeeds through fal's queue with a body fal's schema accepts; a webhook not
signed by fal's key is refused; when `a` runs dry, the jobs fal serves flow to fal, none fails
and none is paid twice; a model fal does not serve cannot be pinned to it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from catalogue.fal import fal_routes
from models.job import Job
from tests.fal_jobs import FAL_JOBS
from tests.integration.accounts_stack import AccountSandboxes, sandbox_ports, stack_with_accounts
from tests.integration.conftest import (
    ADMIN_TOKEN,
    EMBEDDED,
    PRODUCTION,
    Services,
    Stack,
)

KEYS = {"KIE_A_KEY": "sk-account-a-0123456789", "FAL_F_KEY": "fal-key-f-0123456789abcdef"}
VEO = "veo3.1-fast/text-to-video"
KLING = "kling-2.6/text-to-video"
SEEDANCE = "bytedance/seedance-2"


class KieAndFal(AccountSandboxes):
    def row(self, job_id: str) -> Job:
        return self.rows([job_id])[job_id]


@pytest.fixture(scope="module", params=[EMBEDDED, PRODUCTION])
def both(
    request: pytest.FixtureRequest,
    services: Services | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[KieAndFal]:
    ports = sandbox_ports("a", "f")
    accounts = f"""
[[accounts]]
name = "a"
provider = "kie-compatible"
base_url = "http://127.0.0.1:{ports["a"]}"
key_env = "KIE_A_KEY"
create_rate = "36/1s"
priority = 1

[[accounts]]
name = "f"
provider = "fal"
base_url = "http://127.0.0.1:{ports["f"]}/fal"
key_env = "FAL_F_KEY"
create_rate = "36/1s"
priority = 2
"""
    keys = {"a": (ports["a"], KEYS["KIE_A_KEY"]), "f": (ports["f"], KEYS["FAL_F_KEY"])}
    with stack_with_accounts(
        request.param,
        services,
        tmp_path_factory.mktemp("fal"),
        accounts,
        keys,
        FAL_JWKS_URL=f"http://127.0.0.1:{ports['f']}/fal/.well-known/jwks.json",
        CATALOGUE_CHECK_INTERVAL="1",  # Kie's live catalogue (account a's) read every second
        **KEYS,
    ) as stack:
        yield KieAndFal(stack, ports)


def _unique(text: str) -> str:
    return f"{text} #{uuid.uuid4().hex[:8]}"


def _history(stack: Stack, job_id: str) -> list[str]:
    events = stack.api.get(
        f"/admin/jobs/{job_id}", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
    ).json()["events"]
    return [
        f"{e['kind']} {e.get('to_status')}: {e['reason']} {e.get('detail') or ''}" for e in events
    ]


def test_a_job_pinned_to_fal_goes_through_fals_queue_and_its_signed_webhook(
    both: KieAndFal,
) -> None:
    stack = both.stack
    prompt = _unique("a heron lands on a pier")
    job = stack.create(prompt=prompt, model=VEO, route="f", duration=6, resolution="1080p")
    done = stack.wait(job["id"], timeout=60)
    assert done["status"] == "succeeded", _history(stack, job["id"])
    assert (done["account"], done["route"]) == ("f", "f")
    assert done["result"]["videos"], done
    # fal got fal's body (its schema, in the sandbox, refuses anything else) — once.
    (made,) = [c for c in both.calls("f") if c["prompt"] == prompt]
    assert made["code"] == 200
    assert made["model"] == "fal-ai/veo3.1/fast"
    assert made["input"] == {
        "prompt": prompt,
        "generate_audio": True,
        "aspect_ratio": "16:9",
        "resolution": "1080p",
        "duration": "6s",
    }
    assert not [c for c in both.calls("a") if c["prompt"] == prompt]  # never at Kie
    row = both.row(job["id"])
    assert row.kie_task_id is not None
    assert row.kie_task_id.startswith("fal:fal-ai/veo3.1:")
    # fal's webhook, signed with the sandbox's key, was accepted.
    hooks = [c for c in both.calls("f", "callback") if row.kie_task_id.endswith(c["task_id"])]
    assert [hook["status_code"] for hook in hooks] == [200]
    assert any("fal" in line and "createTask" in line for line in _history(stack, job["id"]))


def test_each_kind_of_job_fal_makes_succeeds_through_fal_and_shows_fals_price(
    both: KieAndFal,
) -> None:
    """Every endpoint catalogue/fal.toml sends to, each with a body fal's schema (in the
    sandbox) accepts: the models' text jobs, their image and audio inputs, their tiers."""
    stack = both.stack
    jobs = {}
    for n, (model, given, roles, _) in enumerate(FAL_JOBS):
        inputs = [{"role": role, "url": f"https://1.1.1.1/fal/{n}/{role}.png"} for role in roles]
        body = {"prompt": _unique(f"through fal: {model}"), "model": model, "route": "f", **given}
        jobs[n] = stack.create(**body, **({"inputs": inputs} if inputs else {}))
    for n, job in jobs.items():
        model, given, roles, endpoint = FAL_JOBS[n]
        done = stack.wait(job["id"], timeout=60)
        assert done["status"] == "succeeded", (model, _history(stack, job["id"]))
        made = [c for c in both.calls("f") if c["prompt"] == job["input"]["prompt"]]
        assert [(c["code"], c["model"]) for c in made] == [(200, endpoint)], (model, given)
        route = fal_routes()[model]
        for role in roles:
            assert made[0]["input"][route.inputs[role]] == f"https://1.1.1.1/fal/{n}/{role}.png"
        params = {k: v for k, v in done["input"].items() if k != "prompt"}
        assert done["usage"]["usd_source"] == "fal"
        assert done["usage"]["usd_estimated"] == route.usd(params), (model, params)
    # The usage report counts fal's dollars, not Kie credits at the rate (only this test
    # makes Hailuo 02 Pro jobs: one, at fal's $0.48).
    report = stack.api.get("/usage", params={"group_by": "model"}).json()
    (hailuo,) = [g for g in report["groups"] if g["key"] == "hailuo/02-text-to-video-pro"]
    assert (hailuo["jobs"], hailuo["usd"]) == (1, 0.48)


def test_a_lost_submit_answer_is_adopted_from_fals_signed_webhook(both: KieAndFal) -> None:
    """fal queued the request but its answer was lost: the job waits, never submits again,
    and takes the request fal's signed webhook names — billed at fal's price."""
    stack = both.stack
    prompt = _unique("the answer is lost [kie:lostreply] [kie:slow=2]")
    job = stack.create(prompt=prompt, model=VEO, route="f")
    done = stack.wait(job["id"], timeout=60)
    assert done["status"] == "succeeded", _history(stack, job["id"])
    assert [c["code"] for c in both.calls("f") if c["prompt"] == prompt] == ["lostreply"]
    assert any("adopted" in line for line in _history(stack, job["id"]))
    assert done["usage"]["usd_source"] == "fal"
    assert done["usage"]["usd_estimated"] == 1.2  # 8 s at $0.15


def test_a_job_canceled_while_at_fal_is_canceled_at_fal_too(both: KieAndFal) -> None:
    stack = both.stack
    prompt = _unique("canceled at fal [kie:slow=20]")
    job = stack.create(prompt=prompt, model=VEO, route="f")
    _until(lambda: stack.api.get(f"/jobs/{job['id']}").json()["status"] != "queued")
    _until(lambda: both.row(job["id"]).kie_task_id is not None)
    canceled = stack.api.post(f"/jobs/{job['id']}/cancel")
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    request_id = (both.row(job["id"]).kie_task_id or "").rsplit(":", 1)[-1]
    _until(lambda: [c["code"] for c in both.calls("f", "cancel") if c["task_id"] == request_id])
    assert [c["code"] for c in both.calls("f", "cancel") if c["task_id"] == request_id] == [202]
    # The worker writes the call into the job's history once fal has answered it: a moment
    # after the sandbox logs it (CI once looked in between).
    _until(
        lambda: any(
            "'endpoint': 'cancel'" in line and "'upstream': 'fal'" in line
            for line in _history(stack, job["id"])
        )
    )


def test_a_webhook_fal_did_not_sign_is_refused(both: KieAndFal) -> None:
    stack = both.stack
    job = stack.create(prompt=_unique("unsigned"), model=VEO, route="f")
    stack.wait(job["id"], timeout=60)
    row = both.row(job["id"])
    request_id = (row.kie_task_id or "").rsplit(":", 1)[-1]
    forged = stack.api.post(
        f"/fal/webhook/{row.callback_token}",
        json={"request_id": request_id, "status": "OK", "payload": {}},
        headers={
            "x-fal-webhook-request-id": request_id,
            "x-fal-webhook-user-id": "someone",
            # Fresh, and for this job's own request: only the signature is not fal's.
            "x-fal-webhook-timestamp": str(int(time.time())),
            "x-fal-webhook-signature": "ab" * 64,
        },
    )
    assert forged.status_code == 401
    assert "bad webhook signature" in forged.text


def test_a_model_fal_does_not_serve_cannot_be_pinned_to_it(both: KieAndFal) -> None:
    refused = both.stack.api.post(
        "/jobs", json={"prompt": "x", "model": "grok-imagine/text-to-video", "route": "f"}
    )
    assert refused.status_code == 422
    assert "account f does not serve grok-imagine/text-to-video" in refused.text


def test_when_kie_runs_dry_the_jobs_fal_serves_go_to_fal(both: KieAndFal) -> None:
    stack = both.stack
    both.sandboxes["a"].post("/_sandbox/config", json={"account_code": 402})
    try:
        jobs = [stack.create(prompt=_unique(f"dry {i}"), model=VEO)["id"] for i in range(6)]
        # fal renders Seedance 2 at 480p and 720p only: a 1080p job is not fal's to make.
        beyond = stack.create(prompt=_unique("1080p"), model=SEEDANCE, resolution="1080p")
        ended = {j: stack.wait(j, timeout=60) for j in jobs}

        # It waits for a with a's reason (seen between a's probes, which it may be one of:
        # a refused account's probe prefers the job that can go nowhere else).
        def waits_for_a() -> bool:
            held = stack.api.get(f"/jobs/{beyond['id']}").json()
            assert held["status"] in ("queued", "submitting"), _history(stack, beyond["id"])
            return bool(held["waiting_reason"] == "kie_insufficient_credits")

        _until(waits_for_a)
        pinned = stack.api.post(
            "/jobs",
            json={"prompt": "a pier", "model": SEEDANCE, "resolution": "1080p", "route": "f"},
        )
        assert pinned.status_code == 422
        assert "fal serves bytedance/seedance-2 with resolution 480p, 720p only" in pinned.text
    finally:
        both.sandboxes["a"].post("/_sandbox/config", json={"account_code": 0})
    later = stack.wait(beyond["id"], timeout=60)  # a's next probe takes it
    assert (later["status"], later["account"]) == ("succeeded", "a"), _history(stack, beyond["id"])
    assert not [c for c in both.calls("f") if c["prompt"] == beyond["input"]["prompt"]]
    assert {job["status"] for job in ended.values()} == {"succeeded"}, [
        _history(stack, j) for j, job in ended.items() if job["status"] != "succeeded"
    ]
    assert {job["account"] for job in ended.values()} == {"f"}
    made = [c["prompt"] for c in both.calls("f") if c["code"] == 200]
    for job in ended.values():
        assert made.count(job["input"]["prompt"]) == 1  # each paid once, at fal


def _status(stack: Stack, model_id: str) -> str:
    listed = stack.api.get("/models").json()["data"]
    return str(next(m for m in listed if m["id"] == model_id)["status"])


def _until(condition: Any, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s"
        time.sleep(0.25)


def test_a_model_kie_pauses_goes_to_fal_and_back_to_kie_when_it_returns(both: KieAndFal) -> None:
    stack = both.stack
    both.sandboxes["a"].post("/_sandbox/catalogue", json={"pause": [KLING]})
    try:
        _until(lambda: _status(stack, KLING) == "paused")
        job = stack.create(prompt=_unique("while Kie pauses Kling"), model=KLING)  # not refused
        done = stack.wait(job["id"], timeout=60)
        assert done["status"] == "succeeded", _history(stack, job["id"])
        assert done["account"] == "f"
    finally:
        both.sandboxes["a"].post("/_sandbox/catalogue", json={"reset": True})
    _until(lambda: _status(stack, KLING) == "live")
    # New jobs prefer a again (by priority). A refusal a met in an earlier test ends with its
    # next accepted probe, so the first job or two may still go to fal meanwhile.
    deadline = time.monotonic() + 30
    while True:
        again = stack.wait(stack.create(prompt=_unique("Kling is back"), model=KLING)["id"], 60)
        assert again["status"] == "succeeded"
        if again["account"] == "a":
            break
        assert time.monotonic() < deadline, "no Kling job went back to a"
