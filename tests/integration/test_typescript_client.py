"""The TypeScript client (clients/typescript): its generated types are those of the live
OpenAPI document, and its own test suite (`npm test`, Node's test runner) passes against
this running soraq."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import EMBEDDED, Stack

FOLDER = Path(__file__).resolve().parents[2] / "clients" / "typescript"


def npm() -> str:
    binary = shutil.which("npm")
    if binary is None:
        pytest.skip("Node.js and npm are not installed (make test needs them for this client)")
    if not (FOLDER / "node_modules").is_dir():
        subprocess.run(
            [binary, "ci", "--no-audit", "--no-fund"], cwd=FOLDER, check=True, timeout=600
        )
    return binary


@pytest.fixture
def one_stack(stack: Stack) -> Stack:
    if stack.backend != EMBEDDED:
        pytest.skip("the client speaks HTTP; one stack is enough")
    return stack


def test_the_generated_types_match_the_live_openapi(one_stack: Stack, tmp_path: Path) -> None:
    binary = npm()
    live = one_stack.api.get("/openapi.json").json()
    committed = json.loads((FOLDER / "openapi.json").read_text())
    assert committed == live, (
        "clients/typescript/openapi.json is stale: run `.venv/bin/soraq openapi > "
        "clients/typescript/openapi.json && (cd clients/typescript && npm run generate)`"
    )
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(live))
    out = tmp_path / "schema.d.ts"
    subprocess.run(
        [
            binary,
            "exec",
            "--",
            "openapi-typescript",
            str(spec),
            "--default-non-nullable",
            "false",
            "-o",
            str(out),
        ],
        cwd=FOLDER,
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert out.read_text() == (FOLDER / "src" / "schema.d.ts").read_text(), (
        "clients/typescript/src/schema.d.ts is stale: run `npm run generate` there"
    )


def test_the_typescript_clients_own_tests_pass_against_this_soraq(one_stack: Stack) -> None:
    binary = npm()
    key = one_stack.api.headers["authorization"].removeprefix("Bearer ")
    env = {
        **os.environ,
        "SORAQ_URL": str(one_stack.api.base_url),
        "SORAQ_API_KEY": key,
        "SORAQ_WEBHOOK_SECRET": one_stack.webhook_secret,
    }
    result = subprocess.run(
        [binary, "test"], cwd=FOLDER, env=env, capture_output=True, text=True, timeout=600
    )
    print(result.stdout[-4000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
