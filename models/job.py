from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    and_,
    any_,
    func,
    select,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class JobStatus(StrEnum):
    QUEUED = "queued"  # stored; not yet picked up
    UPLOADING = "uploading"  # sending the input image to imgbb
    SUBMITTING = "submitting"  # createTask in flight: never call it again for this job
    WAITING = "waiting"  # at Kie, mirroring Kie's own states
    QUEUING = "queuing"
    GENERATING = "generating"
    ARCHIVING = "archiving"  # the upstream is done; copying the result into soraq's storage
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


# Between a job's upload and its end upstream: what counts against an account's max_in_flight.
IN_FLIGHT = sorted(
    {JobStatus.UPLOADING, JobStatus.SUBMITTING}
    | {JobStatus.WAITING, JobStatus.QUEUING, JobStatus.GENERATING}
)


def new_job_id() -> str:
    return "job_" + secrets.token_hex(12)


def new_callback_token() -> str:
    return secrets.token_urlsafe(32)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_job_id)
    client_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("clients.id", ondelete="RESTRICT"), default=None
    )
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    model: Mapped[str] = mapped_column(String(100))
    # What the client asked for, as validated (never image bytes).
    input: Mapped[dict[str, Any]] = mapped_column(JSON)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, default=None)
    webhook_url: Mapped[str | None] = mapped_column(Text, default=None)

    kie_task_id: Mapped[str | None] = mapped_column(String(200), unique=True, default=None)
    callback_token: Mapped[str] = mapped_column(String(64), unique=True, default=new_callback_token)
    image_url: Mapped[str | None] = mapped_column(Text, default=None)  # the first image's URL
    # Every input image by role, in order: [{"role": "first_frame", "url": "https://…"}, …];
    # an uploaded image has "upload": <position in job_images> until imgbb gives its URL.
    images: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    # Why a queued job is not being admitted (e.g. kie_insufficient_credits: a fact about the
    # account that holds back every job); cleared when admission resumes.
    waiting_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    # A task id a callback named while the job had none (its createTask answer was lost): the
    # worker adopts it once the upstream confirms the task was made with this job's callback.
    adopt_task_id: Mapped[str | None] = mapped_column(String(200), default=None)
    # Archived result files: when they are deleted (RESULT_RETENTION), and what they take.
    media_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    media_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # When the job's data was erased (models.erasure): the row is a tombstone from then on.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The job's trace (OpenTelemetry): its creation span's W3C traceparent, which every later
    # step joins (core.tracing). None when tracing was off.
    traceparent: Mapped[str | None] = mapped_column(String(64), default=None)
    # Kie credits. The estimate comes from the catalogue's price table at creation; `reported`
    # is Kie's own figure (creditsConsumed or consumeCredits); `reserved` is what counts against the
    # client's budgets: the estimate until the job settles, then the charge (reported, else
    # the estimate), or 0 when the job ended before Kie accepted it (nothing was spent).
    credits_estimated: Mapped[float | None] = mapped_column(Float, default=None)
    credits_reported: Mapped[float | None] = mapped_column(Float, default=None)
    # Which answer and field carried it ("callback.creditsConsumed", "recordInfo.consumeCredits").
    credits_reported_from: Mapped[str | None] = mapped_column(String(40), default=None)
    credits_reserved: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    # How much of `credits_reserved` its client's spend counter holds (models.spend).
    credits_counted: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    progress: Mapped[int | None] = mapped_column(Integer, default=None)
    # The last tenth of progress announced (event, webhook): each is announced once.
    progress_announced: Mapped[int | None] = mapped_column(Integer, default=None)
    # Which webhook events the client asked for (started, progress, completed); None is
    # ["completed"], the only event before clients could choose.
    webhook_events: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    batch_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("batches.id", ondelete="SET NULL"), default=None
    )
    # False for a test-mode key's jobs: they go to the sandbox and cost no credits.
    livemode: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    kie_fail_code: Mapped[str | None] = mapped_column(String(64), default=None)  # Kie's failCode

    # Scheduling. A non-terminal job always has next_check_at; a terminal one never does.
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)
    # Consecutive transient failures of the current step (a success resets it); a webhook
    # delivery's `attempts`, by contrast, counts every attempt.
    failures: Mapped[int] = mapped_column(Integer, default=0)
    priority: Mapped[int] = mapped_column(Integer, default=1)  # 0 high, 1 normal, 2 low
    admitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The upstream account (catalogue.accounts) admission chose; fixed once createTask is sent.
    account: Mapped[str | None] = mapped_column(String(32), default=None)
    # The account the client pinned the job to (`route`, or `failover: false`): admission
    # gives it to that account only, and it waits while that account cannot take it.
    route: Mapped[str | None] = mapped_column(String(32), default=None)
    # Why fal cannot make this job (catalogue/fal.toml: a value beyond fal's limits, an input
    # it takes no field for): admission gives it to no fal account. None: fal can.
    fal_refusal: Mapped[str | None] = mapped_column(String(200), default=None)
    # fal's price for the job in USD once it is sent to fal (fal bills dollars, not credits).
    provider_usd: Mapped[float | None] = mapped_column(Float, default=None)
    # When a job at Kie times out (JOB_TIMEOUT from its submission).
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # While a worker holds a stage (uploading, submitting, archiving): until when. A job still
    # in that stage after this was abandoned by a crash.
    stage_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    callback_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Set by the sweep's claim, cleared by the next step: a claimed job is not due again until
    # it passes, so a lost message comes back. Not in any index, so the claim is a cheap
    # (HOT) update instead of a new entry in every index of this table.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    __table_args__ = (
        # The sweep's index: only rows that still need work are in it.
        Index(
            "ix_jobs_due",
            "next_check_at",
            postgresql_where=text("next_check_at IS NOT NULL"),
            sqlite_where=text("next_check_at IS NOT NULL"),
        ),
        # Newest-first listing (keyset pagination), optionally by status.
        Index("ix_jobs_created", "created_at", "id"),
        Index("ix_jobs_status_created", "status", "created_at", "id"),
        Index("ix_jobs_client_created", "client_id", "created_at", "id"),
        Index("ix_jobs_model_created", "model", "created_at", "id"),
        # Admission: each client's queue in order (FIFO within priority).
        Index("ix_jobs_client_queue", "client_id", "status", "priority", "created_at", "id"),
        # Postgres also has ix_jobs_prompt_trgm, a trigram index on input->>'prompt' for the
        # admin search (migration 0003); autogenerate does not compare expression indexes.
        # Counting a client's unfinished jobs (its limit) reads only unfinished rows.
        # The media sweep: jobs whose archived files are due for deletion.
        Index(
            "ix_jobs_media_expires",
            "media_expires_at",
            postgresql_where=text("media_expires_at IS NOT NULL"),
            sqlite_where=text("media_expires_at IS NOT NULL"),
        ),
        Index("ix_jobs_batch", "batch_id", "id"),
        Index(
            "ix_jobs_client_active",
            "client_id",
            postgresql_where=text("next_check_at IS NOT NULL"),
            sqlite_where=text("next_check_at IS NOT NULL"),
        ),
    )


class JobImage(Base):
    """Input image bytes waiting to be uploaded; each row is deleted once imgbb has it."""

    __tablename__ = "job_images"

    job_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True, default=0)
    role: Mapped[str] = mapped_column(String(16), default="first_frame")
    content_type: Mapped[str] = mapped_column(String(32))
    data: Mapped[bytes] = mapped_column(LargeBinary)


def in_lock_order(dialect: str, *criteria: ColumnElement[bool]) -> ColumnElement[bool]:
    """The WHERE of an update of many jobs that takes their row locks in id order (PostgreSQL).

    Two multi-row updates over the same jobs (a batch's cancel, admission, a paused model's
    hold) that lock in whatever order their plans visit the rows can each hold a row the
    other waits for: PostgreSQL then kills one as a deadlock. Locking in one order makes the
    later one wait instead. The criteria stay on the update too: a row that changed while we
    waited is re-checked. SQLite has one writer at a time."""
    if dialect != "postgresql":
        return and_(*criteria)
    ids = select(Job.id).where(*criteria).order_by(Job.id).with_for_update(key_share=True)
    return and_(Job.id == any_(func.array(ids.scalar_subquery())), *criteria)
