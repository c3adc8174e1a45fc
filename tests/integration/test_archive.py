"""Results that outlive Kie's links: archived before success, served with Range and ETag, on
the file store (embedded stack) and on a real S3-protocol server (the production stack)."""

from __future__ import annotations

import hashlib
import time
import uuid

import httpx
import pytest

from tests.integration.conftest import ADMIN_TOKEN, Stack


def unique(prompt: str) -> str:
    return f"{prompt} #{uuid.uuid4().hex[:8]}"


def fetch(stack: Stack, url: str, **headers: str) -> httpx.Response:
    """A signed link, opened as a browser would: no Authorization, redirects followed."""
    with httpx.Client(timeout=10, follow_redirects=True) as browser:
        return browser.get(url, headers=headers)


def test_a_video_is_archived_and_outlives_the_upstream_link(stack: Stack) -> None:
    job = stack.wait(stack.create(prompt=unique("kept forever [kie:expire=1]"))["id"])
    assert job["status"] == "succeeded", job
    [video] = job["result"]["videos"]
    assert job["result"]["video_urls"] == [video["url"]]
    assert video["has_audio"] is True
    assert video["duration_s"] == 1.0
    assert (video["width"], video["height"]) == (64, 48)
    assert video["content_type"] == "video/mp4"

    time.sleep(2)  # the upstream's link is gone now
    assert stack.sandbox.get(video["source_url"].removeprefix(stack.sandbox_url)).status_code == 404

    whole = fetch(stack, video["url"])
    assert whole.status_code == 200
    assert hashlib.sha256(whole.content).hexdigest() == video["sha256"]
    assert len(whole.content) == video["bytes"]

    part = fetch(stack, video["url"], range="bytes=0-99")
    assert part.status_code == 206
    assert part.content == whole.content[:100]

    poster = fetch(stack, video["poster_url"])
    assert poster.status_code == 200
    assert poster.content.startswith(b"\xff\xd8\xff")  # a JPEG


def test_content_needs_the_client_or_a_valid_signature(stack: Stack) -> None:
    job = stack.wait(stack.create(prompt=unique("guarded"))["id"])
    path = f"/jobs/{job['id']}/content"
    with httpx.Client(base_url=str(stack.api.base_url), timeout=10) as anonymous:
        assert anonymous.get(path).status_code == 401
        assert anonymous.get(path, params={"exp": 9999999999, "sig": "0" * 32}).status_code == 401
    other_key, _ = stack.local.create_client(f"other-{uuid.uuid4().hex[:6]}")
    with httpx.Client(
        base_url=str(stack.api.base_url), headers={"authorization": f"Bearer {other_key}"}
    ) as other:
        assert other.get(path).status_code == 404
    owner = stack.api.get(path, follow_redirects=True)
    assert owner.status_code == 200
    etag = job["result"]["videos"][0]["sha256"]
    if stack.backend == "sqlite+filesystem":  # served here: the ETag is ours
        assert owner.headers["etag"] == f'"{etag}"'
        assert owner.headers["accept-ranges"] == "bytes"
    unchanged = stack.api.get(path, headers={"if-none-match": f'"{etag}"'})
    assert unchanged.status_code == 304


