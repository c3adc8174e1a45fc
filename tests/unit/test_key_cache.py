"""API keys: requests that miss the cache at the same moment share one database read."""

from __future__ import annotations

import asyncio
from typing import Any

from api.auth import KeyCache
from core.config import get_settings
from models.db import async_session_factory, make_async_engine
from tests.unit.conftest import new_client_key


def test_concurrent_misses_for_one_key_read_the_database_once(migrated: None) -> None:
    key = new_client_key()

    async def scenario() -> tuple[int, set[Any], int, list[Any]]:
        engine = make_async_engine(get_settings().resolved_database_url)
        factory = async_session_factory(engine)
        reads = 0

        def sessions() -> Any:
            nonlocal reads
            reads += 1
            return factory()

        try:
            cache = KeyCache(ttl=5)
            found = await asyncio.gather(*(cache.lookup(sessions, key) for _ in range(20)))  # type: ignore[arg-type]
            shared_reads = reads
            cache.clear()  # a key change was announced: the next request reads again
            again = await cache.lookup(sessions, key)  # type: ignore[arg-type]
            unknown = await asyncio.gather(
                *(cache.lookup(sessions, "sk_nobody") for _ in range(5))  # type: ignore[arg-type]
            )
            return shared_reads, {c.id for c in found}, reads, [again is not None, *unknown]
        finally:
            await engine.dispose()

    shared_reads, ids, reads, rest = asyncio.run(scenario())
    assert shared_reads == 1
    assert len(ids) == 1
    assert reads == 3  # the read after clear(), and one for the five misses of an unknown key
    assert rest == [True, None, None, None, None, None]


def test_a_read_under_way_when_a_key_change_is_announced_is_not_kept(migrated: None) -> None:
    key = new_client_key()

    async def scenario() -> int:
        engine = make_async_engine(get_settings().resolved_database_url)
        factory = async_session_factory(engine)
        cache = KeyCache(ttl=5)
        reads = 0

        def sessions() -> Any:
            nonlocal reads
            reads += 1
            if reads == 1:
                cache.clear()  # `soraq clients disable` announced while the read is on its way
            return factory()

        try:
            await cache.lookup(sessions, key)  # type: ignore[arg-type]
            await cache.lookup(sessions, key)  # type: ignore[arg-type]
            return reads
        finally:
            await engine.dispose()

    assert asyncio.run(scenario()) == 2  # the first answer was not cached: read again
