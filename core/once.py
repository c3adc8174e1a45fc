"""One object per process (an HTTP client, a Redis pool), safe when many threads ask at once.

`functools.lru_cache` alone is not: the worker's threads all start their first task together,
each misses the empty cache, and each builds its own copy — eight connection pools and eight
TLS contexts (~2 MB each) where one was meant.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import lru_cache, wraps
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


def per_process(factory: Callable[P, T]) -> Callable[P, T]:
    cached: Callable[P, T] = lru_cache(factory)  # type: ignore[assignment]
    lock = threading.Lock()

    @wraps(factory)
    def get(*args: P.args, **kwargs: P.kwargs) -> T:
        with lock:
            return cached(*args, **kwargs)

    return get
