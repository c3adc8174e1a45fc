"""Clients that wait and watch: `Prefer: wait` answers a fast job finished in one request, and
the event streams deliver a job's history in order, resumable without gaps or repeats."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.integration.conftest import Stack


def _other_client(stack: Stack) -> httpx.Client:
    key, _ = stack.local.create_client(f"other-{uuid.uuid4().hex[:6]}")
    return httpx.Client(
        base_url=str(stack.api.base_url), headers={"authorization": f"Bearer {key}"}, timeout=10
    )


def unique(prompt: str) -> str:
    return f"{prompt} {uuid.uuid4().hex[:8]}"


def read_events(
    api: httpx.Client,
    path: str,
    *,
    last_event_id: str | None = None,
    stop_after: int = 10_000,
    until: Callable[[dict[str, Any]], bool] = lambda event: False,
    into: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The stream's events as dicts (id, event, data), until it closes, `stop_after` events or
    one that matches `until`; each is appended to `into` as it comes, if given."""
    headers = {"last-event-id": last_event_id} if last_event_id else {}
    events: list[dict[str, Any]] = [] if into is None else into
    with api.stream("GET", path, headers=headers, timeout=60) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        current: dict[str, Any] = {}
        for line in response.iter_lines():
            if not line:
                if "data" in current:
                    events.append({**current, "data": json.loads(current["data"])})
                    if len(events) >= stop_after or until(events[-1]):
                        break
                current = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(":")
                current[field] = value.removeprefix(" ")
    return events


def test_a_fast_job_comes_back_finished_in_one_request(stack: Stack) -> None:
    started = time.monotonic()
    response = stack.api.post(
        "/jobs", json={"prompt": unique("Quick")}, headers={"prefer": "wait=10"}, timeout=20
    )
    assert response.status_code == 200, response.text
    assert response.headers["preference-applied"] == "wait=10"
    job = response.json()
    assert job["status"] == "succeeded"
    assert job["result"]["video_urls"]
    assert time.monotonic() - started < 10


def test_a_slow_job_answers_202_when_the_wait_runs_out(stack: Stack) -> None:
    started = time.monotonic()
    response = stack.api.post(
        "/jobs", json={"prompt": unique("Slow [kie:slow=6]")}, headers={"prefer": "wait=1"}
    )
    assert response.status_code == 202, response.text
    assert 1 <= time.monotonic() - started < 4
    assert response.json()["status"] not in {"succeeded", "failed", "canceled"}
    # GET takes the same preference, and an unreadable one is ignored, not an error.
    waited = stack.api.get(
        response.headers["location"], headers={"prefer": "wait=30"}, timeout=40
    ).json()
    assert waited["status"] == "succeeded"
    ignored = stack.api.get(response.headers["location"], headers={"prefer": "wait=soon"})
    assert ignored.status_code == 200
    assert "preference-applied" not in ignored.headers


