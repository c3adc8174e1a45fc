"""What soraq answers, as pydantic models. Unknown fields are kept (a newer server adds some)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

TERMINAL = frozenset({"succeeded", "failed", "canceled"})


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class JobResult(_Open):
    video_urls: list[str] = []
    watermarked_video_urls: list[str] = []


class JobError(_Open):
    code: str
    message: str = ""
    kie_fail_code: str | None = None


class JobUsage(_Open):
    credits_estimated: float | None = None
    credits_charged: float | None = None
    credits_charged_source: str | None = None
    credits_charged_from: str | None = None
    usd_estimated: float | None = None


class Job(_Open):
    id: str
    status: str
    model: str
    input: dict[str, Any] = {}
    progress: int | None = None
    result: JobResult | None = None
    error: JobError | None = None
    created_at: datetime
    finished_at: datetime | None = None
    metadata: dict[str, Any] | None = None
    livemode: bool = True
    usage: JobUsage = JobUsage()
    deleted: bool = False  # True once its data was erased (jobs.delete)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    @property
    def video_url(self) -> str | None:
        return self.result.video_urls[0] if self.result and self.result.video_urls else None


class JobPage(_Open):
    data: list[Job]
    next_cursor: str | None = None


class Batch(_Open):
    id: str
    status: str
    job_count: int
    counts: dict[str, int] = {}
    metadata: dict[str, Any] | None = None
    created_at: datetime
    completed_at: datetime | None = None
    jobs: list[Job] = []
    next_cursor: str | None = None


class Model(_Open):
    id: str


class Event(_Open):
    """One server-sent event: `type` is `status`, `progress` or `completed`; `data` its
    JSON (a `completed` event's `data["job"]` is the finished job)."""

    id: str
    type: str
    data: dict[str, Any]

    @property
    def job(self) -> Job | None:
        return Job.model_validate(self.data["job"]) if "job" in self.data else None
