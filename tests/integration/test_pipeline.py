"""End to end: API, a real Celery worker and the HTTP sandbox, on the embedded default."""

from __future__ import annotations

import base64
import time
import uuid
from datetime import timedelta

import httpx

from models.base import utcnow
from models.job import JobStatus
from tests.images import PNG
from tests.integration.conftest import Stack


def unique(prompt: str) -> str:
    # The sandbox counts createTask calls per prompt: keep every test's prompt its own.
    return f"{prompt} #{uuid.uuid4().hex[:8]}"


def test_text_job_succeeds_with_the_sandbox_video(stack: Stack) -> None:
    response = stack.api.post("/jobs", json={"prompt": unique("A cute cat playing in a garden")})
    assert response.status_code == 202
    created = response.json()
    assert created["status"] == "queued"
    assert response.headers["location"] == f"/jobs/{created['id']}"

    job = stack.wait(created["id"])

    assert job["status"] == "succeeded", job
    assert job["model"] == "veo3.1-fast/text-to-video"
    assert job["progress"] == 100
    assert job["kie_task_id"].startswith("veo_task_veo3_fast_")
    [url] = job["result"]["video_urls"]
    [video] = job["result"]["videos"]
    assert video["source_url"].startswith(stack.sandbox_url)
    assert video["source_url"].endswith(".mp4")
    assert url == video["url"]  # soraq's archived copy, not Kie's link
    assert httpx.get(url, follow_redirects=True, timeout=10).status_code == 200
    assert job["started_at"]
    assert job["finished_at"]
    assert job["error"] is None


def test_kie_receives_the_catalogue_mapped_input(stack: Stack) -> None:
    prompt = unique("A portrait of a dog")
    job = stack.create(
        prompt=prompt, model="kling-2.6/text-to-video", aspect_ratio="9:16", duration=10
    )
    assert stack.wait(job["id"])["status"] == "succeeded"
    [call] = [c for c in stack.calls("createTask") if c["prompt"] == prompt]
    assert call["model"] == "kling-2.6/text-to-video"
    assert call["family"] == "jobs"
    assert call["input"] == {
        "prompt": prompt,
        "aspect_ratio": "9:16",
        "duration": "10",
        "sound": False,
    }
    assert call["callback_url"].startswith(stack.env["PUBLIC_URL"] + "/kie/callback/")


def test_base64_image_is_uploaded_to_imgbb_then_sent_to_kie(stack: Stack) -> None:
    prompt = unique("The cat starts to dance")
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    job = stack.wait(stack.create(prompt=prompt, image_base64=data_url)["id"])

    assert job["status"] == "succeeded", job
    assert job["model"] == "kling-2.6/image-to-video"
    [call] = [c for c in stack.calls("createTask") if c["prompt"] == prompt]
    [image_url] = call["input"]["image_urls"]
    assert job["input"]["images"] == [{"role": "first_frame", "url": image_url}]
    assert image_url == job["input"]["image_url"]
    assert stack.sandbox.get(image_url.removeprefix(stack.sandbox_url)).content == PNG


