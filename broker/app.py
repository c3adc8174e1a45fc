"""The Celery app. The API imports it only to publish; tasks live in worker.tasks."""

from __future__ import annotations

from typing import Any

from celery import Celery

from core.config import ARCHIVE_QUEUE, JOBS_QUEUE, WEBHOOK_QUEUE, Settings, get_settings


def broker_options(settings: Settings) -> dict[str, Any]:
    if settings.embedded_broker:
        queue_dir = settings.broker_dir / "queue"
        processed_dir = settings.broker_dir / "processed"
        # kombu's default control folder is ./control, wherever the process happens to run.
        control_dir = settings.broker_dir / "control"
        for folder in (queue_dir, processed_dir, control_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(queue_dir),
            "data_folder_out": str(queue_dir),
            "processed_folder": str(processed_dir),
            "control_folder": str(control_dir),
            "store_processed": False,
            # The default 1 s poll would add a second to every hop of a job.
            "polling_interval": 0.1,
        }
    # Tasks are short; a message held by a dead worker comes back after this. The sweep
    # recovers the job even sooner, from its row.
    return {"visibility_timeout": 600, "socket_connect_timeout": 5, "socket_timeout": 10}


def create_celery(settings: Settings) -> Celery:
    app = Celery("soraq", broker=settings.resolved_broker_url)
    if settings.embedded_broker:
        app.conf.broker_transport = "broker.transport:Transport"
    app.conf.update(
        broker_transport_options=broker_options(settings),
        broker_connection_retry_on_startup=True,
        task_default_queue=JOBS_QUEUE,
        task_routes={
            "soraq.deliver": {"queue": WEBHOOK_QUEUE},
            "soraq.archive": {"queue": ARCHIVE_QUEUE},
        },
        task_acks_late=True,  # every task is idempotent: redelivery is safe, loss is not
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_consumer="broker.consumer:Consumer",  # survives a broker restart (see there)
        task_ignore_result=True,  # nothing reads results; the job row is the result
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        beat_schedule={
            "sweep": {
                "task": "soraq.dispatch",
                "schedule": settings.sweep_interval,
                # A sweep nobody ran in time is worthless: the next one does the same work.
                "options": {"expires": max(settings.sweep_interval * 5, 10.0)},
            },
            "cleanup": {"task": "soraq.cleanup", "schedule": 3600.0, "options": {"expires": 600}},
            "catalogue-check": {
                "task": "soraq.catalogue_check",
                "schedule": settings.catalogue_check_interval,
                "options": {"expires": max(settings.catalogue_check_interval, 60.0)},
            },
            "kie-prices": {
                "task": "soraq.kie_prices",
                "schedule": settings.kie_prices_interval,
                "options": {"expires": max(settings.kie_prices_interval, 60.0)},
            },
            "expire-media": {
                "task": "soraq.expire_media",
                "schedule": 300.0,
                "options": {"expires": 240},
            },
        },
    )
    return app


celery_app = create_celery(get_settings())
