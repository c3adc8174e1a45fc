"""The job's public view: what API responses and webhook bodies show of a job (its state,
result, error, usage, progress estimate). Shared by api/ and worker/, so it lives below both."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from core.config import get_settings
from media.links import signed_path
from models.job import Job, JobStatus
from models.webhook import WebhookDelivery
from views.estimates import estimate

PRIORITIES = {"high": 0, "normal": 1, "low": 2}
PRIORITY_NAMES: dict[int, Literal["high", "normal", "low"]] = {0: "high", 1: "normal", 2: "low"}


class JobError(BaseModel):
    code: str
    message: str
    kie_fail_code: str | None = None


class VideoOut(BaseModel):
    """One archived result file, as soraq keeps it."""

    index: int
    url: str | None = Field(
        None, description="A signed soraq link (valid for CONTENT_URL_TTL); None if not archived."
    )
    sha256: str | None = None
    bytes: int | None = None
    content_type: str | None = None
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    has_audio: bool | None = None
    poster_url: str | None = Field(None, description="A signed link to a JPEG frame.")
    source_url: str = Field(description="The upstream's own link (it expires upstream).")
    expires_at: datetime | None = None
    watermarked: bool = False
    archived: bool = True
    expired: bool = Field(False, description="Deleted after its retention (expires_at).")
    archive_error: str | None = Field(
        None, description="Why soraq has no copy (the upstream's link was already gone)."
    )


class JobResult(BaseModel):
    video_urls: list[str]
    watermarked_video_urls: list[str] = []
    videos: list[VideoOut] = []

    @classmethod
    def of(cls, job_id: str, result: dict[str, Any]) -> JobResult:
        if "videos" not in result:  # a job finished before results were archived
            return cls(
                video_urls=result.get("video_urls", []),
                watermarked_video_urls=result.get("watermarked_video_urls", []),
            )
        base = (get_settings().public_url or "").rstrip("/")
        videos = []
        for position, video in enumerate(result["videos"]):
            fields = {k: v for k, v in video.items() if k in VideoOut.model_fields}
            if video.get("archived", True) and not video.get("expired"):
                fields["url"] = base + signed_path(job_id, "content", position)
                fields["poster_url"] = base + signed_path(job_id, "poster", position)
            videos.append(VideoOut(**fields))
        return cls(
            video_urls=[v.url or v.source_url for v in videos if not v.watermarked],
            watermarked_video_urls=[v.url or v.source_url for v in videos if v.watermarked],
            videos=videos,
        )


class JobUsage(BaseModel):
    """What a job costs in Kie credits."""

    credits_estimated: float | None = Field(
        None, description="From the catalogue's price table when the job was created."
    )
    credits_charged: float | None = Field(
        None,
        description="Kie's own figure when reported; else the estimate once the job is at "
        "an end (0 when it never reached Kie). None while it runs.",
    )
    credits_charged_source: Literal["kie", "estimate", "not_submitted"] | None = None
    credits_charged_from: str | None = Field(
        None,
        description="Where Kie's figure was read: the answer and its field, e.g. "
        "callback.creditsConsumed, recordInfo.consumeCredits (Kie's pages name it either way).",
    )
    usd_estimated: float | None = Field(
        None,
        description="credits_charged (else the estimate) × CREDIT_USD_RATE; for a job made "
        "at fal.ai, fal's own price in dollars (0 once it failed: fal bills what it made).",
    )
    usd_source: Literal["credit_rate", "fal"] | None = Field(
        None, description="Where usd_estimated comes from: Kie credits at CREDIT_USD_RATE, or fal."
    )

    @classmethod
    def of(cls, job: Job) -> JobUsage:
        charged: float | None = None
        source: Literal["kie", "estimate", "not_submitted"] | None = None
        if job.credits_reported is not None:
            charged, source = job.credits_reported, "kie"
        elif job.status == JobStatus.SUCCEEDED:
            charged, source = job.credits_estimated, "estimate"
        elif job.status in (JobStatus.FAILED, JobStatus.CANCELED):
            if (job.credits_reserved or 0) > 0:
                charged, source = job.credits_reserved, "estimate"
            else:
                charged, source = 0.0, "not_submitted"
        basis = charged if charged is not None else job.credits_estimated
        rate = get_settings().credit_usd_rate
        usd = round(basis * rate, 4) if basis is not None else None
        usd_source: Literal["credit_rate", "fal"] | None = None if usd is None else "credit_rate"
        if job.provider_usd is not None:  # made at fal, which bills dollars
            usd = 0.0 if job.status == JobStatus.FAILED else round(job.provider_usd, 4)
            usd_source = "fal"
        return cls(
            credits_estimated=job.credits_estimated,
            credits_charged=charged,
            credits_charged_source=source,
            credits_charged_from=job.credits_reported_from if source == "kie" else None,
            usd_estimated=usd,
            usd_source=usd_source,
        )


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
    waiting_reason: str | None = Field(
        None,
        description="While queued: why admission holds it back, e.g. kie_insufficient_credits "
        "(a fact about the account: every job waits, none fails for it before its timeout). "
        "While submitting: kie_answer_lost (Kie's answer to createTask was lost; the job waits "
        "for Kie's callback to name its task until SUBMIT_LEASE, never resubmitting). "
        "While archiving: why the copy is being retried, e.g. storage_unavailable (soraq's "
        "own storage is down; the video is kept at Kie and archived when it is back).",
    )
    progress_source: Literal["reported", "estimated"] | None = Field(
        None, description="Whether `progress` comes from the upstream or from recent runs."
    )
    eta: datetime | None = Field(
        None, description="While generating: when the video is expected, from recent runs."
    )
    usage: JobUsage = Field(default_factory=JobUsage)
    route: str | None = Field(
        None, description="The upstream account the job is pinned to (`route` or `failover`)."
    )
    account: str | None = Field(
        None,
        description="The upstream account admission gave the job (GET /models → routes); "
        "fixed once its task was created there. None until admitted.",
    )
    livemode: bool = Field(
        True, description="False for a test-mode key's job: it ran on the sandbox, free."
    )
    deleted: bool = Field(
        False,
        description="True once the job's data was erased (DELETE /jobs/{id}): its prompt, "
        "inputs, metadata and files are gone; status, times and usage remain.",
    )

    @classmethod
    def of(
        cls,
        job: Job,
        delivery: WebhookDelivery | None = None,
        queue_position: int | None = None,
        waiting_reason: str | None = None,
    ) -> JobOut:
        shown = dict(job.input)
        erased = job.deleted_at is not None
        if job.images:
            shown["images"] = [
                {"role": i.get("role"), "url": i.get("url")} for i in job.images if i.get("url")
            ] or shown.get("images")
        if job.image_url:
            shown["image_url"] = job.image_url
        return cls(
            id=job.id,
            status=JobStatus(job.status),
            model=job.model,
            input=shown,
            progress=job.progress,
            kie_task_id=job.kie_task_id,
            result=JobResult.of(job.id, job.result)
            if job.result and job.status == JobStatus.SUCCEEDED
            else None,
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
            waiting_reason=(job.waiting_reason or waiting_reason)
            if job.status in (JobStatus.QUEUED, JobStatus.SUBMITTING, JobStatus.ARCHIVING)
            else None,
            usage=JobUsage.of(job),
            route=job.route,
            account=job.account,
            livemode=job.livemode,
            deleted=erased,
        ).model_copy(update=estimate(job))
