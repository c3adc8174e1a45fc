"""Logging: one JSON object per line in production, readable lines in development.

Context travels as `extra` fields (job_id, client, kie_task_id) and lands as JSON keys. API
keys, webhook secrets and image bytes are never passed to a logger.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

_CONFIGURED = "_soraq_configured"


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    root = logging.getLogger()
    if getattr(root, _CONFIGURED, False):
        return
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"},
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # warnings become log records too (JSON in production)
    # Celery logs every task received/succeeded and every beat tick: the sweep runs every
    # couple of seconds, so that is noise. Our own modules log what happened to jobs.
    for noisy in ("httpx", "celery.app.trace", "celery.worker.strategy", "celery.beat"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    setattr(root, _CONFIGURED, True)
