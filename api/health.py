"""Readiness: can this API do its work right now (database, migrations, broker, storage, the
Kie account)?"""

from __future__ import annotations

import asyncio
from functools import lru_cache

import anyio.to_thread
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from catalogue.accounts import accounts
from core.config import get_settings
from models.account_queries import account_rows


@lru_cache
def migration_head() -> str | None:
    from alembic.script import ScriptDirectory

    from models.migrate import alembic_config

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def check_database(session: AsyncSession) -> tuple[bool, str]:
    try:
        version = await asyncio.wait_for(
            session.scalar(text("SELECT version_num FROM alembic_version")), timeout=5
        )
    except Exception as exc:  # any failure means not ready; the reason is reported
        return False, f"database unreachable: {type(exc).__name__}"
    head = migration_head()
    if version != head:
        return False, "migrations are not at the code's head: run `soraq migrate`"
    # The revision itself is not shown: /readyz is public, and it tells an attacker the build.
    return True, "reachable, migrations at head"


def _broker_reachable() -> tuple[bool, str]:
    from broker.app import celery_app

    try:
        with celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:
        return False, f"broker unreachable: {type(exc).__name__}"
    return True, "reachable"


async def check_broker() -> tuple[bool, str]:
    return await anyio.to_thread.run_sync(_broker_reachable)


def _storage_reachable() -> tuple[bool, str]:
    from media import store

    try:
        store.exists("readyz")  # a HEAD: a missing object is an answer too
    except Exception as exc:
        return False, f"storage unreachable: {type(exc).__name__}"
    return True, "reachable"


async def check_storage() -> tuple[bool, str]:
    return await anyio.to_thread.run_sync(_storage_reachable)


async def check_account(session: AsyncSession) -> tuple[bool, str]:
    """Every upstream account refused (key, credits, sub-key limit) means no job can start;
    one still accepted is enough (the others' jobs go to it)."""
    names = [upstream.name for upstream in accounts(get_settings())]
    try:
        rows = (await session.execute(account_rows())).all()
    except Exception as exc:  # the database check reports the cause
        return False, f"unknown: {type(exc).__name__}"
    refused = {row.name: row.account_reason for row in rows if row.account_reason}
    said = ", ".join(f"{name} ({refused[name]})" for name in names if name in refused)
    if names and all(name in refused for name in names):
        whom = "the account" if len(names) == 1 else "every account"
        return False, f"the upstream refuses {whom}: {said}; admission is paused"
    return True, f"accepted; refused: {said}" if said else "accepted"
