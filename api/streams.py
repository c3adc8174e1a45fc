"""Jobs as they happen: `Prefer: wait` and the server-sent event streams.

Both read `job_events` (the history the state machine writes in the same transaction as each
change) and sleep on the process's `EventHub` between reads, holding no database connection
while they wait: a waiting request costs an idle socket and a coroutine.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.errors import Unauthorized
from api.events import EventHub, Hold
from models.event import JobEvent
from models.event_queries import public_events
from models.job import Job, JobStatus
from models.lifecycle import TERMINAL
from models.webhook_queries import latest_delivery
from views.jobs import JobOut

MAX_WAIT = 60  # seconds a `Prefer: wait` may hold a request (RFC 7240's wait, capped)
HEARTBEAT = 15  # seconds between comment lines on an idle stream
RECHECK = 30.0  # seconds a waiter sleeps without news before it reads anyway
SETTLING = 0.25  # …and while events wait behind a hole in the ids (api.event_horizon)
PAGE = 500  # events per read; after a full page the next is read at once, not after a wait
T = TypeVar("T")


def parse_prefer_wait(header: str | None) -> int | None:
    """The seconds asked for by `Prefer: wait[=N]` (RFC 7240), capped at MAX_WAIT; None when
    the header does not ask to wait. A preference the server cannot read is ignored, as the
    RFC says, never an error."""
    if not header:
        return None
    for preference in header.split(","):
        token = preference.split(";", 1)[0].strip()
        name, _, value = token.partition("=")
        if name.strip().lower() != "wait":
            continue
        value = value.strip().strip('"')
        if not value:
            return MAX_WAIT
        if _ascii_digits(value, 6):
            return min(int(value), MAX_WAIT)
        return None
    return None


def _ascii_digits(text: str, most: int) -> bool:
    # str.isdigit() is true of "²", which int() refuses: headers arrive as latin-1 text.
    return 0 < len(text) <= most and text.isascii() and text.isdigit()


def parse_last_event_id(header: str | None) -> int | None:
    """Last-Event-ID as a browser sends it back: an event id (at most 18 digits, within a
    64-bit integer); anything else starts from the beginning."""
    value = (header or "").strip()
    return int(value) if _ascii_digits(value, 18) else None


async def wait_for_end(
    hub: EventHub,
    sessionmaker: async_sessionmaker[AsyncSession],
    job_id: str,
    seconds: float,
    hold: Hold,
) -> JobOut | None:
    """The finished job's view as soon as it has ended, or None after `seconds`. Waiters of
    one job share each read (EventHub.read_shared). Unauthorized once the key that asked is
    disabled or rotated."""
    deadline = time.monotonic() + seconds
    with hub.subscribe(job_id=job_id, hold=hold) as waiter:
        while True:
            if hold.revoked:
                raise Unauthorized("This API key was disabled or replaced while waiting.")
            ended = await hub.read_shared(waiter.keys[0], lambda: _ended_view(sessionmaker, job_id))
            if ended is not None:
                return ended
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            await waiter.wait(min(left, RECHECK))


async def _ended_view(sessionmaker: async_sessionmaker[AsyncSession], job_id: str) -> JobOut | None:
    async with sessionmaker() as session:
        job = await session.get(Job, job_id, populate_existing=True)
        if job is None or JobStatus(job.status) not in TERMINAL:
            return None
        delivery = await session.scalar(latest_delivery(job.id))
        return JobOut.of(job, delivery)


def _sse(event: JobEvent, job: Job | None) -> dict[str, Any]:
    """One history row as an SSE event: `status`, `progress`, or `completed` carrying the
    finished job."""
    at = event.at.isoformat()
    if event.kind == "progress":
        name = "progress"
        data: dict[str, Any] = {
            "job_id": event.job_id,
            "progress": (event.detail or {}).get("progress"),
            "at": at,
        }
    else:
        status = JobStatus(event.to_status or JobStatus.QUEUED)
        name = "completed" if status in TERMINAL else "status"
        data = {
            "job_id": event.job_id,
            "status": status.value,
            "previous_status": event.from_status,
            "reason": event.reason,
            "at": at,
        }
        if status in TERMINAL and job is not None:
            data["job"] = JobOut.of(job).model_dump(mode="json")
    return {"id": str(event.id), "event": name, "data": json.dumps(data, separators=(",", ":"))}


async def _read(
    sessionmaker: async_sessionmaker[AsyncSession],
    after: int,
    *,
    job_id: str | None = None,
    client_id: str | None = None,
    upto: int | None = None,
) -> list[dict[str, Any]]:
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                public_events(
                    after=after, job_id=job_id, client_id=client_id, upto=upto, limit=PAGE
                )
            )
        ).all()
        out = []
        for event, _client in rows:
            ended = event.kind == "transition" and event.to_status in TERMINAL
            job = await session.get(Job, event.job_id) if ended else None
            out.append(_sse(event, job))
        return out


async def released(hold: Hold, stream: AsyncIterator[T]) -> AsyncIterator[T]:
    """The stream's events; its client's place (EventHub.hold) is freed when it ends."""
    try:
        async for event in stream:
            yield event
    finally:
        hold.release()


async def job_stream(
    hub: EventHub,
    sessionmaker: async_sessionmaker[AsyncSession],
    job_id: str,
    last_event_id: int,
    hold: Hold,
) -> AsyncIterator[dict[str, Any]]:
    """The job's history after `last_event_id`, then each new event; ends after the
    terminal one, or when the key that opened it is disabled or rotated."""
    with hub.subscribe(job_id=job_id, hold=hold) as waiter:
        after = last_event_id
        while not hold.revoked:
            # Ended before the read: the read then has the terminal event if it is still due.
            ended = await _has_ended(sessionmaker, job_id)
            # Ended: the horizon must be read after that, or one cached from just before the
            # terminal event committed would hide it — and the stream would end without it.
            upto, pending = await hub.horizon(fresh=ended, since=waiter.woke_at)
            events = await _read(sessionmaker, after, job_id=job_id, upto=upto)
            for event in events:
                after = int(event["id"])
                yield event
                if event["event"] == "completed":
                    return
            if len(events) == PAGE:
                continue  # more are there already (a stream resumed far back): read them now
            if ended and not pending:
                return  # resumed after the terminal event: nothing more will come
            await waiter.wait(SETTLING if pending else RECHECK)


async def _has_ended(sessionmaker: async_sessionmaker[AsyncSession], job_id: str) -> bool:
    async with sessionmaker() as session:
        job = await session.get(Job, job_id, populate_existing=True)
        return job is None or JobStatus(job.status) in TERMINAL


async def client_stream(
    hub: EventHub,
    sessionmaker: async_sessionmaker[AsyncSession],
    client_id: str,
    last_event_id: int | None,
    hold: Hold,
) -> AsyncIterator[dict[str, Any]]:
    """Every event of the client's jobs from now on (or after `last_event_id`); ends only
    when the key that opened it is disabled or rotated (a reconnect then gets 401)."""
    with hub.subscribe(client_id=client_id, hold=hold) as waiter:
        if last_event_id is None:
            # "From now on" starts at the horizon, not the newest id: an event with a lower
            # id whose transaction is still committing is news too.
            horizon, _ = await hub.horizon(since=waiter.woke_at)
            if horizon is None:
                async with sessionmaker() as session:
                    horizon = await _newest_event_id(session)
            last_event_id = horizon
        after = last_event_id
        while not hold.revoked:
            # Woken by a commit: a horizon read before it would hide the event that woke us.
            upto, pending = await hub.horizon(since=waiter.woke_at)
            events = await _read(sessionmaker, after, client_id=client_id, upto=upto)
            for event in events:
                after = int(event["id"])
                yield event
            if len(events) < PAGE:  # else more are there already: read them now
                await waiter.wait(SETTLING if pending else RECHECK)


async def _newest_event_id(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.max(JobEvent.id))) or 0)
