"""`soraq submit` and `soraq jobs` against the running stack, as a person would use them."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.images import PNG
from tests.integration.conftest import EMBEDDED, Stack


def soraq(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SORAQ_URL": stack.local.api_url,
        "SORAQ_API_KEY": stack.api.headers["authorization"].split()[-1],
    }
    return subprocess.run(
        [sys.executable, "-m", "soraq.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(autouse=True)
def _once(stack: Stack) -> None:
    if stack.backend != EMBEDDED:
        pytest.skip("the CLI talks HTTP; one stack is enough")


def test_submit_and_wait_prints_the_video_url(stack: Stack) -> None:
    result = soraq(stack, "submit", f"A kite over the sea {uuid.uuid4().hex[:6]}", "--wait")
    assert result.returncode == 0, result.stderr
    job_id, url = result.stdout.split()[:2]
    assert job_id.startswith("job_")
    # The archived copy, served by soraq through a signed link.
    assert url.startswith(f"{stack.env['PUBLIC_URL']}/jobs/{job_id}/content?")


def test_submit_an_image_file(stack: Stack, tmp_path: Path) -> None:
    image = tmp_path / "kite.png"
    image.write_bytes(PNG)
    result = soraq(stack, "submit", "The kite flies", "--image", str(image), "--wait")
    assert result.returncode == 0, result.stderr
    job = stack.api.get(f"/jobs/{result.stdout.split()[0]}").json()
    assert job["model"] == "kling-2.6/image-to-video"


def test_a_failed_job_exits_non_zero_with_its_error_code(stack: Stack) -> None:
    result = soraq(stack, "submit", "Refused [kie:422]", "--wait")
    assert result.returncode == 1
    assert "kie_invalid_request" in result.stderr


def test_a_refused_submit_says_why(stack: Stack) -> None:
    result = soraq(stack, "submit", "x", "--model", "sora-9")
    assert result.returncode == 1
    assert "unknown model" in result.stderr


def test_jobs_lists_recent_jobs_as_a_table(stack: Stack) -> None:
    done = stack.wait(stack.create(prompt="listed by the CLI")["id"])
    result = soraq(stack, "jobs", "--status", "succeeded")
    assert result.returncode == 0, result.stderr
    assert done["id"] in result.stdout
    assert "succeeded" in result.stdout
