"""Queries about webhook deliveries' per-host slots, beside the model."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Select, Update, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from models.webhook import DeliveryState, WebhookDelivery, WebhookHostSlot

_FREE = datetime(1970, 1, 1, tzinfo=UTC)


def take_host_slot(
    session: Session, host: str, holder: str, *, now: datetime, until: datetime, capacity: int
) -> int | None:
    """Take one of `capacity` slots for `host` until `until`: its number, or None when none is
    free. Each slot is taken by a compare-and-set on its row, so two workers never hold one
    slot (a duplicate message for the same delivery takes a slot of its own, and gives back
    only that one); commits at once so that other workers see the slot taken."""
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
                WebhookHostSlot.held_until <= now,
            )
            .values(holder=holder, held_until=until)
        ).rowcount  # type: ignore[attr-defined]
        if taken:
            session.commit()
            return slot
    session.commit()
    return None


def release_host_slot(session: Session, host: str, slot: int, holder: str) -> None:
    session.execute(
        update(WebhookHostSlot)
        .where(
            WebhookHostSlot.host == host,
            WebhookHostSlot.slot == slot,
            WebhookHostSlot.holder == holder,
        )
        .values(holder=None, held_until=_FREE)
    )
    session.commit()


def next_waiting(host: str) -> Select[str, int]:
    """The delivery that has waited longest for one of `host`'s slots: (id, attempts)."""
    return (
        select(WebhookDelivery.id, WebhookDelivery.attempts)
        .where(
            WebhookDelivery.waiting_host == host,
            WebhookDelivery.state == DeliveryState.PENDING,
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(1)
    )


def hand_over(delivery_id: str, attempts: int, host: str, until: datetime) -> Update:
    """Claim a waiting delivery for an immediate attempt (compare-and-set on its attempt
    count and its wait, so the sweep or a second hand-over cannot take it too)."""
    return (
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.attempts == attempts,
            WebhookDelivery.waiting_host == host,
            WebhookDelivery.state == DeliveryState.PENDING,
        )
        .values(next_attempt_at=until, waiting_host=None)
    )


def latest_delivery(job_id: str) -> Select[WebhookDelivery]:
    """The job's newest own event (not a batch's), as `GET /jobs/{id}` shows it."""
    return (
        select(WebhookDelivery)
        .where(WebhookDelivery.job_id == job_id, WebhookDelivery.event_type.like("job.%"))
        .order_by(WebhookDelivery.created_at.desc())
        .limit(1)
    )
