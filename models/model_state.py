"""What Kie's live catalogue says of each model, as soraq last read it: paused or gone (a new
job for it is refused, its queued jobs wait), Kie's own prices (estimates use them over the
bundled table) and Kie's published success rate. One row per model id; the last drift report
beside them. Written by the worker's catalogue and price reads, read by the API and the
dispatcher."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, Integer, String, Text, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime
from models.job import Job, JobStatus, in_lock_order

PAUSED = "model_paused"  # a queued job's waiting_reason while its model is paused at Kie


class ModelState(Base):
    __tablename__ = "model_states"

    model_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    # live | paused | gone (Kie's catalogue no longer lists it): not live refuses new jobs.
    status: Mapped[str] = mapped_column(String(16), default="live")
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Kie's price list for the model (cases in upstream terms: when, per_second, per_task…).
    kie_prices: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    prices_read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    kie_success_rate: Mapped[float | None] = mapped_column(Float, default=None)
    rate_read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class CatalogueReport(Base):
    """The last comparisons of the catalogue with Kie's: what differed, and when."""

    __tablename__ = "catalogue_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    drift: Mapped[dict[str, Any]] = mapped_column(JSON)
    summary: Mapped[str] = mapped_column(Text, default="")


def unavailable_models() -> Any:
    return select(ModelState.model_id, ModelState.status, ModelState.reason).where(
        ModelState.status != "live"
    )


def hold_queued(dialect: str, model_ids: list[str], *, only_unmarked: bool = False) -> Any:
    """Queued jobs of paused models wait, saying why (`only_unmarked`: those not saying so
    yet — the dispatcher's every round, a cheap no-op when all do)."""
    criteria = [Job.status == JobStatus.QUEUED, Job.model.in_(model_ids)]
    if only_unmarked:
        criteria.append(or_(Job.waiting_reason.is_(None), Job.waiting_reason != PAUSED))
    return (
        update(Job)
        .where(in_lock_order(dialect, *criteria))
        .values(waiting_reason=PAUSED)
        .execution_options(synchronize_session=False)
    )


def release_queued(dialect: str, model_ids: list[str], now: datetime) -> Any:
    """A model is back: its waiting jobs are due now."""
    return (
        update(Job)
        .where(
            in_lock_order(
                dialect,
                Job.status == JobStatus.QUEUED,
                Job.model.in_(model_ids),
                Job.waiting_reason == PAUSED,
            )
        )
        .values(waiting_reason=None, next_check_at=now)
        .execution_options(synchronize_session=False)
    )


def last_report() -> Any:
    return select(CatalogueReport).order_by(CatalogueReport.id.desc()).limit(1)
