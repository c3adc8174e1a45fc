"""A batch as its client sees it, in API answers and the `batch.completed` webhook."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from models.batch import Batch


class BatchOut(BaseModel):
    id: str
    status: Literal["processing", "completed"] = Field(
        description="`completed` once every job has ended (succeeded, failed or canceled)."
    )
    job_count: int
    counts: dict[str, int] = Field(description="How many of its jobs are in each status.")
    metadata: dict[str, Any] | None
    webhook_url: str | None
    created_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, batch: Batch, counts: dict[str, int]) -> BatchOut:
        return cls(
            id=batch.id,
            status="completed" if batch.completed_at is not None else "processing",
            job_count=batch.job_count,
            counts=counts,
            metadata=batch.meta,
            webhook_url=batch.webhook_url,
            created_at=batch.created_at,
            completed_at=batch.completed_at,
        )
