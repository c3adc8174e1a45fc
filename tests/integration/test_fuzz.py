"""Schemathesis against soraq's own OpenAPI spec, on the running embedded stack: no input a
client can send may produce a 5xx, and every answer must match the spec."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ADMIN_TOKEN, EMBEDDED, Stack


@pytest.mark.parametrize(
    ("who", "paths"), [("client", "^/(jobs|batches|models|healthz)"), ("admin", "^/admin")]
)
def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(
    stack: Stack, who: str, paths: str
) -> None:
    if stack.backend != EMBEDDED:
        pytest.skip("the spec is the same on both stacks; fuzzing once is the budget")
    binary = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert binary, "schemathesis is a dev dependency"
    key = stack.api.headers["authorization"] if who == "client" else f"Bearer {ADMIN_TOKEN}"
    result = subprocess.run(
        [
            binary,
            "run",
            f"{stack.local.api_url}/openapi.json",
            "--include-path-regex",
            paths,
            # Event streams stay open by design (a job's until it ends, a client's for good).
            "--exclude-path-regex",
            "/events$",
            "--header",
            f"Authorization: {key}",
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance",
            "--max-examples",
            "25",
            "--seed",
            "20261127",
            "--no-color",
            "--request-timeout",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(result.stdout[-3000:])
    assert result.returncode == 0, result.stdout[-5000:]