def test_a_result_that_is_not_a_video_fails_the_job(stack: Stack) -> None:
    job = stack.wait(stack.create(prompt=unique("garbage out [kie:badvideo]"))["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "upstream_bad_output"
    assert job["kie_task_id"]  # the paid task stays on record


def test_an_expired_link_is_renewed_through_kies_download_url(stack: Stack) -> None:
    job = stack.wait(stack.create(prompt=unique("expired at once [kie:expire=0]"))["id"])
    assert job["status"] == "succeeded", job
    [video] = job["result"]["videos"]
    assert video["archived"] is True  # fetched through the fresh link Kie handed out
    assert [c for c in stack.calls("download-url") if video["source_url"] in c["url"]]
    assert fetch(stack, video["url"]).status_code == 200


def test_a_source_gone_for_good_still_succeeds_and_says_so(stack: Stack) -> None:
    job = stack.wait(stack.create(prompt=unique("gone for good [kie:purged]"))["id"])
    assert job["status"] == "succeeded", job  # it was made and paid for
    [video] = job["result"]["videos"]
    assert video["archived"] is False
    assert "404" in video["archive_error"]
    assert video["url"] is None
    assert job["result"]["video_urls"] == [video["source_url"]]


def test_a_result_the_guard_refuses_is_still_a_success_with_its_source_url(stack: Stack) -> None:
    job = stack.wait(stack.create(prompt=unique("points inside [kie:inside]"))["id"])
    assert job["status"] == "succeeded", job  # made and paid for: never thrown away
    [video] = job["result"]["videos"]
    assert video["archived"] is False
    assert "private" in video["archive_error"]
    assert video["source_url"].startswith("http://10.0.0.7/")
    assert video["url"] is None
    assert job["result"]["video_urls"] == [video["source_url"]]


def test_files_past_their_retention_are_deleted_and_the_job_says_so(stack: Stack) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from models.base import utcnow
    from models.db import make_engine
    from models.job import Job

    job = stack.wait(stack.create(prompt=unique("kept for a while"))["id"])
    [video] = job["result"]["videos"]
    assert video["expires_at"] is not None  # RESULT_RETENTION_DAYS after it succeeded
    url = video["url"]
    assert fetch(stack, url).status_code == 200

    engine = make_engine(stack.env["DATABASE_URL"])
    try:
        with engine.begin() as connection:  # its retention ran out
            connection.execute(
                update(Job)
                .where(Job.id == job["id"])
                .values(media_expires_at=utcnow() - timedelta(seconds=1))
            )
    finally:
        engine.dispose()
    stack.local.send_task("soraq.expire_media")
    deadline = time.monotonic() + 20
    shown = job
    while time.monotonic() < deadline:
        shown = stack.api.get(f"/jobs/{job['id']}").json()
        if shown["result"]["videos"][0]["expired"]:
            break
        time.sleep(0.2)
    assert shown["result"]["videos"][0]["expired"] is True
    assert shown["result"]["videos"][0]["url"] is None
    gone = stack.api.get(f"/jobs/{job['id']}/content")
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "content_expired"


def test_storage_used_shows_in_stats_metrics_and_readyz(stack: Stack) -> None:
    stack.wait(stack.create(prompt=unique("counted in storage"))["id"])
    admin = {"authorization": f"Bearer {stack.env['ADMIN_TOKEN']}"}
    stats = stack.api.get("/admin/stats", headers=admin).json()
    assert stats["storage_bytes"]["integration"] > 0
    assert 'soraq_storage_bytes{client="integration"}' in stack.api.get("/metrics").text
    ready = stack.api.get("/readyz").json()
    assert ready["checks"]["storage"] == "reachable"


def test_storage_down_holds_jobs_in_archiving_until_it_returns(stack: Stack) -> None:
    if stack.services is None or stack.backend == "sqlite+filesystem":
        pytest.skip("the file store cannot be taken away; the S3 server can")
    s3 = stack.services.s3
    bucket = stack.env["STORAGE_URL"].removeprefix("s3://").split("/", 1)[0]
    s3.close()
    try:
        created = stack.create(prompt=unique("while storage is down"))
        deadline = time.monotonic() + 20
        job = created
        while time.monotonic() < deadline:
            job = stack.api.get(f"/jobs/{created['id']}").json()
            if job["status"] == "archiving" and job["waiting_reason"]:
                break
            time.sleep(0.2)
        assert job["status"] == "archiving", job  # waiting, not failed
        assert job["waiting_reason"] == "storage_unavailable", job  # and saying why
        history = stack.api.get(
            f"/admin/jobs/{created['id']}", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
        ).json()["events"]
        retries = [e for e in history if e["kind"] == "retry"]
        assert retries, history
        assert retries[0]["reason"].startswith("storage_unavailable: "), history
        ready = stack.api.get("/readyz")
        assert ready.status_code == 503
        assert "storage unreachable" in ready.json()["error"]["message"]
    finally:
        s3.start()  # the same port; moto keeps nothing, so the bucket comes back empty
        s3.create_bucket(bucket)
    done = stack.wait(created["id"], timeout=60)
    assert done["status"] == "succeeded", done
    assert done["waiting_reason"] is None
    assert fetch(stack, done["result"]["videos"][0]["url"]).status_code == 200


def test_a_video_still_plays_after_every_soraq_process_restarts(stack: Stack) -> None:
    from devstack.stack import wait_http

    job = stack.wait(stack.create(prompt=unique("survives restarts"))["id"])
    [video] = job["result"]["videos"]
    port = stack.local.api_url.rsplit(":", 1)[1]
    restarts = {
        "api": ("api", "--port", port),
        "worker": ("worker", "--queues", "soraq"),
        "webhooks": ("worker", "--queues", "webhooks", "--no-beat"),
        "archive": ("worker", "--queues", "archive", "--no-beat"),
    }
    if "beat" in stack.local.processes:
        restarts["beat"] = ("beat",)
    for name in restarts:
        if name in stack.local.processes:
            stack.local.stop(name)
    for name, args in restarts.items():
        stack.local.start(name, *args)
    wait_http(f"{stack.local.api_url}/healthz")
    # The link handed out before the restart still works, and so does a fresh one.
    before = fetch(stack, video["url"])
    assert hashlib.sha256(before.content).hexdigest() == video["sha256"]
    fresh = stack.api.get(f"/jobs/{job['id']}").json()["result"]["videos"][0]["url"]
    assert fetch(stack, fresh, range="bytes=10-19").content == before.content[10:20]


def test_a_worker_killed_mid_download_leaves_nothing_half_written(stack: Stack) -> None:
    import signal

    created = stack.create(prompt=unique("killed while archiving [kie:slowfile=4] [kie:size=2MB]"))
    deadline = time.monotonic() + 20
    while stack.api.get(f"/jobs/{created['id']}").json()["status"] != "archiving":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1)  # mid-download, on the archive queue's worker
    stack.local.stop("archive", signal.SIGKILL)
    stack.local.start("archive", "worker", "--queues", "archive", "--no-beat")
    job = stack.wait(created["id"], timeout=60)  # after the stage's lease, archived again
    assert job["status"] == "succeeded", job
    [video] = job["result"]["videos"]
    whole = fetch(stack, video["url"])
    assert hashlib.sha256(whole.content).hexdigest() == video["sha256"]
    assert len(whole.content) == 2 * 1024 * 1024


def test_slow_downloads_never_hold_the_threads_that_submit_and_watch_jobs(stack: Stack) -> None:
    """Issue 24, item 5: results that trickle in occupy the archive queue's workers; a new
    job is still submitted and watched at once."""
    slow = [stack.create(prompt=unique(f"trickling {i} [kie:slowfile=6]"))["id"] for i in range(10)]
    deadline = time.monotonic() + 30
    while any(stack.api.get(f"/jobs/{j}").json()["status"] != "archiving" for j in slow):
        assert time.monotonic() < deadline, "the slow jobs never reached archiving"
        time.sleep(0.2)
    started = time.monotonic()
    quick = stack.create(prompt=unique("meanwhile"))["id"]
    while stack.api.get(f"/jobs/{quick}").json()["status"] not in ("archiving", "succeeded"):
        assert time.monotonic() - started < 15, "a job step waited behind the downloads"
        time.sleep(0.1)
    took = time.monotonic() - started
    still = [stack.api.get(f"/jobs/{j}").json()["status"] for j in slow]
    assert "archiving" in still, "the downloads should still be running"
    assert took < 6  # submitted and watched while every download still trickled
    for job_id in [*slow, quick]:
        assert stack.wait(job_id, timeout=90)["status"] == "succeeded"
