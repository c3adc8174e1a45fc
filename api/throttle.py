"""Failed admin authentications are throttled: after 10 failures from one address in a
minute — or 100 from every address together — a wrong token gets 429 for the rest of the
minute, for the admin API and the dashboard's login alike. The right token is never refused
(the operator is not locked out by someone else's guessing; the token is 32+ random
characters, so the throttle limits noise and load, not the odds of a guess). Counted in the
database, so every API process sees the same count. The address is the connection's peer:
forwarded headers count only from TRUSTED_PROXIES (soraq.cli.run_api)."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import APIError
from models.admin import (
    FAILURE_WINDOW,
    MAX_FAILURES,
    MAX_FAILURES_EVERYWHERE,
    failures_everywhere,
    recent_failures,
    record_failure,
)
from models.base import utcnow


class TooManyAttempts(APIError):
    status_code = 429
    code = "too_many_attempts"


def client_address(request: Request) -> str:
    return (request.client.host if request.client else "unknown")[:64]


async def refuse_failure(session: AsyncSession, request: Request) -> None:
    """A wrong token: 429 when the window is full (not counted further), else counted (the
    caller answers 401)."""
    now = utcnow()
    here = await session.scalar(recent_failures(client_address(request), now)) or 0
    everywhere = await session.scalar(failures_everywhere(now)) or 0
    if here >= MAX_FAILURES or everywhere >= MAX_FAILURES_EVERYWHERE:
        which = "from this address" if here >= MAX_FAILURES else "from all addresses"
        raise TooManyAttempts(
            f"too many failed admin logins {which} in a minute; try again later",
            headers={"Retry-After": str(int(FAILURE_WINDOW.total_seconds()))},
        )
    dialect = session.get_bind().dialect.name
    await session.execute(record_failure(dialect, client_address(request), now))
    await session.commit()