def test_multipart_image_job_succeeds(stack: Stack) -> None:
    prompt = unique("Waves roll in")
    response = stack.api.post(
        "/jobs",
        data={"prompt": prompt, "duration": "10", "metadata": '{"user": 7}'},
        files={"image": ("waves.png", PNG, "image/png")},
    )
    assert response.status_code == 202, response.text
    job = stack.wait(response.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["metadata"] == {"user": 7}
    [call] = [c for c in stack.calls("createTask") if c["prompt"] == prompt]
    assert call["input"]["duration"] == "10"
    assert call["input"]["image_urls"][0].startswith(stack.sandbox_url + "/i/")


def test_image_url_is_passed_to_kie_as_is(stack: Stack) -> None:
    prompt = unique("Zoom out")
    job = stack.wait(stack.create(prompt=prompt, image_url="https://1.1.1.1/abc/cat.png")["id"])
    assert job["status"] == "succeeded"
    [call] = [c for c in stack.calls("createTask") if c["prompt"] == prompt]
    assert call["input"]["image_urls"] == ["https://1.1.1.1/abc/cat.png"]
    assert not [c for c in stack.calls("imgbb_upload") if c.get("job") == job["id"]]


def test_an_account_refusal_holds_the_job_until_its_own_timeout(stack: Stack) -> None:
    # 402 is a fact about the account: the job waits (admission pauses and probes) and fails
    # only at its JOB_TIMEOUT, with the account's code.
    prompt = unique("Too expensive [kie:402]")
    created = stack.create(prompt=prompt)
    seen_waiting = False
    for _ in range(100):
        job = stack.api.get(f"/jobs/{created['id']}").json()
        seen_waiting |= job["waiting_reason"] == "kie_insufficient_credits"
        if job["status"] in ("succeeded", "failed", "canceled"):
            break
        time.sleep(0.1)
    job = stack.wait(created["id"], timeout=30)
    assert seen_waiting
    assert job["status"] == "failed"
    assert job["error"]["code"] == "kie_insufficient_credits"
    # One probe per ACCOUNT_PROBE_INTERVAL (1 s here) at most, over the JOB_TIMEOUT (6 s).
    assert 1 <= stack.creates_for(prompt) <= 8


def test_a_kie_500_is_retried_and_then_succeeds(stack: Stack) -> None:
    prompt = unique("Flaky Kie [kie:500x1]")
    job = stack.wait(stack.create(prompt=prompt)["id"])
    assert job["status"] == "succeeded", job
    assert stack.creates_for(prompt) == 2


def test_a_429_with_retry_after_is_retried(stack: Stack) -> None:
    prompt = unique("Busy Kie [kie:429x2]")
    job = stack.wait(stack.create(prompt=prompt)["id"])
    assert job["status"] == "succeeded", job
    assert stack.creates_for(prompt) == 3


def test_a_failed_generation_surfaces_kies_fail_code_and_message(stack: Stack) -> None:
    job = stack.wait(
        stack.create(prompt=unique("Forbidden things [kie:fail]"), model="kling-2.6/text-to-video")[
            "id"
        ]
    )
    assert job["status"] == "failed"
    assert job["error"] == {
        "code": "kie_task_failed",
        "message": "The prompt was flagged by the content policy.",
        "kie_fail_code": "content_policy",
    }


def test_without_a_callback_polling_finds_the_result(stack: Stack) -> None:
    prompt = unique("Quiet Kie [kie:nocallback] [kie:slow=2.5]")
    job = stack.wait(stack.create(prompt=prompt)["id"])
    assert job["status"] == "succeeded"
    task_id = job["kie_task_id"]
    assert not [c for c in stack.calls("callback") if c["task_id"] == task_id]
    checks = [c for c in stack.calls("recordInfo") if c["task_id"] == task_id]
    assert len(checks) >= 2  # it was watched while generating, then seen done


def test_a_createtask_without_answer_is_never_resubmitted(stack: Stack) -> None:
    prompt = unique("Kie hangs [kie:hang] [kie:nocallback]")
    job = stack.wait(stack.create(prompt=prompt)["id"], timeout=30)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "submit_unknown"
    assert stack.creates_for(prompt) == 1


def test_a_task_stuck_at_kie_times_out(stack: Stack) -> None:
    job = stack.wait(stack.create(prompt=unique("Forever [kie:stuck]"))["id"], timeout=30)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "timeout"


def test_duplicate_task_delivery_creates_one_kie_task(stack: Stack) -> None:
    prompt = unique("Delivered many times [kie:slow=1]")
    job = stack.create(prompt=prompt)
    for _ in range(5):
        stack.local.send_task("soraq.advance", job["id"])
    assert stack.wait(job["id"])["status"] == "succeeded"
    assert stack.creates_for(prompt) == 1


def test_a_job_whose_message_was_lost_is_found_by_the_sweep(stack: Stack) -> None:
    # A row committed with no message at all, as if the API died right after the commit.
    prompt = unique("Never enqueued")
    job_id = stack.insert_job(input={"prompt": prompt})
    job = stack.wait(job_id)
    assert job["status"] == "succeeded"
    assert stack.creates_for(prompt) == 1


def test_a_job_abandoned_while_submitting_fails_as_submit_unknown(stack: Stack) -> None:
    # A worker died between recording "submitting" and recording Kie's answer.
    past = utcnow() - timedelta(seconds=1)
    prompt = unique("Worker died")
    job_id = stack.insert_job(
        input={"prompt": prompt},
        status=JobStatus.SUBMITTING,
        stage_lease_until=past,
    )
    job = stack.wait(job_id)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "submit_unknown"
    assert stack.creates_for(prompt) == 0


def test_invalid_input_is_refused_with_the_field_named(stack: Stack) -> None:
    response = stack.api.post("/jobs", json={"prompt": "x", "duration": 11})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["fields"][0]["field"] == "duration"
    assert "4, 6, 8" in error["message"]


def test_a_streamed_50_mb_body_is_refused_by_the_real_server(stack: Stack) -> None:
    before = len(stack.api.get("/jobs?limit=100").json()["data"])
    chunks = (b"x" * (1 << 20) for _ in range(50))  # chunked: no Content-Length to trust
    response = stack.api.post("/jobs", content=chunks, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert len(stack.api.get("/jobs?limit=100").json()["data"]) == before


def test_metrics_count_kie_calls_from_the_worker_and_jobs_from_the_database(stack: Stack) -> None:
    stack.wait(stack.create(prompt=unique("measured"))["id"])
    text = stack.api.get("/metrics").text
    # Written by the worker process, summed by the API's /metrics (multiprocess mode).
    assert (
        'soraq_kie_calls_total{account="kie",code="200",endpoint="createTask",family="kie-veo"}'
        in text
    )
    # Each account's figures (one account here: the KIE_* one, named kie).
    assert 'soraq_account_in_flight{account="kie"}' in text
    assert 'soraq_kie_create_limit_per_second{account="kie"}' in text
    assert 'soraq_kie_call_seconds_bucket{endpoint="recordInfo"' in text
    assert 'soraq_jobs_total{model="veo3.1-fast/text-to-video",status="succeeded"}' in text
