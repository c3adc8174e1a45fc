"""A receiver's in-flight slots: a slot that frees while a delivery is putting itself on the
waiting list is never left unused (the delivery looks once more), and never used twice."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.config import Settings
from models.base import utcnow
from models.client import Client
from models.job import Job
from models.webhook import DeliveryState, WebhookDelivery
from models.webhook_queries import release_host_slot, take_host_slot
from worker import webhooks
from worker.webhook_send import Answer

HOST = "hooks.example"


def setup(session: Session) -> str:
    now = utcnow()
    session.add(Client(id="cl_a", name="a", key_hash="a" * 8, key_prefix="sk_"))
    session.add(
        Job(
            id="job_a",
            client_id="cl_a",
            model="veo3.1-fast/text-to-video",
            input={"prompt": "x"},
            status="succeeded",
            created_at=now,
            updated_at=now,
        )
    )
    delivery = WebhookDelivery(
        job_id="job_a", event_type="job.succeeded", url=f"https://{HOST}/hook", body="{}"
    )
    session.add(delivery)
    session.commit()
    return delivery.id


def settings() -> Settings:
    return Settings(webhook_max_in_flight_per_host=1)  # type: ignore[call-arg]


def hold_the_only_slot(session: Session) -> int:
    now = utcnow()
    slot = take_host_slot(
        session, HOST, "other", now=now, until=now + timedelta(seconds=60), capacity=1
    )
    assert slot is not None
    return slot


def freed_while_waiting(
    session: Session, monkeypatch: pytest.MonkeyPatch, then: Callable[[], object] = lambda: None
) -> Callable[..., None]:
    """Another holder has the only slot, and frees it right after the delivery records its
    wait (then `then` runs). Returns the real `_wait_for_a_slot`."""
    slot = hold_the_only_slot(session)
    recorded = webhooks._wait_for_a_slot

    def wait_then_release(*args: object) -> None:
        recorded(*args)  # type: ignore[arg-type]
        release_host_slot(session, HOST, slot, "other")
        then()

    monkeypatch.setattr(webhooks, "_wait_for_a_slot", wait_then_release)
    return recorded


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Deliveries answer 200 without a network (the address check resolves nothing)."""
    sent: list[str] = []
    monkeypatch.setattr(webhooks, "resolve", lambda url, **_: object())

    def post(checked: object, event_id: str, *args: object, **kwargs: object) -> Answer:
        sent.append(event_id)
        return Answer(200)

    monkeypatch.setattr(webhooks, "post_event", post)
    return sent


def test_a_slot_freed_while_the_wait_is_recorded_is_taken_at_once(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, answered: list[str]
) -> None:
    with Session(engine) as session:
        delivery_id = setup(session)
        freed_while_waiting(session, monkeypatch)
        assert webhooks.deliver(session, delivery_id, 0, settings()) is None
        delivery = session.get(WebhookDelivery, delivery_id, populate_existing=True)
        assert delivery is not None
        assert answered == [delivery_id]  # sent now, not after a SLOT_WAIT
        assert delivery.state == DeliveryState.DELIVERED
        assert delivery.waiting_host is None


def test_a_delivery_handed_over_meanwhile_leaves_the_attempt_to_that_message(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, answered: list[str]
) -> None:
    with Session(engine) as session:
        delivery_id = setup(session)
        handed: list[tuple[str, int] | None] = []
        recorded = freed_while_waiting(
            session,
            monkeypatch,
            # The releasing worker hands its slot over before this delivery looks again.
            then=lambda: handed.append(webhooks._hand_over_slot(session, HOST, settings())),
        )
        webhooks.deliver(session, delivery_id, 0, settings())
        assert handed == [(delivery_id, 0)]  # the releasing worker's message will send it
        assert answered == []  # so this one did not
        monkeypatch.setattr(webhooks, "_wait_for_a_slot", recorded)
        webhooks.deliver(session, delivery_id, 0, settings())  # the handed-over message
        assert answered == [delivery_id]
        now = utcnow()
        free = take_host_slot(
            session, HOST, "next", now=now, until=now + timedelta(seconds=1), capacity=1
        )
        assert free is not None  # and no slot was left held
