from __future__ import annotations

import logging
import sys


def setup_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if getattr(root, "_soraq_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO; that is noise at our level.
    # Celery logs every task received/succeeded and every beat tick: the sweep runs every
    # couple of seconds, so that is noise too. Our own modules log what happened to jobs.
    for noisy in ("httpx", "celery.app.trace", "celery.worker.strategy", "celery.beat"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    root._soraq_configured = True  # type: ignore[attr-defined]
