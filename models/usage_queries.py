"""Credits used, grouped by day, model or client: what the usage reports read."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, and_, case, func, select

from models.client import Client
from models.job import Job
from models.spend import utc_day

GroupBy = Literal["day", "model", "client"]
_SETTLED = ("succeeded", "failed", "canceled")


def usage(
    dialect: str,
    group_by: GroupBy,
    *,
    start: datetime,
    end: datetime,
    client_id: str | None = None,
) -> Select[Any]:
    """Per group: jobs, the estimates, what settled jobs were charged, what unfinished jobs
    hold. (created_at, a range on the listing indexes; a client's own on its index.)"""
    if group_by == "day":
        key: ColumnElement[Any] = utc_day(dialect)
    elif group_by == "model":
        key = Job.model.expression
    else:
        key = func.coalesce(Client.name, "(none)")
    settled = Job.status.in_(_SETTLED)
    at_fal = Job.provider_usd.is_not(None)
    fal_billed = and_(at_fal, Job.status != "failed")
    query = (
        select(
            key.label("key"),
            func.count().label("jobs"),
            func.coalesce(func.sum(Job.credits_estimated), 0.0).label("credits_estimated"),
            func.coalesce(func.sum(case((settled, Job.credits_reserved), else_=0.0)), 0.0).label(
                "credits_charged"
            ),
            func.coalesce(func.sum(case((settled, 0.0), else_=Job.credits_reserved)), 0.0).label(
                "credits_reserved"
            ),
            # Jobs made at fal: the credits they hold against budgets, and fal's own dollars
            # (nothing for a failed one: fal bills what it made).
            func.coalesce(func.sum(case((at_fal, Job.credits_reserved), else_=0.0)), 0.0).label(
                "credits_at_fal"
            ),
            func.coalesce(func.sum(case((fal_billed, Job.provider_usd), else_=0.0)), 0.0).label(
                "usd_fal"
            ),
        )
        .where(Job.created_at >= start, Job.created_at < end)
        .group_by(key)
        .order_by(key)
    )
    if group_by == "client":
        query = query.outerjoin(Client, Client.id == Job.client_id)
    if client_id is not None:
        query = query.where(Job.client_id == client_id)
    return query


def daily_by_client(dialect: str, *, start: datetime, end: datetime) -> Select[Any]:
    """(day, client, credits charged or held) for the dashboard's chart."""
    day = utc_day(dialect)
    name = func.coalesce(Client.name, "(none)")
    return (
        select(day.label("day"), name.label("client"), func.sum(Job.credits_reserved))
        .outerjoin(Client, Client.id == Job.client_id)
        .where(Job.created_at >= start, Job.created_at < end)
        .group_by(day, name)
        .order_by(day, name)
    )
