"""The operator's low-credits alert goes out once per episode, even when two balance readers
(two dispatchers can each claim a read) reach it while the first attempt is on its way."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.config import Settings
from models.account_queries import STATE
from models.base import utcnow
from models.scheduler import SchedulerState
from worker import credits, operator_events
from worker.webhook_send import Answer


def settings() -> Settings:
    return Settings(  # type: ignore[call-arg]
        operator_webhook_url="https://ops.example/alerts", kie_low_credits=500
    )


def test_a_second_reader_sends_nothing_while_the_first_attempt_is_on_its_way(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []

    def post(checked: object, event_id: str, *args: object, **kwargs: object) -> Answer:
        sent.append(event_id)
        if len(sent) == 1:  # meanwhile, another reader reads the same low balance
            with Session(engine) as other:
                credits.note_episode(other, 30.0, utcnow(), settings())
        return Answer(200)

    monkeypatch.setattr(operator_events, "resolve", lambda url, **_: object())
    monkeypatch.setattr(operator_events, "post_event", post)
    with Session(engine) as session:
        credits.note_episode(session, 30.0, utcnow(), settings())
        state = session.get(SchedulerState, STATE, populate_existing=True)
        assert state is not None
        assert len(sent) == 1
        assert state.low_credits_alert == "sent"
        assert state.low_credits_alert_until is None


def test_a_failed_attempt_is_retried_by_the_next_reader(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = [Answer(503), Answer(200)]
    sent: list[str] = []

    def post(checked: object, event_id: str, *args: object, **kwargs: object) -> Answer:
        sent.append(event_id)
        return answers.pop(0)

    monkeypatch.setattr(operator_events, "resolve", lambda url, **_: object())
    monkeypatch.setattr(operator_events, "post_event", post)
    with Session(engine) as session:
        now = utcnow()
        credits.note_episode(session, 30.0, now, settings())
        credits.note_episode(session, 29.0, now + timedelta(seconds=60), settings())
        state = session.get(SchedulerState, STATE, populate_existing=True)
        assert state is not None
        assert len(sent) == 2  # the failed attempt released its hold
        assert state.low_credits_alert == "sent"
