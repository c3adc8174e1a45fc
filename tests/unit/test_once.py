"""One object per process even when every pool thread asks for it at the same moment."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from core.once import per_process


def test_threads_asking_at_once_get_one_shared_object() -> None:
    built: list[object] = []
    start = threading.Barrier(8)

    @per_process
    def client() -> object:
        time.sleep(0.05)  # building takes a while: every thread arrives before it is done
        built.append(object())
        return built[-1]

    def first_task() -> object:
        start.wait()
        return client()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: first_task(), range(8)))

    assert len(built) == 1  # functools.lru_cache alone builds eight here
    assert all(result is built[0] for result in results)
