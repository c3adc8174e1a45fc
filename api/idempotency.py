"""Idempotency-Key (Stripe's semantics) for both things a request can create: a job or a
batch. One key → one first request's result for IDEMPOTENCY_TTL; the same key with another
body is refused."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import IdempotencyKeyReused
from core.config import Settings
from models.idempotency import IdempotencyKey

T = TypeVar("T")


async def remembered(
    session: AsyncSession, client_id: str, key: str, fingerprint: str, now: datetime
) -> IdempotencyKey | None:
    """The key's live record, or None; IdempotencyKeyReused if it was used with another body."""
    record = await session.get(IdempotencyKey, (client_id, key), populate_existing=True)
    if record is None or record.expires_at <= now:
        return None
    if record.request_hash != fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was used with a different request body")
    return record


async def remember(
    session: AsyncSession,
    client_id: str,
    key: str,
    fingerprint: str,
    settings: Settings,
    now: datetime,
    *,
    job_id: str | None = None,
    batch_id: str | None = None,
) -> None:
    """Record the key with what its request made, in the caller's transaction: a concurrent
    request with the same key fails on the primary key at commit."""
    # An expired key may still hold the row: it no longer counts, so it makes way.
    await session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.client_id == client_id,
            IdempotencyKey.key == key,
            IdempotencyKey.expires_at <= now,
        )
    )
    session.add(
        IdempotencyKey(
            client_id=client_id,
            key=key,
            request_hash=fingerprint,
            job_id=job_id,
            batch_id=batch_id,
            created_at=now,
            expires_at=now + timedelta(seconds=settings.idempotency_ttl),
        )
    )


async def commit_or_replay(
    session: AsyncSession, key: str | None, replay: Callable[[], Awaitable[T | None]]
) -> T | None:
    """Commit the new request's rows. None: committed. If a concurrent request with the same
    key won the insert (the primary key decides), its result instead, from `replay`."""
    try:
        await session.commit()
        return None
    except IntegrityError as exc:
        await session.rollback()
        if key is None:
            raise
        found = await replay()
        if found is None:
            raise exc from None
        return found


def reused_for_another_kind() -> IdempotencyKeyReused:
    return IdempotencyKeyReused("this Idempotency-Key was used with a different request body")
