"""A worker readies itself before its first task, and starts anyway when it cannot."""

from __future__ import annotations

import logging

import pytest

from core.config import get_settings
from models.db import get_engine
from worker import warmup


def test_warm_up_opens_a_connection_per_thread(
    migrated: None, caplog: pytest.LogCaptureFixture
) -> None:
    engine = get_engine()
    engine.dispose()
    with caplog.at_level(logging.WARNING):
        warmup.warm_up(get_settings(), threads=3)
    assert "warm-up incomplete" not in caplog.text  # every step ran, the view's included
    assert engine.pool.checkedin() == min(3, engine.pool.size())  # type: ignore[attr-defined]


def test_a_database_down_at_start_only_slows_the_first_tasks(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def unreachable() -> None:
        raise ConnectionRefusedError("connection refused")

    monkeypatch.setattr(warmup, "get_engine", unreachable)
    with caplog.at_level(logging.WARNING):
        warmup.warm_up(get_settings(), threads=2)  # does not raise
    assert "warm-up incomplete" in caplog.text
