"""Several nodes behave as one service (PostgreSQL + Redis): two API processes on different
ports, three job workers, two webhook workers, an archive worker and beat. A burst of jobs goes
to both APIs; mid-burst one API and one job worker are killed with SIGKILL. Every job ends
exactly once, no job's createTask is sent twice, the workers together never exceed Kie's
create window, every completion webhook arrives, and a client streaming events from the
killed API reconnects to the other with `Last-Event-ID` and misses nothing."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import JOBS_QUEUE, WEBHOOK_QUEUE
from devstack.receiver import webhook_receiver
from devstack.stack import free_port, wait_http
from models.db import make_engine
from models.event import JobEvent
from models.event_queries import public_events
from models.job import Job
from tests.integration.conftest import PRODUCTION, TERMINAL, Services, Stack, running_stack

BURST = 60


@pytest.fixture(scope="module")
def nodes(services: Services | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Each task stays at "Kie" for 2 s, so the kills land while jobs are at every stage.
    with running_stack(
        PRODUCTION, services, tmp_path_factory.mktemp("nodes"), SANDBOX_DURATION="2"
    ) as stack:
        local = stack.local
        port = free_port()
        local.start("api-2", "api", "--host", "127.0.0.1", "--port", str(port))
        local.start("worker-2", "worker", "--queues", JOBS_QUEUE, "--no-beat")
        local.start("worker-3", "worker", "--queues", JOBS_QUEUE, "--no-beat")
        local.start("webhooks-2", "worker", "--queues", WEBHOOK_QUEUE, "--no-beat")
        wait_http(f"http://127.0.0.1:{port}/healthz")
        stack.env["API_2_URL"] = f"http://127.0.0.1:{port}"
        yield stack


@dataclass
class Listener:
    """An SSE client of `GET /jobs/events`: on the first API until it dies, then on the
    second, resuming with `Last-Event-ID`."""

    urls: list[str]
    key: str
    events: list[tuple[int, str, dict[str, object]]] = field(default_factory=list)
    reconnected_with: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        last = "0"  # everything of this (new) client's, from the start
        for url in self.urls:
            if url != self.urls[0]:
                self.reconnected_with = last
            try:
                headers = {"authorization": f"Bearer {self.key}", "last-event-id": last}
                timeout = httpx.Timeout(5, read=30)
                with (
                    httpx.Client(timeout=timeout) as client,
                    client.stream("GET", f"{url}/jobs/events", headers=headers) as response,
                ):
                    assert response.status_code == 200
                    event_id, name = "", ""
                    for line in response.iter_lines():
                        if self.stop.is_set():
                            return
                        if line.startswith("id:"):
                            event_id = line[3:].strip()
                        elif line.startswith("event:"):
                            name = line[6:].strip()
                        elif line.startswith("data:") and event_id:
                            self.events.append((int(event_id), name, json.loads(line[5:])))
                            last = event_id
            except httpx.HTTPError:
                continue  # the API went away: the next one, from the last id seen


def _post(urls: list[str], key: str, body: dict[str, object]) -> str:
    """Create one job like a careful client: an Idempotency-Key, and the other API when the
    first one is gone (the same key: a job the dead API already stored is not made twice)."""
    idempotency = uuid.uuid4().hex
    for url in urls:
        try:
            response = httpx.post(
                f"{url}/jobs",
                json=body,
                headers={"authorization": f"Bearer {key}", "idempotency-key": idempotency},
                timeout=10,
            )
        except httpx.HTTPError:
            continue
        assert response.status_code in (200, 202), response.text
        return str(response.json()["id"])
    raise AssertionError(f"no API took {body}")


def test_a_key_disabled_on_one_node_stops_working_on_every_api(nodes: Stack) -> None:
    name = f"revoked-{uuid.uuid4().hex[:6]}"
    key, _ = nodes.local.create_client(name)
    apis = [nodes.env["API_2_URL"], nodes.local.api_url]
    headers = {"authorization": f"Bearer {key}"}
    assert [httpx.get(f"{u}/jobs", headers=headers).status_code for u in apis] == [200, 200]
    nodes.local.cli("clients", "disable", name)  # another process: announced over Redis
    deadline = time.monotonic() + 5
    codes: list[int] = []
    while time.monotonic() < deadline:
        codes = [httpx.get(f"{u}/jobs", headers=headers).status_code for u in apis]
        if codes == [401, 401]:
            break
        time.sleep(0.1)
    assert codes == [401, 401]


def test_a_burst_survives_losing_an_api_and_a_worker(nodes: Stack) -> None:
    first, second = nodes.env["API_2_URL"], nodes.local.api_url  # api-2 is the one killed
    key, _ = nodes.local.create_client(f"nodes-{uuid.uuid4().hex[:6]}")
    listener = Listener([first, second], key)
    listening = threading.Thread(target=listener.run, daemon=True)
    listening.start()
    run = uuid.uuid4().hex[:8]
    with webhook_receiver() as hooks:
        prompts = [f"Node burst {run} #{i}" for i in range(BURST)]
        bodies = [{"prompt": p, "webhook_url": hooks.url + "/hooks"} for p in prompts]

        def create(index: int) -> str:
            # Alternate the APIs, as a load balancer would.
            urls = [first, second] if index % 2 == 0 else [second, first]
            if index == BURST // 2:
                nodes.local.stop("api-2", signal.SIGKILL)
                nodes.local.stop("worker-2", signal.SIGKILL)
            return _post(urls, key, bodies[index])

        with ThreadPoolExecutor(max_workers=6) as pool:
            job_ids = list(pool.map(create, range(BURST)))

        api = httpx.Client(base_url=second, headers={"authorization": f"Bearer {key}"})
        deadline = time.monotonic() + 90
        jobs: dict[str, dict[str, object]] = {}
        while len(jobs) < BURST and time.monotonic() < deadline:
            for job_id in job_ids:
                if job_id not in jobs:
                    job = api.get(f"/jobs/{job_id}").json()
                    if job["status"] in TERMINAL:
                        jobs[job_id] = job
            time.sleep(0.3)
        assert len(jobs) == BURST, f"{BURST - len(jobs)} jobs never ended"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            delivered = {json.loads(r.body)["data"]["id"] for r in hooks.received["/hooks"]}
            if delivered >= set(job_ids):
                break
            time.sleep(0.2)
        hooks_seen = list(hooks.received["/hooks"])

    # One job per request, whichever API took it (the Idempotency-Key held across nodes).
    assert len(set(job_ids)) == BURST
    outcomes = Counter(str(job["status"]) for job in jobs.values())
    print(f"after killing an API and a worker mid-burst: {dict(outcomes)}")
    for job in jobs.values():
        prompt = str(job["input"]["prompt"])  # type: ignore[index]
        # Never two Kie tasks for one job; a job that failed never reached Kie at all.
        assert nodes.creates_for(prompt) == (1 if job["status"] == "succeeded" else 0), job
        if job["status"] != "succeeded":
            assert job["error"]["code"] == "submit_unknown", job  # type: ignore[index]
    assert outcomes["succeeded"] >= BURST - 3, outcomes

    # The three workers shared Kie's create window: no createTask was refused for it.
    ours = [c for c in nodes.calls("createTask") if str(c.get("prompt", "")).startswith("Node")]
    assert not [c for c in ours if c.get("code") == 429]

    engine = make_engine(nodes.env["DATABASE_URL"])
    try:
        with engine.connect() as connection:
            ended = Counter(
                connection.scalars(
                    select(JobEvent.job_id).where(
                        JobEvent.job_id.in_(job_ids),
                        JobEvent.kind == "transition",
                        JobEvent.to_status.in_(TERMINAL),
                    )
                )
            )
            client_id = connection.scalar(select(Job.client_id).where(Job.id == job_ids[0]))
            everything = public_events(after=0, client_id=client_id, limit=100_000)
            with Session(bind=connection) as session:
                history = [event.id for event, _ in session.execute(everything)]
    finally:
        engine.dispose()
    # Every job ended exactly once: one terminal transition each.
    assert ended == Counter({job_id: 1 for job_id in job_ids})

    # Every completion webhook arrived (retries of one event share its webhook-id).
    completions = {json.loads(r.body)["data"]["id"]: r.headers["webhook-id"] for r in hooks_seen}
    assert set(completions) == set(job_ids)

    # The stream on the killed API resumed on the other and missed nothing.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if {i for i, _, _ in listener.events} >= set(history):
            break
        time.sleep(0.2)
    listener.stop.set()
    assert listener.reconnected_with not in (None, "0"), "the stream was not resumed"
    assert {i for i, _, _ in listener.events} == set(history)
    completed = {str(d["job_id"]) for _, name, d in listener.events if name == "completed"}
    assert completed == set(job_ids)
