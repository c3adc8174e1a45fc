"""Per-client spend counters: credits held or charged by the jobs a client created on each UTC
day. A budget check reads one row (the day) or at most 31 (the month) instead of summing the
client's jobs, so it costs the same at the month's 100,000th job as at its first.

Invariant: a counter equals the sum of `credits_counted` of the client's jobs created that day,
and every change to a job's `credits_reserved` is followed, in the same transaction and while
the job's row is write-locked, by `sync_spend`, which moves the difference into the counter
and sets `credits_counted` to match. Counters are kept for clients with a budget (they are
rebuilt from the jobs when a budget is set); for the others the sync is a no-op update.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    ForeignKey,
    Select,
    String,
    Update,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base
from models.job import Job


class ClientSpend(Base):
    __tablename__ = "client_spend"

    client_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, UTC
    credits: Mapped[float] = mapped_column(Float, default=0.0)


def day_of(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: datetime) -> datetime:
    return day_start(now).replace(day=1)


def next_month(start: datetime) -> datetime:
    return (start + timedelta(days=32)).replace(day=1)


def utc_day(dialect: str) -> ColumnElement[Any]:
    """A job's creation day (UTC) as text, YYYY-MM-DD, on either database."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", Job.created_at), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", Job.created_at)


def add_spend(dialect: str, client_id: str, day: str, credits: float) -> Any:
    """Count a new job's reservation (an upsert: the day's first job makes the row)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]
    statement = upsert(ClientSpend).values(client_id=client_id, day=day, credits=credits)
    return statement.on_conflict_do_update(
        index_elements=["client_id", "day"],
        set_={"credits": ClientSpend.credits + statement.excluded.credits},
    )


@lru_cache(maxsize=1)
def add_spend_for_new_job() -> Any:
    """PostgreSQL: `add_spend` for a job inserted earlier in the same transaction — only if
    it was (its insert may have been refused), so that both can be sent at once
    (models.one_trip). Parameters: client_id, day, credits, job_id."""
    from sqlalchemy.dialects.postgresql import insert as upsert

    if_inserted = select(
        bindparam("client_id", type_=String),
        bindparam("day", type_=String),
        bindparam("credits", type_=Float),
    ).where(exists().where(Job.id == bindparam("job_id", type_=String)))
    statement = upsert(ClientSpend).from_select(["client_id", "day", "credits"], if_inserted)
    return statement.on_conflict_do_update(
        index_elements=["client_id", "day"],
        set_={"credits": ClientSpend.credits + statement.excluded.credits},
    )


def sync_spend(dialect: str, job_id: str) -> tuple[Update, Update]:
    """The two statements that follow a change to a job's credits_reserved (run them in order,
    after it, in its transaction)."""
    job = select(Job).where(Job.id == job_id).subquery()
    delta = select(job.c.credits_reserved - job.c.credits_counted).scalar_subquery()
    day = select(utc_day(dialect)).where(Job.id == job_id).scalar_subquery()
    move = (
        update(ClientSpend)
        .where(
            ClientSpend.client_id == select(job.c.client_id).scalar_subquery(),
            ClientSpend.day == day,
        )
        .values(credits=ClientSpend.credits + delta)
        .execution_options(synchronize_session=False)
    )
    mark = (
        update(Job)
        .where(Job.id == job_id, Job.credits_counted != Job.credits_reserved)
        .values(credits_counted=Job.credits_reserved)
        .execution_options(synchronize_session=False)
    )
    return move, mark


def day_spend(client_id: str | ColumnElement[str], day: str | ColumnElement[str]) -> Select[Any]:
    return select(func.coalesce(func.sum(ClientSpend.credits), 0.0)).where(
        ClientSpend.client_id == client_id, ClientSpend.day == day
    )


def month_spend(
    client_id: str | ColumnElement[str], first_day: str | ColumnElement[str]
) -> Select[Any]:
    return select(func.coalesce(func.sum(ClientSpend.credits), 0.0)).where(
        ClientSpend.client_id == client_id, ClientSpend.day >= first_day
    )


def rebuild(session: Session, dialect: str, client_id: str, since: datetime) -> None:
    """A client's counters from its jobs since `since` (when a budget is set: counters were
    not kept without one). The caller commits."""
    day = utc_day(dialect)
    session.execute(delete(ClientSpend).where(ClientSpend.client_id == client_id))
    rows = session.execute(
        select(day, func.sum(Job.credits_reserved))
        .where(Job.client_id == client_id, Job.created_at >= since)
        .group_by(day)
    ).all()
    if rows:
        session.execute(
            insert(ClientSpend),
            [{"client_id": client_id, "day": d, "credits": float(c or 0)} for d, c in rows],
        )
    session.execute(
        update(Job)
        .where(Job.client_id == client_id, Job.created_at >= since)
        .values(credits_counted=Job.credits_reserved)
        .execution_options(synchronize_session=False)
    )
