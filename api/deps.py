from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import ClientIdentity
from api.errors import Unauthorized
from api.events import EventHub
from api.nudge import Nudger
from core.config import Settings, get_settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    # The service commits where it must (before enqueueing); anything else is rolled back.
    async with request.app.state.sessionmaker() as session:
        yield session


# Dependencies that do no I/O are `async def`: a plain `def` would cost a thread-pool hop on
# every request.
async def get_nudger(request: Request) -> Nudger:
    nudger: Nudger = request.app.state.nudger
    return nudger


async def get_events(request: Request) -> EventHub:
    hub: EventHub = request.app.state.events
    return hub


async def get_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    """For requests that outlive one transaction (waits, streams): a session per read."""
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return maker


SessionDep = Annotated[AsyncSession, Depends(get_session)]
EventsDep = Annotated[EventHub, Depends(get_events)]
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]
NudgerDep = Annotated[Nudger, Depends(get_nudger)]


async def settings() -> Settings:
    return get_settings()


SettingsDep = Annotated[Settings, Depends(settings)]


async def current_client(request: Request) -> ClientIdentity:
    """The client whose `Authorization: Bearer <key>` this is. Every failure reads the same.
    (No session of its own: keys are cached, and a miss reads with a short-lived one.)"""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or len(key) > 200:
        raise Unauthorized()
    client = await request.app.state.keys.lookup(request.app.state.sessionmaker, key)
    if client is None:
        raise Unauthorized()
    assert isinstance(client, ClientIdentity)
    return client


CurrentClient = Annotated[ClientIdentity, Depends(current_client)]


def admin_token_matches(candidate: str, settings: Settings) -> bool:
    if settings.admin_token is None or not candidate:
        return False  # no token configured (blank counts as none): the admin side is closed
    return hmac.compare_digest(candidate.encode(), settings.admin_token.get_secret_value().encode())


async def require_admin(request: Request, settings: SettingsDep, session: SessionDep) -> None:
    """`Authorization: Bearer $ADMIN_TOKEN`. Client keys never work here; guessing is
    throttled (api.throttle), the right token never."""
    from api.throttle import refuse_failure

    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not admin_token_matches(token.strip(), settings):
        await refuse_failure(session, request)
        raise Unauthorized("A valid admin token is required.")


AdminDep = Depends(require_admin)
