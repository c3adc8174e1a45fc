"""The worker's consumer, with one fix: Celery 5.7.0 kills a worker whose broker restarts
while it holds an unacknowledged task.

After a lost connection, 5.7.0 `collect()`s the connection (detaching its transport) and then
closes it; closing the Redis channel restores the unacknowledged messages through a client it
can no longer build (`AttributeError: 'NoneType' object has no attribute 'hostname'`), and
the error escapes as "Unrecoverable". Here that close failing is what it is — a connection
already gone — and the consumer reconnects as usual. The messages it could not restore come
back after the broker's visibility timeout, and their jobs sooner still from their rows
(`next_check_at`, the sweep). `tests/integration/test_faults.py` restarts Redis with tasks in
flight.
"""

from __future__ import annotations

import logging

from celery.worker.consumer import Consumer as CeleryConsumer

log = logging.getLogger(__name__)


class Consumer(CeleryConsumer):
    def on_connection_error_after_connected(self, exc: Exception) -> None:
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError as closing:
            log.warning(
                "the broker connection was already gone when closed (%s): reconnecting", closing
            )
