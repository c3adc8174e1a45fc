"""Prometheus figures read from the database at scrape time: the rows are the truth, so every
API process reports the same numbers and no restart resets them. (Counters kept inside
processes live in core.metrics.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import Engine, func, select

from catalogue.accounts import accounts
from core.config import get_settings
from models.account_queries import account_rows, in_flight_by_account
from models.admin_queries import jobs_past_lease, oldest_due, queue_depth, storage_by_client
from models.base import utcnow
from models.db import get_engine
from models.job import Job, JobStatus
from models.lifecycle import TERMINAL
from models.model_state import ModelState
from models.webhook import WebhookDelivery

UNFINISHED = [status.value for status in JobStatus if status not in TERMINAL]


class DatabaseCollector:
    """Job and delivery figures read at scrape time: the rows are the truth, so every API
    process reports the same numbers and no restart resets them."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        engine = self.engine or get_engine()
        every = accounts(get_settings())
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
            "Each upstream account's balance in credits, as last read (absent until the "
            "first read)",
            labels=["account"],
        )
        paused = GaugeMetricFamily(
            "soraq_account_paused",
            "1 while the upstream refuses the account and its admission is paused, by reason",
            labels=["account", "reason"],
        )
        limited = GaugeMetricFamily(
            "soraq_account_rate_limited",
            "1 while the account's admission waits out a 429's Retry-After",
            labels=["account"],
        )
        in_flight = GaugeMetricFamily(
            "soraq_account_in_flight",
            "Live jobs between their upload and their end upstream, by account (its "
            "max_in_flight caps it)",
            labels=["account"],
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
            "Each account's createTask limit as configured (KIE_CREATE_RATE, or its "
            "create_rate in UPSTREAMS_FILE)",
            labels=["account"],
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
            states = {row.name: row for row in connection.execute(account_rows())}
            sweeps = [row.touched_at for row in states.values() if row.touched_at is not None]
            if sweeps:  # every dispatcher round touches every account's row
                sweep_age.add_metric([], max(0.0, (now - max(sweeps)).total_seconds()))
            busy: dict[str, int] = dict(connection.execute(in_flight_by_account()).all())
            for upstream in every:
                row = states.get(upstream.name)
                reason = row.account_reason if row is not None else None
                paused.add_metric([upstream.name, reason or ""], 1.0 if reason else 0.0)
                until = row.paused_until if row is not None else None
                limited.add_metric([upstream.name], 1.0 if until and until > now else 0.0)
                if row is not None and row.kie_credits is not None:
                    credits.add_metric([upstream.name], float(row.kie_credits))
                in_flight.add_metric([upstream.name], float(busy.get(upstream.name, 0)))
                rate = upstream.create_rate
                create_limit.add_metric([upstream.name], rate.count / rate.window)
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
            for client, total in connection.execute(storage_by_client()):
                storage.add_metric([client], float(total or 0))
        yield from (jobs, depth, oldest, webhooks, paused, storage, credits)
        yield from (models_out, past_lease, sweep_age, create_limit, limited, in_flight)
