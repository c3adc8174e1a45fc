"""Per-client credit budgets: a job reserves its estimate when it is created; one that would
take its client over the UTC day's or month's cap is refused with 402 before anything is
stored or sent. The check and the insert are one statement (models.job_queries) reading the
client's spend counters (models.spend), and the counter is raised in the same transaction, so
parallel requests cannot reserve past a cap together."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import ClientIdentity
from api.errors import BudgetExceeded
from models.job_queries import BudgetCheck
from models.spend import day_of, day_spend, day_start, month_spend, month_start, next_month


def budget_check(client: ClientIdentity, now: datetime) -> BudgetCheck:
    return BudgetCheck(
        daily=client.daily_credits,
        today=day_of(now),
        monthly=client.monthly_credits,
        month_first_day=day_of(month_start(now)),
    )


async def refuse_if_over_budget(
    session: AsyncSession, client: ClientIdentity, estimate: float, now: datetime
) -> None:
    """Raise BudgetExceeded naming the period that has no room for `estimate`, if one."""
    periods = (
        (
            "day",
            client.daily_credits,
            day_spend(client.id, day_of(now)),
            day_start(now) + timedelta(days=1),
        ),
        (
            "month",
            client.monthly_credits,
            month_spend(client.id, day_of(month_start(now))),
            next_month(month_start(now)),
        ),
    )
    for period, cap, spent, end in periods:
        if cap is None:
            continue
        used = float(await session.scalar(spent) or 0.0)
        if used + estimate <= cap:
            continue
        remaining = max(0.0, cap - used)
        wait = max(1, math.ceil((end - now).total_seconds()))
        raise BudgetExceeded(
            f"this job's estimate of {estimate:g} credits would take you over your "
            f"{'daily' if period == 'day' else 'monthly'} budget of {cap} credits "
            f"({remaining:g} left until {end.isoformat()})",
            headers={"Retry-After": str(wait)},
            budget={
                "period": period,
                "limit": cap,
                "used": round(used, 2),
                "remaining": round(remaining, 2),
                "resets_at": end.isoformat(),
            },
            credits_estimated=estimate,
        )
