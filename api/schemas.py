from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.job import Job, JobStatus
from models.webhook import WebhookDelivery

PRIORITIES = {"high": 0, "normal": 1, "low": 2}
PRIORITY_NAMES: dict[int, Literal["high", "normal", "low"]] = {0: "high", 1: "normal", 2: "low"}


class JobCreate(BaseModel):
    """A new job. Fields beyond these are model parameters, checked against the catalogue."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"examples": [{"prompt": "A cute cat playing in a garden"}]},
    )

    prompt: str = Field(min_length=1, description="What the video shows (1–5000 characters).")
    model: str | None = Field(
        None,
        description="A model id from GET /models. Default: "
        "sora-2-text-to-video, or sora-2-image-to-video with an image.",
    )
    aspect_ratio: str | None = Field(None, description="Sora 2: landscape or portrait.")
    duration: int | None = Field(None, description="Seconds; Sora 2: 10 or 15.")
    remove_watermark: bool | None = None
    size: str | None = Field(None, description="Pro models only: standard or high.")
    image_url: str | None = Field(None, description="An https URL, passed to Kie as it is.")
    image_base64: str | None = Field(
        None, description="Raw base64 or a data: URL (jpeg/png/webp, ≤10 MB)."
    )
    metadata: dict[str, Any] | None = Field(
        None, description="Small free JSON object, echoed back."
    )
    webhook_url: str | None = Field(
        None, description="Where to POST the signed completion event (Standard Webhooks)."
    )
    priority: Literal["high", "normal", "low"] = Field(
        "normal", description="Order among this client's own queued jobs."
    )

    def model_params(self) -> dict[str, Any]:
        """The parameters the catalogue checks: the known optional ones plus any extra field."""
        known = {
            name: getattr(self, name)
            for name in ("aspect_ratio", "duration", "remove_watermark", "size")
        }
        return {k: v for k, v in {**known, **(self.model_extra or {})}.items() if v is not None}


class JobError(BaseModel):
    code: str
    message: str
    kie_fail_code: str | None = None


class JobResult(BaseModel):
    video_urls: list[str]
    watermarked_video_urls: list[str] = []


class WebhookStatus(BaseModel):
    event_id: str
    state: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None


class JobOut(BaseModel):
    id: str
    status: JobStatus
    model: str
    input: dict[str, Any]
    progress: int | None
    kie_task_id: str | None
    result: JobResult | None
    error: JobError | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    metadata: dict[str, Any] | None
    webhook_url: str | None = None
    webhook: WebhookStatus | None = None
    priority: Literal["high", "normal", "low"] = "normal"
    queue_position: int | None = Field(
        None, description="While queued: 1 + this client's queued jobs admitted before it."
    )

    @classmethod
    def of(
        cls, job: Job, delivery: WebhookDelivery | None = None, queue_position: int | None = None
    ) -> JobOut:
        shown = dict(job.input)
        if job.image_url:
            shown["image_url"] = job.image_url
        return cls(
            id=job.id,
            status=JobStatus(job.status),
            model=job.model,
            input=shown,
            progress=job.progress,
            kie_task_id=job.kie_task_id,
            result=JobResult(**job.result) if job.result else None,
            error=JobError(
                code=job.error_code,
                message=job.error_message or "",
                kie_fail_code=job.kie_fail_code,
            )
            if job.error_code
            else None,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            metadata=job.meta,
            webhook_url=job.webhook_url,
            webhook=WebhookStatus(
                event_id=delivery.id,
                state=delivery.state,
                attempts=delivery.attempts,
                last_status_code=delivery.last_status_code,
                last_error=delivery.last_error,
                delivered_at=delivery.delivered_at,
            )
            if delivery
            else None,
            priority=PRIORITY_NAMES.get(job.priority, "normal"),
            queue_position=queue_position,
        )


class JobPage(BaseModel):
    data: list[JobOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class AdminJobOut(JobOut):
    client_id: str | None
    client: str | None

    @classmethod
    def of_admin(cls, job: Job, client_name: str | None) -> AdminJobOut:
        return cls(**JobOut.of(job).model_dump(), client_id=job.client_id, client=client_name)


class AdminJobPage(BaseModel):
    data: list[AdminJobOut]
    next_cursor: str | None = None


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    kind: str
    from_status: str | None
    to_status: str | None
    reason: str | None
    detail: dict[str, Any] | None


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    event_type: str
    url: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


class AdminJobDetail(BaseModel):
    job: AdminJobOut
    events: list[EventOut]
    webhooks: list[DeliveryOut]


class Stats(BaseModel):
    window_seconds: int
    counts: dict[str, dict[str, int]] = Field(description="status → model → jobs created")
    success_rate: float | None
    generation_seconds_p50: float | None
    generation_seconds_p95: float | None
    kie_errors: dict[str, int]
    queue_depth: dict[str, int]
    oldest_due_seconds: float | None
