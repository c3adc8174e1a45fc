"""Wakes the worker's dispatcher after a job is committed, without a broker publish per request.

A burst of N new jobs costs one publish, then at most one per `min_interval`, not N: while a
publish is in flight or resting, further nudges only mark that one more is needed. A nudge
that fails is logged and forgotten: the job row is committed, and the sweep finds it anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import anyio.to_thread

log = logging.getLogger(__name__)


class Nudger:
    def __init__(
        self,
        send: Callable[[], object],
        min_interval: float = 0.25,
        send_check: Callable[[str], object] | None = None,
        send_cancel: Callable[[str], object] | None = None,
    ) -> None:
        self._send = send
        self._send_check = send_check
        self._send_cancel = send_cancel
        self._min_interval = min_interval
        self._again = False
        self._task: asyncio.Task[None] | None = None

    def nudge(self) -> None:
        if self._task is not None:
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while True:
                self._again = False
                try:
                    await anyio.to_thread.run_sync(self._send)
                except Exception as exc:  # the broker is down: the sweep covers for it
                    log.warning(
                        "could not nudge the worker (%s); the sweep will pick the job up", exc
                    )
                if not self._again:
                    return
                # Under a stream of requests, one sweep per interval serves them all; more
                # would only contend with the inserts for the database.
                await asyncio.sleep(self._min_interval)
        finally:
            self._task = None

    async def check_now(self, job_id: str) -> bool:
        """Send one job's check straight to a worker (a callback's fast path, no sweep in
        between). False when the broker did not take it: the caller falls back to a nudge."""
        if self._send_check is None:
            return False
        send = self._send_check
        try:
            await anyio.to_thread.run_sync(lambda: send(job_id))
        except Exception as exc:
            log.warning("could not send job %s's check (%s); the sweep will", job_id, exc)
            return False
        return True

    async def cancel_upstream(self, job_id: str) -> None:
        """Have a worker cancel a canceled job's request at its provider (fal). Best effort:
        a miss leaves fal to run the request; the job is canceled either way."""
        if self._send_cancel is None:
            return
        send = self._send_cancel
        try:
            await anyio.to_thread.run_sync(lambda: send(job_id))
        except Exception as exc:
            log.warning("could not send job %s's upstream cancel (%s)", job_id, exc)

    async def drain(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)
