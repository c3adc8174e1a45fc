"""Admission against a sandbox that enforces Kie's limits (scaled to 40 new tasks per second,
100 at once): a backlog from two clients trips no limit, and the small client is not starved."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from sqlalchemy import insert
from sqlalchemy.orm import Session

from models.base import utcnow
from models.client import Client
from models.db import make_engine
from models.job import Job, new_callback_token, new_job_id
from tests.integration.conftest import Stack


def backlog(stack: Stack, tag: str, sizes: dict[str, int]) -> list[str]:
    """Queued rows for new clients, as if they had all been submitted a moment ago (the API's
    own speed is benchmark 1's business, not this test's)."""
    engine = make_engine(stack.env["DATABASE_URL"])
    now, ids, rows = utcnow(), [], []
    with Session(engine) as session:
        for n, (name, count) in enumerate(sizes.items()):
            client = Client(name=f"{name}-{tag}", key_hash=uuid.uuid4().hex * 2, key_prefix="sk_")
            session.add(client)
            session.flush()
            for i in range(count):
                created = now + timedelta(milliseconds=n * 100 + i / 100)
                job_id = new_job_id()
                ids.append(job_id)
                rows.append(
                    {
                        "id": job_id,
                        "client_id": client.id,
                        "status": "queued",
                        "model": "veo3.1-fast/text-to-video",
                        "input": {"prompt": f"{name} {tag} {i}"},
                        "failures": 0,
                        "priority": 1,
                        "callback_token": new_callback_token(),
                        "created_at": created,
                        "updated_at": created,
                        "next_check_at": now,
                    }
                )
        session.execute(insert(Job), rows)
        session.commit()
    engine.dispose()
    return ids


def test_a_backlog_from_two_clients_trips_no_limit_and_starves_no_one(stack: Stack) -> None:
    tag = uuid.uuid4().hex[:6]
    ids = backlog(stack, tag, {"big": 200, "small": 10})  # the small client arrives last
    admin = {"authorization": f"Bearer {stack.env['ADMIN_TOKEN']}"}
    deadline = time.monotonic() + 180
    for job_id in ids:
        while True:
            job = stack.api.get(f"/admin/jobs/{job_id}", headers=admin).json()["job"]
            if job["status"] in ("succeeded", "failed", "canceled"):
                break
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        assert job["status"] == "succeeded", job

    creates = [c for c in stack.calls("createTask") if tag in c.get("prompt", "")]
    assert [c for c in creates if c["code"] != 200] == []  # not one 429 from "Kie"
    assert len(creates) == 210  # one createTask per job
    seconds = creates[-1]["at"] - creates[0]["at"]
    assert seconds >= 200 / 40 - 1.5  # the limit held: 40 per second at most
    order = [c["prompt"].split()[0] for c in creates]
    last_small = max(i for i, who in enumerate(order) if who == "small")
    print(f"210 creates in {seconds:.1f} s; the small client's last start: #{last_small + 1}")
    # Round-robin: the small client's ten jobs start among the first admissions, not after
    # the big client's backlog.
    assert last_small < 40
