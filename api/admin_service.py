"""What operators do: see every client's jobs, their history, and act on them."""

from __future__ import annotations

import re
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.cursors import decode_cursor, encode_cursor
from api.errors import Conflict, NotFound, NotRetryable
from api.nudge import Nudger
from api.service import get_job
from catalogue.accounts import accounts
from core.config import get_settings
from core.errors import InvalidRequest
from models.account_queries import account_rows, in_flight_by_account
from models.admin_queries import (
    admin_jobs_page,
    counts_by_status_and_model,
    generation_times,
    job_deliveries,
    job_history,
    kie_errors,
    oldest_due,
    queue_depth,
    storage_by_client,
)
from models.base import utcnow
from models.client import Client
from models.event import JobEvent
from models.job import Job, JobStatus
from models.lifecycle import record_event, retry
from models.webhook import DeliveryState, WebhookDelivery

WINDOW_PATTERN = r"^(\d{1,6})([smhd])$"  # also declared in the OpenAPI document
_WINDOW = re.compile(WINDOW_PATTERN)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


MAX_WINDOW = timedelta(days=366)
_EARLIEST, _LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)


def parse_window(window: str) -> timedelta:
    match = _WINDOW.match(window)
    if match is None:
        raise InvalidRequest("window", "must look like 90m, 24h or 7d")
    parsed = timedelta(seconds=int(match.group(1)) * _UNIT[match.group(2)])
    if parsed > MAX_WINDOW:
        raise InvalidRequest("window", "must be at most 366d")
    return parsed


def bounded_time(field: str, value: datetime | None) -> datetime | None:
    """A filter time as UTC (a time without a zone is read as UTC), within years a job can
    have: 0001-01-01 is a 422 that says so, not a database overflow."""
    if value is None:
        return None
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    if not _EARLIEST <= value <= _LATEST:
        raise InvalidRequest(field, "must be between 2000-01-01 and 2200-01-01")
    return value


async def list_jobs(
    session: AsyncSession,
    *,
    statuses: list[str],
    model: str | None,
    client: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    q: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[tuple[Job, str | None]], str | None]:
    # The bounds are checked first: a filter that matches nobody is no reason to skip them.
    after_bound = bounded_time("created_after", created_after)
    before_bound = bounded_time("created_before", created_before)
    client_id = None
    if client:
        client_id = await session.scalar(
            select(Client.id).where((Client.name == client) | (Client.id == client))
        )
        if client_id is None:
            return [], None
    page = admin_jobs_page(
        statuses=statuses,
        model=model,
        client_id=client_id,
        created_after=after_bound,
        created_before=before_bound,
        q=q.strip() if q else None,
        limit=limit + 1,
        after=decode_cursor(cursor) if cursor else None,
    )
    rows = [(job, name) for job, name in (await session.execute(page)).all()]
    next_cursor = encode_cursor(rows[limit - 1][0]) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def job_detail(
    session: AsyncSession, job_id: str
) -> tuple[Job, str | None, list[JobEvent], list[WebhookDelivery]]:
    job = await get_job(session, job_id, None)
    client_name = await session.scalar(select(Client.name).where(Client.id == job.client_id))
    events = list((await session.scalars(job_history(job_id))).all())
    deliveries = list((await session.scalars(job_deliveries(job_id))).all())
    return job, client_name, events, deliveries


async def retry_job(session: AsyncSession, job_id: str, *, nudger: Nudger) -> Job:
    """A failed job gets a fresh attempt as a new Kie task; its history keeps the old one."""
    job = await get_job(session, job_id, None)
    if job.status != JobStatus.FAILED:
        raise NotRetryable(f"only a failed job can be retried; this one is {job.status}")
    if job.deleted_at is not None:
        raise NotRetryable("this job's data was erased: there is nothing left to retry")
    reason = f"retried by an operator (was {job.error_code})"
    moved = await session.run_sync(retry, job_id, reason=reason)
    await session.commit()
    if not moved:
        raise Conflict("the job changed meanwhile; look again")
    nudger.nudge()
    return await get_job(session, job_id, None)


