"""Schemathesis against soraq's own OpenAPI spec, on the running embedded stack, with every
check and a fixed seed and time budget (issue 24): nothing it can send produces a 5xx, an
answer outside the spec, an accepted invalid request or an ignored token."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ADMIN_TOKEN, EMBEDDED, Stack

CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.mark.parametrize(
    ("who", "paths", "seconds"),
    [
        # Every operation a client token reaches (the client-wide event stream stays open by
        # design, so it is left out; a job's stream ends with the job and is in).
        ("client", ["--exclude-path-regex", "^/admin|^/jobs/events$"], 45),
        ("admin", ["--include-path-regex", "^/admin"], 30),
    ],
)
def test_schemathesis_finds_nothing_with_every_check(
    stack: Stack, who: str, paths: list[str], seconds: int
) -> None:
    """Every check (server errors, schema and status conformance, negative data rejected,
    positive data accepted, ignored auth, unsupported methods, …) in every phase (examples,
    coverage, fuzzing, stateful links inferred from Location headers), with a fixed seed and a
    time budget."""
    if stack.backend != EMBEDDED:
        pytest.skip("the spec is the same on both stacks; fuzzing once is the budget")
    binary = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert binary, "schemathesis is a dev dependency"
    key = stack.api.headers["authorization"] if who == "client" else f"Bearer {ADMIN_TOKEN}"
    try:
        result = subprocess.run(
            [
                binary,
                "--config-file",
                str(CONFIG),
                "run",
                f"{stack.local.api_url}/openapi.json",
                *paths,
                "--header",
                f"Authorization: {key}",
                "--checks",
                "all",
                # A deleted job stays readable as a tombstone (see schemathesis.toml).
                "--exclude-checks",
                "use_after_free",
                "--max-time",
                str(seconds),
                "--max-examples",
                "30",
                "--seed",
                "20261203",
                "--no-color",
                "--request-timeout",
                "20",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 300,
        )
    finally:
        # `ignored_auth` sends wrong tokens: the admin throttle's minute must not spill into
        # the tests after this one.
        stack.forget_auth_failures()
    print(result.stdout[-3000:])
    assert result.returncode == 0, result.stdout[-6000:]
