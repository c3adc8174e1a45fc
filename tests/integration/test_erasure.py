"""Erasure (issue 25, item 5): a finished job's prompt, inputs, metadata, uploads and archived
files are erased on request (client, operator, `soraq jobs purge`); the job stays as a
tombstone so usage still adds up; its content links stop working at once."""

from __future__ import annotations

import base64
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.images import PNG
from tests.integration.conftest import ADMIN_TOKEN, Stack


def unique(prompt: str) -> str:
    return f"{prompt} {uuid.uuid4().hex[:8]}"


def _stored(stack: Stack, job_id: str) -> dict[str, Any]:
    """The job's row as the database has it (keys of its files, its inputs)."""
    from sqlalchemy import func, select

    from models.db import make_engine
    from models.event import JobEvent
    from models.job import Job, JobImage

    engine = make_engine(stack.env["DATABASE_URL"])
    try:
        with engine.connect() as connection:
            row = connection.execute(select(Job.__table__).where(Job.id == job_id)).one()
            uploads = connection.scalar(
                select(func.count()).select_from(JobImage).where(JobImage.job_id == job_id)
            )
            reasons = connection.scalars(
                select(JobEvent.reason).where(JobEvent.job_id == job_id)
            ).all()
            return {**row._mapping, "uploads": uploads, "reasons": reasons}
    finally:
        engine.dispose()


def _object_exists(stack: Stack, key: str) -> bool:
    storage = stack.env.get("STORAGE_URL", "")
    if not storage:  # the embedded default: a file store under VAR_DIR
        return (stack.var_dir / "media" / key).exists()
    import boto3
    from botocore.exceptions import ClientError

    parts = urlsplit(storage)
    s3 = boto3.client(
        "s3",
        endpoint_url=stack.env["S3_ENDPOINT_URL"],
        region_name=stack.env["S3_REGION"],
        aws_access_key_id=stack.env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=stack.env["AWS_SECRET_ACCESS_KEY"],
    )
    try:
        s3.head_object(Bucket=parts.netloc, Key=f"{parts.path.strip('/')}/{key}")
    except ClientError:
        return False
    return True


def _usage(stack: Stack) -> Any:
    return stack.api.get("/usage").json()["total"]


def test_a_finished_job_s_data_is_erased_and_its_usage_still_adds_up(stack: Stack) -> None:
    image = "data:image/png;base64," + base64.b64encode(PNG).decode()
    prompt = unique("A secret plan, erased later")
    job = stack.create(
        prompt=prompt,
        image_base64=image,
        metadata={"customer": "alice@example.com"},
    )
    done = stack.wait(job["id"])
    assert done["status"] == "succeeded", done
    [video] = done["result"]["videos"]
    assert httpx.get(video["url"], follow_redirects=True, timeout=10).status_code == 200
    before = _stored(stack, job["id"])
    keys = [v[k] for v in before["result"]["videos"] for k in ("key", "poster_key")]
    assert all(_object_exists(stack, key) for key in keys)
    usage_before = _usage(stack)

    erased = stack.api.delete(f"/jobs/{job['id']}")
    assert erased.status_code == 200, erased.text
    tombstone = erased.json()
    assert tombstone["deleted"] is True
    assert tombstone["status"] == "succeeded"  # its status never changes
    assert tombstone["input"] == {}
    assert tombstone["metadata"] is None
    assert tombstone["result"] is None
    assert tombstone["usage"] == done["usage"]
    assert tombstone["created_at"] == done["created_at"]
    assert tombstone["finished_at"] == done["finished_at"]
    shown = stack.api.get(f"/jobs/{job['id']}").json()
    assert shown["deleted"] is True
    assert prompt not in stack.api.get(f"/jobs/{job['id']}").text

    # The files are gone from storage, the links handed out stop at once.
    assert not any(_object_exists(stack, key) for key in keys)
    link = httpx.get(video["url"], follow_redirects=True, timeout=10)
    assert link.status_code == 410
    assert link.json()["error"]["code"] == "content_deleted"
    after = _stored(stack, job["id"])
    assert after["input"] == {}
    assert after["metadata"] is None
    assert after["uploads"] == 0
    assert prompt not in str(after)
    assert "alice@example.com" not in str(after)
    # Usage and budgets still add up: the tombstone keeps the charge.
    assert _usage(stack) == usage_before
    # Asking again answers the same.
    again = stack.api.delete(f"/jobs/{job['id']}")
    assert again.status_code == 200
    assert again.json()["deleted"] is True


def test_an_unfinished_job_is_refused_until_it_is_canceled(stack: Stack) -> None:
    job = stack.create(prompt=unique("still going [kie:stuck]"))
    refused = stack.api.delete(f"/jobs/{job['id']}")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "job_not_finished"
    assert "cancel it first" in refused.json()["error"]["message"]
    assert stack.api.post(f"/jobs/{job['id']}/cancel").status_code == 200
    erased = stack.api.delete(f"/jobs/{job['id']}")
    assert erased.status_code == 200
    assert erased.json()["status"] == "canceled"
    assert erased.json()["deleted"] is True


def test_another_client_s_job_is_a_404_and_an_operator_can_erase_any(stack: Stack) -> None:
    job = stack.wait(stack.create(prompt=unique("operator erases"))["id"])
    key, _ = stack.local.create_client(f"other-{uuid.uuid4().hex[:6]}")
    with httpx.Client(
        base_url=str(stack.api.base_url), headers={"authorization": f"Bearer {key}"}
    ) as other:
        assert other.delete(f"/jobs/{job['id']}").status_code == 404
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    erased = stack.api.delete(f"/admin/jobs/{job['id']}", headers=admin)
    assert erased.status_code == 200, erased.text
    assert stack.api.get(f"/jobs/{job['id']}").json()["deleted"] is True


def test_purge_erases_one_client_s_finished_jobs(stack: Stack) -> None:
    kept = stack.wait(stack.create(prompt=unique("not purged"))["id"])
    name = f"purged-{uuid.uuid4().hex[:6]}"
    key, _ = stack.local.create_client(name)
    with httpx.Client(
        base_url=str(stack.api.base_url), headers={"authorization": f"Bearer {key}"}, timeout=40
    ) as api:
        ids = [
            api.post(
                "/jobs", json={"prompt": unique(f"purge me {i}")}, headers={"prefer": "wait=30"}
            ).json()["id"]
            for i in range(2)
        ]
        for job_id in ids:
            assert api.get(f"/jobs/{job_id}").json()["status"] == "succeeded"
        out = stack.local.cli("jobs", "purge", "--older-than", "0s", "--client", name)
        assert out.strip() == "2 job(s) erased"
        assert all(api.get(f"/jobs/{job_id}").json()["deleted"] for job_id in ids)
    # Another client's finished job was not touched.
    assert stack.api.get(f"/jobs/{kept['id']}").json()["deleted"] is False