async def replay_delivery(
    session: AsyncSession, delivery_id: str, *, nudger: Nudger
) -> WebhookDelivery:
    """Send a webhook event again: the same event id and body, a fresh retry schedule."""
    delivery = await session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise NotFound(f"no webhook delivery {delivery_id}")
    now = utcnow()
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .values(
            state=DeliveryState.PENDING,
            attempts=0,
            next_attempt_at=now,
            last_error=None,
        )
    )
    await session.run_sync(
        lambda sync: record_event(
            sync,
            delivery.job_id,
            "admin",
            now=now,
            reason="webhook replayed by an operator",
            detail={"delivery_id": delivery_id},
        )
    )
    await session.commit()
    nudger.nudge()
    refreshed = await session.get(WebhookDelivery, delivery_id, populate_existing=True)
    assert refreshed is not None
    return refreshed


async def stats(session: AsyncSession, window: timedelta) -> dict[str, Any]:
    now = utcnow()
    since = now - window
    counts: dict[str, dict[str, int]] = {}
    for status, model, count in (await session.execute(counts_by_status_and_model(since))).all():
        counts.setdefault(status, {})[model] = count
    finished = {s: sum(counts.get(s, {}).values()) for s in ("succeeded", "failed")}
    total = finished["succeeded"] + finished["failed"]
    durations = sorted(
        (done - submitted).total_seconds()
        for submitted, done in (await session.execute(generation_times(since))).all()
    )
    p95 = durations[max(0, round(len(durations) * 0.95) - 1)] if durations else None
    oldest = await session.scalar(oldest_due(now))
    return {
        "window_seconds": int(window.total_seconds()),
        "counts": counts,
        "success_rate": round(finished["succeeded"] / total, 4) if total else None,
        "generation_seconds_p50": round(statistics.median(durations), 3) if durations else None,
        "generation_seconds_p95": round(p95, 3) if p95 is not None else None,
        "kie_errors": {
            str(code): n for code, n in (await session.execute(kie_errors(since))).all()
        },
        "queue_depth": {status: n for status, n in (await session.execute(queue_depth())).all()},
        "oldest_due_seconds": round((now - oldest).total_seconds(), 3) if oldest else None,
        **_with_first(await _balances(session)),
        "storage_bytes": {
            name: int(total or 0)
            for name, total in (await session.execute(storage_by_client())).all()
        },
    }


async def _balances(session: AsyncSession) -> dict[str, dict[str, Any]]:
    """Each upstream account's balance as last read, whether its admission is paused and
    why, and its jobs in flight — by name, in priority order."""
    now = utcnow()
    rows = {row.name: row for row in (await session.execute(account_rows())).all()}
    busy = dict((await session.execute(in_flight_by_account())).all())
    shown = {}
    for upstream in accounts(get_settings()):
        row = rows.get(upstream.name)
        until = row.paused_until if row is not None else None
        shown[upstream.name] = {
            "provider": upstream.provider,
            "remaining": row.kie_credits if row is not None else None,
            "read_at": _iso(row.kie_credits_at if row is not None else None),
            "low_since": _iso(row.low_credits_since if row is not None else None),
            "paused": row.account_reason if row is not None else None,
            "rate_limited_until": _iso(until if until is not None and until > now else None),
            "in_flight": int(busy.get(upstream.name, 0)),
            "max_in_flight": upstream.max_in_flight,
        }
    return shown


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _with_first(balances: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """`accounts`, and `kie_credits` as before accounts: the first account's figures."""
    first = next(iter(balances.values()))
    keys = ("remaining", "read_at", "low_since", "paused")
    return {"kie_credits": {key: first[key] for key in keys}, "accounts": balances}
