"""Admin authentication is throttled per address: after 10 failures in a minute, 429 for the
rest of that minute — for the admin API and the dashboard's login alike. Counted in the
database, so every API process sees the same count."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import APIError
from models.admin import FAILURE_WINDOW, MAX_FAILURES, recent_failures, record_failure
from models.base import utcnow


class TooManyAttempts(APIError):
    status_code = 429
    code = "too_many_attempts"


def client_address(request: Request) -> str:
    return (request.client.host if request.client else "unknown")[:64]


async def refuse_if_throttled(session: AsyncSession, request: Request) -> None:
    failures = await session.scalar(recent_failures(client_address(request), utcnow()))
    if failures is not None and failures >= MAX_FAILURES:
        raise TooManyAttempts(
            f"more than {MAX_FAILURES} failed admin logins from this address in a minute; "
            "try again later",
            headers={"Retry-After": str(int(FAILURE_WINDOW.total_seconds()))},
        )


async def count_failure(session: AsyncSession, request: Request) -> None:
    dialect = session.get_bind().dialect.name
    await session.execute(record_failure(dialect, client_address(request), utcnow()))
    await session.commit()
