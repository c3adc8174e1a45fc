from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime


class IdempotencyKey(Base):
    """Stripe's semantics: one client + one key → one job (or one batch), for 24 hours.

    The primary key makes two concurrent requests with one key create one job: the second
    insert fails on the constraint, not on a read-then-write race.
    """

    __tablename__ = "idempotency_keys"

    client_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    # The job, or the batch, the key's first request made.
    job_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("jobs.id", ondelete="CASCADE"), default=None
    )
    batch_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("batches.id", ondelete="CASCADE"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
