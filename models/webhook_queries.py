"""Queries about webhook deliveries' per-host slots, beside the model."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from models.webhook import WebhookHostSlot

_FREE = datetime(1970, 1, 1, tzinfo=UTC)


def take_host_slot(
    session: Session, host: str, holder: str, *, now: datetime, until: datetime, capacity: int
) -> bool:
    """Take one of `capacity` slots for `host` until `until`, or say there is none free.

    Each slot is taken by a compare-and-set on its row, so two workers never hold one slot;
    commits at once so that other workers see the slot taken.
    """
    existing = session.scalar(
        select(func.count()).select_from(WebhookHostSlot).where(WebhookHostSlot.host == host)
    )
    if (existing or 0) < capacity:
        dialect_insert = (
            pg_insert
            if session.bind and session.bind.dialect.name == "postgresql"
            else sqlite_insert
        )
        session.execute(
            dialect_insert(WebhookHostSlot)
            .values([{"host": host, "slot": n, "held_until": _FREE} for n in range(capacity)])
            .on_conflict_do_nothing()
        )
    for slot in range(capacity):
        taken = session.execute(
            update(WebhookHostSlot)
            .where(
                WebhookHostSlot.host == host,
                WebhookHostSlot.slot == slot,
                or_(WebhookHostSlot.held_until <= now, WebhookHostSlot.holder == holder),
            )
            .values(holder=holder, held_until=until)
        ).rowcount  # type: ignore[attr-defined]
        if taken:
            session.commit()
            return True
    session.commit()
    return False


def release_host_slot(session: Session, host: str, holder: str) -> None:
    session.execute(
        update(WebhookHostSlot)
        .where(WebhookHostSlot.host == host, WebhookHostSlot.holder == holder)
        .values(holder=None, held_until=_FREE)
    )
    session.commit()
