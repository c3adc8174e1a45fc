"""Logs: JSON lines in production format, and never a key, a secret or image bytes."""

from __future__ import annotations

import base64
import json
import uuid

from devstack.receiver import webhook_receiver
from tests.images import PNG
from tests.integration.conftest import ADMIN_TOKEN, Stack


def test_no_secret_or_image_bytes_reach_the_logs(stack: Stack) -> None:
    with webhook_receiver() as receiver:
        job = stack.create(
            prompt=f"logged {uuid.uuid4().hex[:6]}",
            image_base64=base64.b64encode(PNG).decode(),
            webhook_url=receiver.script("/logs"),
        )
        stack.wait(job["id"])
        stack.api.get("/admin/jobs", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
        failed = stack.create(prompt=f"fails {uuid.uuid4().hex[:6]} [kie:422]")
        stack.wait(failed["id"])
    secrets = {
        "Kie key": stack.env["KIE_API_KEY"],
        "imgbb key": stack.env["IMGBB_API_KEY"],
        "client API key": stack.api.headers["authorization"].split()[-1],
        "webhook secret": stack.webhook_secret,
        "webhook secret bytes": stack.webhook_secret.removeprefix("whsec_"),
        "admin token": ADMIN_TOKEN,
        "image bytes": base64.b64encode(PNG).decode()[:40],
    }
    logs = {
        path.name: path.read_text(errors="replace") for path in (stack.var_dir / "logs").iterdir()
    }
    assert "job_id" in logs["worker.log"]  # the job's logs are there, with their context
    for name, text in logs.items():
        for what, secret in secrets.items():
            assert secret not in text, f"{what} found in {name}"


def test_production_logs_are_one_json_object_per_line(stack: Stack) -> None:
    job = stack.wait(stack.create(prompt=f"json {uuid.uuid4().hex[:6]}")["id"])
    lines = [
        line
        for line in (stack.var_dir / "logs" / "worker.log").read_text().splitlines()
        if job["id"] in line
    ]
    assert lines
    records = [json.loads(line) for line in lines]
    submitted = next(r for r in records if "submitted to Kie" in r["message"])
    assert submitted["job_id"] == job["id"]
    assert submitted["kie_task_id"] == job["kie_task_id"]
    assert {"timestamp", "level", "message", "client"} <= submitted.keys()
    api_lines = (stack.var_dir / "logs" / "api.log").read_text().splitlines()
    assert all(json.loads(line) for line in api_lines[-20:])
