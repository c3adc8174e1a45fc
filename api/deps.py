from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from api.nudge import Nudger
from soraq.config import Settings, get_settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    # The service commits where it must (before enqueueing); anything else is rolled back.
    async with request.app.state.sessionmaker() as session:
        yield session


def get_nudger(request: Request) -> Nudger:
    nudger: Nudger = request.app.state.nudger
    return nudger


SessionDep = Annotated[AsyncSession, Depends(get_session)]
NudgerDep = Annotated[Nudger, Depends(get_nudger)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
