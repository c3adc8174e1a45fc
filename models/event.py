from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class JobEvent(Base):
    """A job's history, append-only, written in the same transaction as what it records:
    every state transition, every Kie call's outcome, every webhook attempt, every operator
    action."""

    __tablename__ = "job_events"

    # BigInteger on Postgres; SQLite needs INTEGER for its rowid auto-increment.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    job_id: Mapped[str] = mapped_column(String(40), ForeignKey("jobs.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))  # transition | kie_call | webhook | admin
    from_status: Mapped[str | None] = mapped_column(String(16), default=None)
    to_status: Mapped[str | None] = mapped_column(String(16), default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)

    __table_args__ = (
        Index("ix_job_events_job", "job_id", "id"),
        # Kie errors by code over a window (GET /admin/stats).
        Index("ix_job_events_kind_at", "kind", "at"),
    )
