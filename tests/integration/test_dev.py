"""`soraq dev` (what `make run` starts): sandbox + API + worker from nothing, stopped by Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from devstack.stack import free_port, wait_http


def test_soraq_dev_runs_a_job_against_the_sandbox_and_stops_cleanly(tmp_path: Path) -> None:
    api_port, sandbox_port = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "KIE_API_KEY",
            "IMGBB_API_KEY",
            "DATABASE_URL",
            "VAR_DIR",
            "PUBLIC_URL",
            "KIE_BASE_URL",
            "IMGBB_BASE_URL",
            "ADMIN_TOKEN",  # a fresh machine has none: soraq dev makes a development one
            "CELERY_BROKER_URL",
        )
    }
    log = (tmp_path / "dev.log").open("wb")
    dev = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "soraq.cli",
            "dev",
            "--port",
            str(api_port),
            "--sandbox-port",
            str(sandbox_port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{api_port}/healthz", timeout=60)
        # The README's quick start: the demo client's key, as `soraq dev` left it.
        key = (tmp_path / "var" / "demo-api-key").read_text().strip()
        headers = {"authorization": f"Bearer {key}"}
        with httpx.Client(
            base_url=f"http://127.0.0.1:{api_port}", timeout=10, headers=headers
        ) as api:
            job = api.post("/jobs", json={"prompt": "A cute cat playing in a garden"}).json()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                job = api.get(f"/jobs/{job['id']}").json()
                if job["status"] in ("succeeded", "failed"):
                    break
                time.sleep(0.2)
        assert job["status"] == "succeeded", job
        [video] = job["result"]["videos"]
        assert video["source_url"].startswith(f"http://127.0.0.1:{sandbox_port}/v/")
        assert job["result"]["video_urls"] == [video["url"]]  # the archived copy
        # The development admin token opens the admin side.
        token = (tmp_path / "var" / "admin-token").read_text().strip()
        stats = httpx.get(
            f"http://127.0.0.1:{api_port}/admin/stats",
            headers={"authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert stats.status_code == 200, stats.text
    finally:
        dev.send_signal(signal.SIGINT)
        code = dev.wait(timeout=30)
    output = (tmp_path / "dev.log").read_text()
    assert "KIE_API_KEY is not set: using the bundled sandbox" in output
    # The newcomer's first minute: one block with the URLs, the dashboard's development
    # token, the demo key and which Kie is used; no Celery banner, no Alembic plugin lines.
    assert "soraq is running" in output
    assert (
        f"API        http://127.0.0.1:{api_port}   docs: http://127.0.0.1:{api_port}/docs" in output
    )
    token = (tmp_path / "var" / "admin-token").read_text().strip()
    assert f"/admin   admin token: {token}" in output
    assert f"Demo key   {key}" in output
    assert f"the bundled sandbox at http://127.0.0.1:{sandbox_port}" in output
    assert "[config]" not in output  # Celery's banner
    assert "[queues]" not in output
    assert "Context impl" not in output
    assert code == 0
    assert (tmp_path / "var" / "soraq.db").exists()  # the default database, under ./var
    # Every child is gone: nothing listens on the ports any more.
    for port in (api_port, sandbox_port):
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            raise AssertionError(f"port {port} still answers")
        except httpx.ConnectError:
            pass
