"""Where each model can go: its routes (the accounts serving it) and their health, for
GET /models — names, providers and pauses only, never a key or an address."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.accounts import Account
from models.account_queries import account_health
from models.base import utcnow

Health = tuple[tuple[str, str | None, bool], ...]  # (account, refusal, rate-limited) each


async def read_health(session: AsyncSession, every: tuple[Account, ...]) -> Health:
    now = utcnow()
    rows = {row.name: row for row in (await session.execute(account_health())).all()}
    found = []
    for account in every:
        row = rows.get(account.name)
        reason = row.account_reason if row is not None else None
        until: datetime | None = row.paused_until if row is not None else None
        found.append((account.name, reason, until is not None and until > now))
    return tuple(found)


def routes(model_id: str, every: tuple[Account, ...], health: Health) -> list[dict[str, Any]]:
    """The model's routes by priority: `live`, or `paused` with why (the account's refusal,
    or `rate_limited` while a 429's Retry-After runs)."""
    shown = []
    for account, (_, reason, limited) in zip(every, health, strict=True):
        if not account.serves(model_id):
            continue
        why = reason or ("rate_limited" if limited else None)
        shown.append(
            {
                "account": account.name,
                "provider": account.provider,
                "status": "paused" if why else "live",
                "reason": why,
            }
        )
    return shown
