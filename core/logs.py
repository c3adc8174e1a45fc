"""Logging: one JSON object per line in production, readable lines in development.

Context travels as `extra` fields (job_id, client, kie_task_id) and lands as JSON keys. API
keys, webhook secrets and image bytes are never passed to a logger.
"""

from __future__ import annotations

import logging
import re
import sys

from pythonjsonlogger.json import JsonFormatter

_CONFIGURED = "_soraq_configured"
# A callback token in a URL is a credential for that job's callback: never in a log line.
_CALLBACK_TOKEN = re.compile(r"(/kie/callback/)[^\s\"'?/]+")
# A signed content link's `sig` opens that file for an hour: never in a log line either.
_LINK_SIGNATURE = re.compile(r"([?&]sig=)[^\s\"'&]+")


def redact(text: str) -> str:
    return _LINK_SIGNATURE.sub(r"\1[redacted]", _CALLBACK_TOKEN.sub(r"\1[redacted]", text))


def _sensitive(text: str) -> bool:
    return "/kie/callback/" in text or "sig=" in text


class RedactTokens(logging.Filter):
    """Rewrites every record (uvicorn's access log included) before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and _sensitive(record.msg):
            record.msg = redact(record.msg)
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            if any(isinstance(a, str) and _sensitive(a) for a in args):
                record.args = tuple(redact(a) if isinstance(a, str) else a for a in args)
        return True


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
    handler.addFilter(RedactTokens())
    root.handlers = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # warnings become log records too (JSON in production)
    # Celery logs every task received/succeeded and every beat tick: the sweep runs every
    # couple of seconds, so that is noise. Our own modules log what happened to jobs.
    for noisy in ("httpx", "celery.app.trace", "celery.worker.strategy", "celery.beat"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    setattr(root, _CONFIGURED, True)
