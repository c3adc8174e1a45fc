from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class DeliveryState(StrEnum):
    PENDING = "pending"  # waiting for its next attempt
    DELIVERED = "delivered"  # a 2xx came back
    FAILED = "failed"  # the retry schedule ran out
    DISABLED = "disabled"  # the receiver answered 410 Gone


def new_event_id() -> str:
    return "msg_" + secrets.token_hex(12)


class WebhookDelivery(Base):
    """One completion event for one job, and how sending it went. `id` is the webhook-id header,
    stable across retries; `body` is fixed at the first attempt so retries send the same bytes."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_event_id)
    job_id: Mapped[str] = mapped_column(String(40), ForeignKey("jobs.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text, default=None)
    progress: Mapped[int | None] = mapped_column(Integer, default=None)  # what job.progress says
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set while the delivery waits for one of its host's slots: the delivery that frees a
    # slot hands it to the longest-waiting one at once (the sweep is the fallback).
    waiting_host: Mapped[str | None] = mapped_column(String(255), default=None)

    __table_args__ = (
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("next_attempt_at IS NOT NULL"),
            sqlite_where=text("next_attempt_at IS NOT NULL"),
        ),
        Index("ix_webhook_deliveries_job", "job_id", "created_at"),
        Index(
            "ix_webhook_deliveries_waiting",
            "waiting_host",
            "next_attempt_at",
            postgresql_where=text("waiting_host IS NOT NULL"),
            sqlite_where=text("waiting_host IS NOT NULL"),
        ),
    )


class WebhookHostSlot(Base):
    """One of WEBHOOK_MAX_IN_FLIGHT_PER_HOST places for a delivery in flight to one host.

    A delivery holds a slot (compare-and-set on `held_until`) for at most its deadline plus a
    margin, so a worker killed mid-send frees the slot by time alone. Deliveries of canceled
    jobs take slots like any other: a client cannot amplify traffic at a host by canceling.
    """

    __tablename__ = "webhook_host_slots"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(40), default=None)
    held_until: Mapped[datetime] = mapped_column(UTCDateTime)
