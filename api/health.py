"""Readiness: can this API do its work right now? And the metrics read from the database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import anyio.to_thread
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import Engine, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from models.admin_queries import oldest_due, queue_depth, storage_by_client
from models.base import utcnow
from models.db import get_engine
from models.job import Job
from models.scheduler import SchedulerState
from models.webhook import WebhookDelivery


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
    """Kie refusing the account (key, credits, sub-key limit) means no job can start."""
    try:
        state = await session.get(SchedulerState, "kie", populate_existing=True)
    except Exception as exc:  # the database check reports the cause
        return False, f"unknown: {type(exc).__name__}"
    if state is not None and state.account_reason:
        return False, f"Kie refuses the account ({state.account_reason}): admission is paused"
    return True, "accepted"


class DatabaseCollector:
    """Job and delivery figures read at scrape time: the rows are the truth, so every API
    process reports the same numbers and no restart resets them."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        engine = self.engine or get_engine()
        jobs = CounterMetricFamily(
            "soraq_jobs",
            "Jobs by current status and model (a job counts once, under the status it has now)",
            labels=["status", "model"],
        )
        depth = GaugeMetricFamily("soraq_queue_depth", "Unfinished jobs by state", labels=["state"])
        oldest = GaugeMetricFamily(
            "soraq_oldest_due_check_seconds", "How overdue the most overdue job check is"
        )
        webhooks = GaugeMetricFamily(
            "soraq_webhook_deliveries", "Webhook deliveries by state", labels=["state"]
        )
        storage = GaugeMetricFamily(
            "soraq_storage_bytes",
            "Bytes of archived result files held, by client",
            labels=["client"],
        )
        credits = GaugeMetricFamily(
            "soraq_kie_credits_remaining",
            "The Kie account's balance in credits, as last read (absent until the first read)",
        )
        paused = GaugeMetricFamily(
            "soraq_account_paused",
            "1 while Kie refuses the account and admission is paused, by reason",
            labels=["reason"],
        )
        with engine.connect() as connection:
            rows: list[Any] = list(
                connection.execute(
                    select(Job.status, Job.model, func.count()).group_by(Job.status, Job.model)
                )
            )
            for status, model, count in rows:
                jobs.add_metric([status, model], count)
            for state, count in connection.execute(queue_depth()):
                depth.add_metric([state], count)
            now = utcnow()
            due = connection.execute(oldest_due(now)).scalar()
            oldest.add_metric([], (now - due).total_seconds() if due else 0.0)
            for state, count in connection.execute(
                select(WebhookDelivery.state, func.count()).group_by(WebhookDelivery.state)
            ):
                webhooks.add_metric([state], count)
            account = connection.execute(
                select(SchedulerState.account_reason, SchedulerState.kie_credits).where(
                    SchedulerState.name == "kie"
                )
            ).first()
            reason = account.account_reason if account else None
            paused.add_metric([reason or ""], 1.0 if reason else 0.0)
            if account is not None and account.kie_credits is not None:
                credits.add_metric([], float(account.kie_credits))
            for client, total in connection.execute(storage_by_client()):
                storage.add_metric([client], float(total or 0))
        yield from (jobs, depth, oldest, webhooks, paused, storage, credits)
