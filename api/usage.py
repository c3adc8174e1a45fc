"""Usage reports: credits by day, model or client over a period, as JSON or CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.errors import InvalidRequest
from models.base import utcnow
from models.usage_queries import GroupBy, usage

MAX_DAYS = 366
# Days a report may name: 0001-01-01 or 9999-12-31 would overflow the window's arithmetic.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2999, 12, 31)
COLUMNS = ("key", "jobs", "credits_estimated", "credits_charged", "credits_reserved", "usd")


def period(
    start: date | None, end: date | None, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """[from, to] as UTC days, both included; default the last 30 days up to today."""
    today = (now or utcnow()).date()
    last = end or today
    for name, day in (("from", start), ("to", last)):
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            raise InvalidRequest(name, f"must be a day from {FIRST_DAY} to {LAST_DAY}")
    first = start or last - timedelta(days=29)
    if first > last:
        raise InvalidRequest("from", "must not be after `to`")
    if (last - first).days >= MAX_DAYS:
        raise InvalidRequest("to", f"a report covers at most {MAX_DAYS} days")
    begin = datetime.combine(first, time(0), UTC)
    return begin, datetime.combine(last + timedelta(days=1), time(0), UTC)


async def report(
    session: AsyncSession,
    settings: Settings,
    group_by: GroupBy,
    start: datetime,
    end: datetime,
    client_id: str | None = None,
) -> dict[str, Any]:
    dialect = session.get_bind().dialect.name
    rows = (
        await session.execute(usage(dialect, group_by, start=start, end=end, client_id=client_id))
    ).all()
    groups: list[dict[str, Any]] = []
    for row in rows:
        spent = float(row.credits_charged) + float(row.credits_reserved)
        # Kie's credits at the operator's rate; fal's jobs at fal's own dollar prices.
        usd = (spent - float(row.credits_at_fal)) * settings.credit_usd_rate + float(row.usd_fal)
        groups.append(
            {
                "key": str(row.key),
                "jobs": int(row.jobs),
                "credits_estimated": round(float(row.credits_estimated), 2),
                "credits_charged": round(float(row.credits_charged), 2),
                "credits_reserved": round(float(row.credits_reserved), 2),
                "usd": round(usd, 4),
            }
        )
    total = {
        name: round(sum(float(g[name]) for g in groups), 4)
        for name in ("jobs", "credits_estimated", "credits_charged", "credits_reserved", "usd")
    }
    return {
        "from": start.date().isoformat(),
        "to": (end - timedelta(days=1)).date().isoformat(),
        "group_by": group_by,
        "credit_usd_rate": settings.credit_usd_rate,
        "groups": groups,
        "total": total,
    }


def as_csv(body: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([body["group_by"], *COLUMNS[1:]])
    for group in body["groups"]:
        # A client's name is operator-chosen text: keep spreadsheet formulas out of it.
        key = group["key"]
        safe = "'" + key if key[:1] in ("=", "+", "-", "@", "\t", "\r") else key
        writer.writerow([safe, *(group[c] for c in COLUMNS[1:])])
    return out.getvalue()
