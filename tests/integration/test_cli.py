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
    # What it cost: Veo 3.1 Fast's 60 credits, as Kie's record of the task reports them.
    assert "credits: 60 (reported by Kie) · $0.30" in result.stderr


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
    assert "credits" in result.stdout
    row = next(line for line in result.stdout.splitlines() if done["id"] in line)
    assert " 60 " in row  # Kie's figure (an estimate would show ~60)


def test_budgets_are_set_and_checked_by_the_cli(stack: Stack) -> None:
    name = f"budgets-{uuid.uuid4().hex[:6]}"
    created = stack.local.cli("clients", "create", name, "--daily-credits", "500")
    assert "API key" in created

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "soraq.cli", *args],
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    for bad, why in (
        (("--daily-credits", "-5"), "whole number"),
        (("--daily-credits", "1.5"), "whole number"),
        (("--daily-credits", "lots"), "whole number"),
        (("--daily-credits", "900", "--monthly-credits", "800"), "larger than the monthly"),
    ):
        result = cli("clients", "set-budget", name, *bad)
        assert result.returncode == 1, bad
        assert why in result.stderr, result.stderr
    refused = cli(
        "clients", "create", f"{name}-x", "--daily-credits", "10", "--monthly-credits", "5"
    )
    assert refused.returncode == 1
    assert "larger than the monthly" in refused.stderr
    result = cli("clients", "set-budget", name, "--monthly-credits", "20000")
    assert result.returncode == 0, result.stderr
    assert "daily 500, monthly 20000" in result.stdout
    result = cli("clients", "set-budget", name, "--daily-credits", "none")
    assert "daily none, monthly 20000" in result.stdout
    listing = cli("clients", "list").stdout
    assert any(name in line and "20000" in line for line in listing.splitlines())