def test_a_stream_delivers_every_event_in_order_and_resumes_without_gaps(stack: Stack) -> None:
    job = stack.create(prompt=unique("Watched [kie:slow=4]"))
    events = read_events(stack.api, f"/jobs/{job['id']}/events")
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(set(ids))
    statuses = [e["data"]["status"] for e in events if e["event"] in ("status", "completed")]
    assert statuses[0] == "queued"
    assert statuses[-1] == "succeeded"
    assert "submitting" in statuses
    assert events[-1]["event"] == "completed"
    assert events[-1]["data"]["job"]["result"]["video_urls"]
    progress = [e["data"]["progress"] for e in events if e["event"] == "progress"]
    assert progress == sorted(progress)
    assert len({p // 10 for p in progress}) == len(progress)
    # A reconnect after any event gets exactly the rest.
    for cut in range(len(events)):
        rest = read_events(stack.api, f"/jobs/{job['id']}/events", last_event_id=events[cut]["id"])
        assert [e["id"] for e in rest] == [e["id"] for e in events[cut + 1 :]]


def test_a_stream_opened_mid_job_then_cut_and_resumed_misses_nothing(stack: Stack) -> None:
    job = stack.create(prompt=unique("Cut [kie:slow=4]"))
    first = read_events(stack.api, f"/jobs/{job['id']}/events", stop_after=2)
    rest = read_events(stack.api, f"/jobs/{job['id']}/events", last_event_id=first[-1]["id"])
    whole = read_events(stack.api, f"/jobs/{job['id']}/events")
    assert [e["id"] for e in first + rest] == [e["id"] for e in whole]
    assert rest[-1]["event"] == "completed"


def test_the_client_stream_sees_its_own_jobs_and_no_one_elses(stack: Stack) -> None:
    seen: list[dict[str, Any]] = []
    mine: dict[str, str] = {}
    broken: list[str] = []  # why the stream ended early, if it did
    # A client of its own: the stack's shared client may still have jobs of earlier modules
    # at work, whose events would crowd this stream.
    client = _other_client(stack)

    def listen() -> None:
        ended = lambda e: e["event"] == "completed" and e["data"]["job_id"] == mine.get("id")  # noqa: E731
        try:
            # Into `seen` as they come: a failure shows what had arrived by then.
            read_events(client, "/jobs/events", stop_after=200, until=ended, into=seen)
        except Exception as exc:  # anything, or the thread dies and the failure says nothing
            broken.append(repr(exc))

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(1.0)
    other = _other_client(stack)
    theirs = other.post("/jobs", json={"prompt": unique("Someone else's")}).json()
    created = client.post("/jobs", json={"prompt": unique("Broadcast")})
    assert created.status_code == 202, created.text
    job = created.json()
    mine["id"] = job["id"]
    listener.join(timeout=30)
    statuses = [e["data"]["status"] for e in seen if e["data"]["job_id"] == job["id"]]
    assert statuses, (
        broken,
        len(seen),
        client.get(f"/jobs/{job['id']}").json()["status"],
        _long_transactions(stack),  # on Postgres, one can hold the stream's horizon back
    )
    assert statuses[0] == "queued", statuses
    assert statuses[-1] == "succeeded", statuses
    assert theirs["id"] not in {e["data"]["job_id"] for e in seen}
    assert stack.api.get("/jobs/job_000000000000000000000000/events").status_code == 404


def test_a_stream_resumed_far_back_reads_its_backlog_page_after_page(stack: Stack) -> None:
    """More than a page (api.streams.PAGE) of events behind the reader's Last-Event-ID: both
    streams send them all at once — no 30-s pause between pages, and a finished job's stream
    does not end after the first page."""
    from sqlalchemy import insert

    from api.streams import PAGE
    from models.db import make_engine
    from models.event import JobEvent

    client = _other_client(stack)
    created = client.post("/jobs", json={"prompt": unique("Backlog")})
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    history = read_events(client, f"/jobs/{job_id}/events")  # ends with the job
    assert history[-1]["event"] == "completed"
    # Progress rows after the job's end stand in for a long backlog (no notification
    # comes for them once the streams below are open: nothing wakes them between pages).
    engine = make_engine(stack.env["DATABASE_URL"])
    try:
        with engine.begin() as connection:
            rows = [
                {"job_id": job_id, "kind": "progress", "detail": {"progress": n % 100}}
                for n in range(PAGE + 100)
            ]
            connection.execute(insert(JobEvent), rows)
    finally:
        engine.dispose()
    last = history[-1]["id"]
    caught_up: list[dict[str, Any]] = []

    def listen() -> None:
        read_events(
            client, "/jobs/events", last_event_id=last, stop_after=PAGE + 100, into=caught_up
        )

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    listener.join(timeout=20)  # a pause between pages would be RECHECK, 30 s
    assert len(caught_up) == PAGE + 100, len(caught_up)
    assert [e["event"] for e in caught_up] == ["progress"] * (PAGE + 100)
    # The finished job's own stream, resumed there, sends the whole backlog, then ends.
    resumed = read_events(client, f"/jobs/{job_id}/events", last_event_id=last)
    assert [int(e["id"]) for e in resumed] == [int(e["id"]) for e in caught_up]


def _new_client(stack: Stack) -> tuple[str, str]:
    name = f"held-{uuid.uuid4().hex[:6]}"
    key, _ = stack.local.create_client(name)
    return name, key


def test_a_client_holds_at_most_client_max_held_requests_and_others_still_get_in(
    stack: Stack,
) -> None:
    """Issue 24, item 4: held connections (streams, `Prefer: wait`) are capped per client
    (CLIENT_MAX_HELD, 20) with 429 and Retry-After; ordinary requests still answer."""
    _, key = _new_client(stack)
    base = str(stack.api.base_url)
    headers = {"authorization": f"Bearer {key}"}

    async def run() -> tuple[list[int], int, str, int, int]:
        async with httpx.AsyncClient(
            base_url=base,
            headers=headers,
            timeout=30,
            limits=httpx.Limits(max_connections=40),
        ) as api:
            opened = []
            for _ in range(20):
                request = api.build_request("GET", "/jobs/events")
                opened.append(await api.send(request, stream=True))
            refused = await api.get("/jobs/events")
            ordinary = await api.get("/jobs?limit=1")
            health = await api.get("/healthz")
            for response in opened:
                await response.aclose()
            return (
                [r.status_code for r in opened],
                refused.status_code,
                refused.headers.get("retry-after", ""),
                ordinary.status_code,
                health.status_code,
            )

    statuses, refused, retry_after, ordinary, health = asyncio.run(run())
    assert statuses == [200] * 20
    assert refused == 429
    assert int(retry_after) > 0
    assert ordinary == 200
    assert health == 200
    # The places are given back when the streams close.
    with httpx.Client(base_url=base, headers=headers, timeout=30) as api:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with api.stream("GET", "/jobs/events") as again:
                if again.status_code == 200:
                    break
            time.sleep(0.2)
        assert again.status_code == 200


def test_a_disabled_key_s_streams_and_waits_end(stack: Stack) -> None:
    """Issue 24, item 15: disabling (or rotating) a key closes what it holds open, within
    AUTH_CACHE_SECONDS, as its ordinary requests stop working."""
    name, key = _new_client(stack)
    headers = {"authorization": f"Bearer {key}"}
    base = str(stack.api.base_url)
    ended: dict[str, float] = {}
    waited: dict[str, int] = {}

    def stream() -> None:
        with (
            httpx.Client(base_url=base, headers=headers, timeout=60) as api,
            api.stream("GET", "/jobs/events") as response,
        ):
            assert response.status_code == 200
            for _ in response.iter_lines():
                pass
        ended["stream"] = time.monotonic()

    def wait() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=70) as api:
            job = api.post("/jobs", json={"prompt": unique("held [kie:stuck]")}).json()
            waited["status"] = api.get(
                f"/jobs/{job['id']}", headers={"prefer": "wait=60"}
            ).status_code
        ended["wait"] = time.monotonic()

    threads = [threading.Thread(target=stream), threading.Thread(target=wait)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)  # both are held now
    assert not ended
    disabled_at = time.monotonic()
    stack.local.cli("clients", "disable", name)
    for thread in threads:
        thread.join(timeout=30)
    assert set(ended) == {"stream", "wait"}
    assert waited["status"] == 401
    # AUTH_CACHE_SECONDS is 1 on the test stacks: the hub's next look at the keys.
    assert max(ended.values()) - disabled_at < 10
    with httpx.Client(base_url=base, headers=headers, timeout=10) as api:
        assert api.get("/jobs/events").status_code == 401


def _long_transactions(stack: Stack) -> list[tuple[object, ...]]:
    """Transactions open for more than 5 s on the stack's Postgres database: the event
    horizon (api.event_horizon) waits for every one that was running when a hole was seen."""
    if not stack.env["DATABASE_URL"].startswith("postgresql"):
        return []
    from sqlalchemy import text

    from models.db import make_engine

    engine = make_engine(stack.env["DATABASE_URL"])
    try:
        with engine.connect() as connection:
            return [
                tuple(row)
                for row in connection.execute(
                    text(
                        "SELECT application_name, state, now() - xact_start, left(query, 160) "
                        "FROM pg_stat_activity WHERE datname = current_database() "
                        "AND xact_start < now() - interval '5 seconds' "
                        "AND pid <> pg_backend_pid()"
                    )
                )
            ]
    finally:
        engine.dispose()
