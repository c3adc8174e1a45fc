"""Queries about jobs, beside the model. They build statements; sync and async callers run them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    Column,
    ColumnElement,
    Insert,
    Integer,
    Select,
    String,
    Table,
    Update,
    any_,
    bindparam,
    case,
    func,
    insert,
    inspect,
    literal,
    select,
    tuple_,
    update,
)

from models.base import utcnow
from models.client import Client
from models.event import JobEvent
from models.job import Job
from models.lifecycle import AT_KIE
from models.spend import day_spend, month_spend
from models.webhook import WebhookDelivery


def job_by_id(job_id: str, client_id: str | None = None) -> Select[Job]:
    """A job; scoped to one client when `client_id` is given (another client's job is absent)."""
    query = select(Job).where(Job.id == job_id)
    if client_id is not None:
        query = query.where(Job.client_id == client_id)
    return query


def recent_outcomes(last: int, days: float = 7.0) -> Select[Any]:
    """Per model, of its `last` finished live jobs within `days`: (model, succeeded, total).
    Canceled jobs say nothing of the model; test-mode jobs ran on the sandbox."""
    position = func.row_number().over(partition_by=Job.model, order_by=Job.finished_at.desc())
    finished = (
        select(Job.model, Job.status, position.label("n"))
        .where(
            Job.status.in_(["succeeded", "failed"]),
            Job.livemode.is_(True),
            Job.finished_at.is_not(None),
            Job.finished_at > _days_ago(days),
        )
        .subquery()
    )
    won = func.sum(case((finished.c.status == "succeeded", 1), else_=0))
    return (
        select(finished.c.model, won, func.count())
        .where(finished.c.n <= last)
        .group_by(finished.c.model)
    )


def _days_ago(days: float) -> datetime:
    return utcnow() - timedelta(days=days)


def jobs_of_client(job_ids: list[str], client_id: str) -> Select[Job]:
    """These jobs, those of this client only (another client's are simply not found)."""
    return select(Job).where(Job.id.in_(job_ids), Job.client_id == client_id)


def jobs_page(
    *,
    client_id: str | None,
    status: str | None,
    limit: int,
    after: tuple[datetime, str] | None,
    batch_id: str | None = None,
) -> Select[Job]:
    """Newest first; `after` is the (created_at, id) of the last row of the previous page."""
    query = select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    if batch_id is not None:
        query = query.where(Job.batch_id == batch_id)
    if client_id is not None:
        query = query.where(Job.client_id == client_id)
    if status is not None:
        query = query.where(Job.status == status)
    if after is not None:
        created_at, job_id = after
        # A row-value comparison, which the (created_at, id) index serves as one range scan.
        query = query.where(tuple_(Job.created_at, Job.id) < tuple_(created_at, job_id))
    return query


def admitted_not_submitted(now: datetime) -> ColumnElement[bool]:
    """Jobs the dispatcher admitted that have not reached their createTask yet: still queued,
    with an admission time, and held until `next_check_at` (a claim on the create window a
    requeue gives up). The one definition admission and the credits guard share."""
    return (
        (Job.status == "queued")
        & Job.admitted_at.is_not(None)
        & (Job.next_check_at > now)
        & Job.livemode.is_(True)  # a test-mode job's createTask goes to the sandbox
    )


def jobs_ahead(job: Job) -> Select[Any]:
    """The client's queued jobs that will be admitted before this one (its own FIFO, by
    priority then age); other clients' jobs interleave by weight, see worker.admission."""
    return select(func.count()).where(
        Job.client_id == job.client_id,
        Job.status == "queued",
        tuple_(Job.priority, Job.created_at, Job.id) < tuple_(job.priority, job.created_at, job.id),
    )


def active_job_count(client_id: str | ColumnElement[str]) -> Select[Any]:
    """A client's unfinished jobs (those with a next_check_at): the counter that triggers on
    `jobs` keep (migration 0014), one row to read however many there are."""
    return select(
        func.coalesce(select(Client.active_jobs).where(Client.id == client_id).scalar_subquery(), 0)
    )


def recent_job_count(
    client_id: str | ColumnElement[str],
    since: datetime | ColumnElement[datetime],
    up_to: int | ColumnElement[int],
) -> Select[Any]:
    """A client's jobs created after `since`, counted up to `up_to` (its creation rate):
    bounded, on the (client_id, created_at) index."""
    recent = (
        select(Job.id)
        .where(Job.client_id == client_id, Job.created_at > since)
        .limit(up_to)
        .subquery()
    )
    return select(func.count()).select_from(recent)


@dataclass(frozen=True)
class BudgetCheck:
    """A client's budgets for the insert: each cap with its UTC period (models.spend)."""

    daily: float | None = None
    today: str | None = None  # YYYY-MM-DD
    monthly: float | None = None
    month_first_day: str | None = None


def insert_job_within_limit(
    job: Job,
    up_to: int,
    rate_count: int,
    rate_since: datetime,
    budget: BudgetCheck,
    created_reason: str | None = None,
) -> tuple[Insert, dict[str, Any]]:
    """Insert a new job unless its client already has `up_to` unfinished ones, has created
    `rate_count` since `rate_since`, or would go over a budget with this job's reservation:
    the bounded counts, the sums and the insert in one statement, one round trip. It returns
    the new job's id; no row: over a limit. (RETURNING, not rowcount: the async psycopg
    adapter reports -1.) Returns the statement (built once per budget shape: building SQL
    costs more than running it here) and its parameters.

    With `created_reason` (PostgreSQL only: a data-modifying WITH) the job's first history
    row is inserted by the same statement, and it returns the job's id from that row."""
    # Columns whose value is None are left out (NULL without a parameter: most of a new job's
    # columns), unless a server default would fill them instead.
    given = [(column, getattr(job, key)) for column, key in job_columns()]
    params = {
        f"new_{column.key}": value
        for column, value in given
        if value is not None or column.server_default is not None
    }
    params.update(
        limit_client_id=job.client_id,
        limit_up_to=up_to,
        rate_count=rate_count,
        rate_since=rate_since,
    )
    if budget.daily is not None:
        params.update(daily_cap=budget.daily, today=budget.today)
    if budget.monthly is not None:
        params.update(monthly_cap=budget.monthly, month_first_day=budget.month_first_day)
    if created_reason is not None:
        params.update(event_reason=created_reason)
    statement = _insert_within_limit(
        tuple(name[4:] for name in params if name.startswith("new_")),
        budget.daily is not None,
        budget.monthly is not None,
        created_reason is not None,
    )
    return statement, params


_JOBS = cast(Table, Job.__table__)
_EVENTS = cast(Table, JobEvent.__table__)


@lru_cache(maxsize=1)
def job_columns() -> list[tuple[Column[Any], str]]:
    """(column, the Job attribute that holds it): `metadata` is held by `meta`."""
    mapper = inspect(Job)
    return [(column, mapper.get_property_by_column(column).key) for column in _JOBS.columns]


@lru_cache(maxsize=64)  # one per budget shape and set of columns a new job gives
def _insert_within_limit(
    given: tuple[str, ...], daily: bool, monthly: bool, with_event: bool = False
) -> Insert:
    limit = bindparam("limit_up_to", type_=Integer)
    count = active_job_count(bindparam("limit_client_id", type_=String)).scalar_subquery()
    # Python-side column defaults do not apply to INSERT … SELECT: the caller gives every
    # column that is not to be NULL (or its server default).
    columns = [_JOBS.c[name] for name in given]
    row = select(*(bindparam(f"new_{c.key}", type_=c.type) for c in columns))
    # The table, not the entity: an ORM-enabled INSERT … SELECT would go through bulk insert.
    rate_count = bindparam("rate_count", type_=Integer)
    since = bindparam("rate_since", type_=Job.created_at.type)
    recent = recent_job_count(
        bindparam("limit_client_id", type_=String), since, rate_count
    ).scalar_subquery()
    within_limit = row.where(count < limit, recent < rate_count)
    # Budgets read the client's spend counters: one row for the day, at most 31 for the month.
    client = bindparam("limit_client_id", type_=String)
    reserve = bindparam("new_credits_reserved", type_=Job.credits_reserved.type)
    if daily:
        used = day_spend(client, bindparam("today", type_=String))
        cap = bindparam("daily_cap", type_=Job.credits_reserved.type)
        within_limit = within_limit.where(used.scalar_subquery() + reserve <= cap)
    if monthly:
        used = month_spend(client, bindparam("month_first_day", type_=String))
        cap = bindparam("monthly_cap", type_=Job.credits_reserved.type)
        within_limit = within_limit.where(used.scalar_subquery() + reserve <= cap)
    new_job = insert(_JOBS).from_select(columns, within_limit)
    if not with_event:
        return new_job.returning(_JOBS.c.id)
    inserted = new_job.returning(_JOBS.c.id, _JOBS.c.created_at, _JOBS.c.status).cte("new_job")
    event = select(
        inserted.c.id,
        inserted.c.created_at,
        literal("transition"),
        inserted.c.status,
        bindparam("event_reason", type_=String),
    )
    return (
        insert(_EVENTS)
        .from_select(["job_id", "at", "kind", "to_status", "reason"], event)
        .returning(_EVENTS.c.job_id)
    )


def _claim(
    dialect: str,
    model: Any,
    due_column: Any,
    *,
    now: datetime,
    limit: int,
    lease: timedelta,
    returning: tuple[Any, ...],
    where: Any = None,
    lease_column: Any = None,
) -> Update:
    """Rows due by `due_column` are claimed by setting `lease_column` (by default the due
    column itself) to the end of a lease; RETURNING `returning`."""
    due = select(model.id).where(due_column.is_not(None), due_column <= now)
    if lease_column is not None:
        due = due.where((lease_column.is_(None)) | (lease_column <= now))
    if where is not None:
        due = due.where(where)
    due = due.order_by(due_column).limit(limit)
    if dialect == "postgresql":
        # `id = ANY(ARRAY(...))` lets the planner use the partial index (see stack measurements);
        # SKIP LOCKED lets parallel sweeps take different rows.
        target = model.id == any_(
            func.array(due.with_for_update(skip_locked=True).scalar_subquery())
        )
    else:
        target = model.id.in_(due.scalar_subquery())  # SQLite: one writer, atomic as it stands
    lease_key = (lease_column if lease_column is not None else due_column).key
    return (
        update(model)
        .where(target)
        .values({lease_key: now + lease})
        .returning(*returning)
        .execution_options(synchronize_session=False)
    )


def claim_due(dialect: str, *, now: datetime, limit: int, lease: timedelta) -> Update:
    """Claim up to `limit` due jobs that are past admission (checks, expired leases) with a
    lease in `claimed_until`, which the job's next step clears; RETURNING ids. Queued jobs
    wait for worker.admission.

    A claimed job whose message is lost is simply due again when the lease ends.
    """
    return _claim(
        dialect,
        Job,
        Job.next_check_at,
        now=now,
        limit=limit,
        lease=lease,
        returning=(Job.id,),
        where=Job.status != "queued",
        lease_column=Job.claimed_until,
    )


def claim_due_deliveries(dialect: str, *, now: datetime, limit: int, lease: timedelta) -> Update:
    """The same for webhook deliveries; RETURNING (id, attempts) — the attempt to make."""
    return _claim(
        dialect,
        WebhookDelivery,
        WebhookDelivery.next_attempt_at,
        now=now,
        limit=limit,
        lease=lease,
        returning=(WebhookDelivery.id, WebhookDelivery.attempts),
    )


def check_now_by_callback(
    job_id: str, task_id: str | None, *, now: datetime, debounce: float, lease: float
) -> Update:
    """A Kie callback arrived: make the job due at once (the check itself re-reads the task),
    unless another callback did within `debounce` seconds. A job at Kie is claimed for
    `lease` seconds by the callback itself, whose check the API sends straight to a worker
    (the sweep would take a hop longer); a lost message is due again when the lease ends. A
    job still submitting with no task id of its own keeps the named task as a candidate for
    adoption (worker.adopt) — at once when its createTask answer is known lost, else when its
    lease ends. A job that has ended is not touched: its end is final."""
    recent = now - timedelta(seconds=debounce)
    at_kie = Job.status.in_(list(AT_KIE))
    orphan = Job.kie_task_id.is_(None) & (Job.status == "submitting")
    return (
        update(Job)
        .where(Job.id == job_id)
        .where((Job.callback_at.is_(None)) | (Job.callback_at < recent))
        .values(
            callback_at=now,
            # A job still submitting keeps its lease; recording callback_at makes the
            # transition to "at Kie" schedule its first check at once. A finished job
            # stays finished: a late callback does not bring it back.
            next_check_at=case(
                (at_kie, now),
                # Its createTask answer was lost: adopt the named task now, not at the
                # lease's end.
                (
                    orphan
                    & (Job.waiting_reason == "kie_answer_lost")
                    & literal(task_id is not None),
                    now,
                ),
                else_=Job.next_check_at,
            ),
            claimed_until=case((at_kie, now + timedelta(seconds=lease)), else_=Job.claimed_until),
            adopt_task_id=case((orphan, literal(task_id)), else_=Job.adopt_task_id),
        )
        .returning(Job.id, Job.status)
        .execution_options(synchronize_session=False)
    )


def release_claim(job_id: str) -> Update:
    """Give a claimed job back to the sweep at once."""
    return (
        update(Job)
        .where(Job.id == job_id)
        .values(claimed_until=None)
        .execution_options(synchronize_session=False)
    )


def recent_generation_seconds(model: str, limit: int = 50) -> Select[Any, Any]:
    """How long the model's latest successes took at the upstream, newest first (the model's
    listing index serves it)."""
    return (
        select(Job.submitted_at, Job.finished_at)
        .where(
            Job.model == model,
            Job.status == "succeeded",
            Job.submitted_at.is_not(None),
            Job.finished_at.is_not(None),
        )
        .order_by(Job.created_at.desc())
        .limit(limit)
    )


def job_traces(ids: list[str]) -> Select[Any]:
    """What a job's spans need (core.tracing), for the jobs a sweep hands out."""
    columns = (Job.id, Job.traceparent, Job.created_at, Job.client_id, Job.model, Job.kie_task_id)
    return select(*columns).where(Job.id.in_(ids), Job.traceparent.is_not(None))  # type: ignore[return-value]
