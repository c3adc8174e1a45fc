"""Prometheus figures read from the database at scrape time: the rows are the truth, so every
API process reports the same numbers and no restart resets them. (Counters kept inside
processes live in core.metrics.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import Engine, func, select

from core.config import get_settings
from models.admin_queries import jobs_past_lease, oldest_due, queue_depth, storage_by_client
from models.base import utcnow
from models.db import get_engine
from models.job import Job, JobStatus
from models.lifecycle import TERMINAL
from models.model_state import ModelState
from models.scheduler import SchedulerState
from models.webhook import WebhookDelivery

UNFINISHED = [status.value for status in JobStatus if status not in TERMINAL]


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
        models_out = GaugeMetricFamily(
            "soraq_models_unavailable",
            "Catalogue models Kie's live catalogue says are paused or gone (their jobs wait)",
            labels=["status"],
        )
        past_lease = GaugeMetricFamily(
            "soraq_jobs_past_lease",
            "Unfinished jobs whose worker's lease on their step has ended (the sweep should "
            "take them back within a claim lease: more than a few for minutes is a stuck worker)",
        )
        sweep_age = GaugeMetricFamily(
            "soraq_last_sweep_age_seconds",
            "Seconds since the dispatcher last ran (beat and a worker are needed for it)",
        )
        create_limit = GaugeMetricFamily(
            "soraq_kie_create_limit_per_second",
            "Kie's createTask limit for the account as configured (KIE_CREATE_RATE)",
        )
        with engine.connect() as connection:
            rows: list[Any] = list(
                connection.execute(
                    select(Job.status, Job.model, func.count()).group_by(Job.status, Job.model)
                )
            )
            for status, model, count in rows:
                jobs.add_metric([status, model], count)
            # Every unfinished state, zeros included: a dashboard shows 0, not "no data".
            depths = dict.fromkeys(UNFINISHED, 0) | dict(connection.execute(queue_depth()).all())
            for state, count in depths.items():
                depth.add_metric([state], count)
            now = utcnow()
            due = connection.execute(oldest_due(now)).scalar()
            oldest.add_metric([], (now - due).total_seconds() if due else 0.0)
            for state, count in connection.execute(
                select(WebhookDelivery.state, func.count()).group_by(WebhookDelivery.state)
            ):
                webhooks.add_metric([state], count)
            account = connection.execute(
                select(
                    SchedulerState.account_reason,
                    SchedulerState.kie_credits,
                    SchedulerState.touched_at,
                ).where(SchedulerState.name == "kie")
            ).first()
            if account is not None and account.touched_at is not None:
                sweep_age.add_metric([], max(0.0, (now - account.touched_at).total_seconds()))
            unavailable = dict(
                connection.execute(
                    select(ModelState.status, func.count())
                    .where(ModelState.status != "live")
                    .group_by(ModelState.status)
                ).all()
            )
            for status in ("paused", "gone"):
                models_out.add_metric([status], float(unavailable.get(status, 0)))
            past_lease.add_metric([], float(connection.execute(jobs_past_lease(now)).scalar() or 0))
            reason = account.account_reason if account else None
            paused.add_metric([reason or ""], 1.0 if reason else 0.0)
            if account is not None and account.kie_credits is not None:
                credits.add_metric([], float(account.kie_credits))
            for client, total in connection.execute(storage_by_client()):
                storage.add_metric([client], float(total or 0))
        rate = get_settings().create_rate
        create_limit.add_metric([], rate.count / rate.window)
        yield from (jobs, depth, oldest, webhooks, paused, storage, credits)
        yield from (models_out, past_lease, sweep_age, create_limit)
