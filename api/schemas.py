from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.job import Job
from views.batches import BatchOut
from views.jobs import JobOut


class ImageIn(BaseModel):
    """One input image with its role: a public https URL or base64 (raw or a data: URL)."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["first_frame", "last_frame", "reference"] = "first_frame"
    url: str | None = Field(None, max_length=2048)
    base64: str | None = None


ROLE_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"


class InputIn(BaseModel):
    """One input by role: a public https URL, base64 bytes (raw or a data: URL), or an
    earlier job of yours (`job`; `index` picks which of its videos)."""

    model_config = ConfigDict(extra="forbid")

    role: str = Field(
        pattern=ROLE_PATTERN,
        description="One of the model's input_roles (GET /models): first_frame, last_frame, "
        "reference, video, audio, task, …",
    )
    url: str | None = Field(None, max_length=2048)
    base64: str | None = None
    job: str | None = Field(
        None,
        max_length=40,
        description="An earlier job of yours: its video for a video or audio role, its "
        "upstream task for a task role (extend, upscale).",
    )
    index: int | None = Field(None, ge=0, le=15)


class JobCreate(BaseModel):
    """A new job. Fields beyond these are the model's own parameters, checked against its
    JSON Schema (`GET /models` → `input_schema`)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {"prompt": "A cute cat playing in a garden"},
                {
                    "prompt": "The cat turns towards the camera",
                    "model": "veo3.1-fast/image-to-video",
                    "images": [
                        {"role": "first_frame", "url": "https://example.com/first.png"},
                        {"role": "last_frame", "url": "https://example.com/last.png"},
                    ],
                    "duration": 8,
                },
                {
                    "model": "topaz/video-upscale",
                    "inputs": [{"role": "video", "job": "job_01J…"}],
                },
            ]
        },
    )

    prompt: str | None = Field(
        None,
        min_length=1,
        description="What the video shows (each model's limit). Required by most models; an "
        "upscaler or a lip-sync model takes none (its input_schema says).",
    )
    model: str | None = Field(
        None,
        max_length=100,
        description="A live model id from GET /models. Default: the catalogue's default text "
        "model, or its default image model when an image is given.",
    )
    image_url: str | None = Field(
        None, max_length=2048, description="The first frame: an https URL on a public host."
    )
    image_base64: str | None = Field(
        None, description="The first frame as raw base64 or a data: URL (jpeg/png/webp)."
    )
    images: list[ImageIn] | None = Field(
        None,
        max_length=12,
        description="More images by role (first_frame, last_frame, reference); see the "
        "model's image_roles in GET /models. An alias of `inputs` for images.",
    )
    inputs: list[InputIn] | None = Field(
        None,
        max_length=20,
        description="Inputs by role — images, videos, audio, earlier jobs — as the model's "
        "input_roles in GET /models say.",
    )
    metadata: dict[str, Any] | None = Field(
        None, description="Small free JSON object, echoed back."
    )
    webhook_url: str | None = Field(
        None, description="Where to POST the signed completion event (Standard Webhooks)."
    )
    webhook_events: list[Literal["started", "progress", "completed"]] | None = Field(
        None,
        min_length=1,
        max_length=3,
        description="Which events to POST to webhook_url: `started` (Kie accepted the task), "
        "`progress` (at most once per 10 %), `completed` (the job ended). Default: "
        '["completed"].',
    )
    priority: Literal["high", "normal", "low"] = Field(
        "normal", description="Order among this client's own queued jobs."
    )
    route: str | None = Field(
        None,
        min_length=1,
        max_length=32,
        description="Pin the job to one upstream account (a `routes[].account` of its model "
        "in GET /models): it goes there only, and waits while that account cannot take it "
        "(`waiting_reason` says why). Default: the first account by priority that can.",
    )
    failover: bool = Field(
        True,
        description="false: the job stays with its model's first route (by priority) and "
        "waits while it is paused, instead of moving to the next one.",
    )

    def model_fields_given(self) -> dict[str, Any]:
        """What the model's schema checks: the prompt and every field beyond soraq's own."""
        given = {"prompt": self.prompt} if self.prompt is not None else {}
        return {**given, **(self.model_extra or {})}


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
    storage_bytes: dict[str, int] = Field(
        default_factory=dict, description="client → bytes of archived files held now"
    )
    kie_credits: dict[str, Any] = Field(
        default_factory=dict,
        description="The first upstream account's balance: remaining, read_at, low_since, "
        "paused (as before accounts; `accounts` has every one)",
    )
    accounts: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="account → provider, remaining (credits), read_at, low_since, paused "
        "(the refusal), rate_limited_until, in_flight, max_in_flight — by priority",
    )


MAX_BATCH = 1000


class BatchCreate(BaseModel):
    """Many jobs at once, checked as a whole: one bad item refuses the batch."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[JobCreate] = Field(min_length=1, max_length=MAX_BATCH)
    webhook_url: str | None = Field(
        None, description="Where to POST the one signed `batch.completed` event."
    )
    metadata: dict[str, Any] | None = Field(
        None,
        description="Small free JSON object, echoed back; also each job's unless it has its own.",
    )


class BatchWithJobs(BatchOut):
    jobs: list[JobOut] = Field(description="A page of its jobs, newest first.")
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")
