"""Admission control against a database of its own: limits counted, fairness counted."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from core.config import Settings
from models.base import utcnow
from models.client import Client
from models.job import Job, JobStatus
from models.scheduler import SchedulerState
from worker.account import pause_rate_limited as pause
from worker.admission import (
    HORIZON_SECONDS,
    LEAD_SECONDS,
    acquire_create,
    admit,
    record_checks,
)
from worker.limiter import MARGIN_SECONDS


def settings(**values: object) -> Settings:
    return Settings(**{"kie_create_rate": "6/10s", "kie_max_in_flight": 100, **values})  # type: ignore[arg-type]


def queue(session: Session, jobs: dict[str, int], weights: dict[str, int] | None = None) -> None:
    start = utcnow() - timedelta(minutes=1)
    # One clock for every client's jobs, in the order given: jobs that tie on their turn go
    # oldest first, and no two jobs share an instant (a tie there falls to the random job id).
    serial = 0
    for name, count in jobs.items():
        client = Client(
            id=f"cl_{name}",
            name=name,
            key_hash=name * 8,
            key_prefix="sk_",
            weight=(weights or {}).get(name, 1),
        )
        session.add(client)
        for i in range(count):
            created = start + timedelta(milliseconds=serial)
            serial += 1
            session.add(
                Job(
                    client_id=client.id,
                    model="veo3.1-fast/text-to-video",
                    input={"prompt": f"{name} {i}"},
                    created_at=created,
                    updated_at=created,
                    next_check_at=created,
                )
            )
    session.commit()


def owners(session: Session, ids: list[str]) -> Counter[str]:
    rows = session.scalars(select(Job.client_id).where(Job.id.in_(ids)))
    return Counter(client_id.removeprefix("cl_") for client_id in rows)


def test_round_robin_across_clients(engine: Engine) -> None:
    with Session(engine) as session:
        queue(session, {"big": 10, "mid": 5, "small": 1})
        budget = admit(session, settings(), utcnow())
        session.commit()
        # turns: big1 mid1 small1, big2 mid2, big3 ...
        assert owners(session, budget.admitted) == {"big": 3, "mid": 2, "small": 1}


def test_weights_give_a_bigger_share(engine: Engine) -> None:
    with Session(engine) as session:
        queue(session, {"a": 10, "b": 10}, weights={"b": 2})
        budget = admit(session, settings(), utcnow())
        assert owners(session, budget.admitted) == {"a": 2, "b": 4}


def test_fifo_within_a_client_and_priority_first(engine: Engine) -> None:
    with Session(engine) as session:
        queue(session, {"solo": 8})
        last = session.scalars(select(Job).order_by(Job.created_at.desc())).first()
        assert last is not None
        last.priority = 0  # high
        session.commit()
        budget = admit(session, settings(kie_create_rate="3/10s"), utcnow())
        prompts = [session.get(Job, i).input["prompt"] for i in budget.admitted]  # type: ignore[union-attr]
        assert prompts == ["solo 7", "solo 0", "solo 1"]


def _submit_all(session: Session, ids: list[str]) -> int:
    """What workers do with admitted jobs: take a createTask token each, then submit."""
    granted = 0
    for job_id in ids:
        if acquire_create(session, settings(), "job_x")[0] is None:
            granted += 1
            session.execute(update(Job).where(Job.id == job_id).values(status="submitting"))
    session.commit()
    return granted


def test_the_create_rate_holds_across_sweeps(engine: Engine) -> None:
    with Session(engine) as session:
        queue(session, {"burst": 30})
        now = utcnow()
        first = admit(session, settings(), now)
        session.commit()
        assert _submit_all(session, first.admitted) == 6
        again = admit(session, settings(), now + timedelta(seconds=5))  # same window
        session.commit()
        later = admit(session, settings(), now + timedelta(seconds=11))  # window has passed
        session.commit()
    assert (len(first.admitted), len(again.admitted), len(later.admitted)) == (6, 0, 6)


def test_a_worker_finds_no_token_when_the_window_is_full(engine: Engine) -> None:
    with Session(engine) as session:
        grants = [acquire_create(session, settings(), "job_x")[0] for _ in range(7)]
        session.commit()
    assert grants[:6] == [None] * 6
    assert grants[6] is not None
    assert 9.5 <= grants[6] <= 10 + MARGIN_SECONDS  # when the oldest token leaves the window


def test_in_flight_jobs_cap_admission(engine: Engine) -> None:
    with Session(engine) as session:
        queue(session, {"x": 10})
        for job in session.scalars(select(Job).limit(4)):
            job.status, job.account = JobStatus.GENERATING, "kie"  # at the account, generating
        session.commit()
        budget = admit(session, settings(kie_max_in_flight=5, kie_create_rate="100/10s"), utcnow())
        assert len(budget.admitted) == 1


def test_a_kie_429_pauses_admission(engine: Engine) -> None:
    with Session(engine) as session:
        queue(session, {"x": 5})
        now = utcnow()
        pause(session, "kie", now + timedelta(seconds=3))
        session.commit()
        assert admit(session, settings(), now).admitted == []
        session.commit()
        assert len(admit(session, settings(), now + timedelta(seconds=4)).admitted) == 5
        state = session.get(SchedulerState, "kie")
        assert state is not None


def test_checks_are_budgeted_by_the_check_rate(engine: Engine) -> None:
    config = settings(kie_check_rate="3/10s")
    with Session(engine) as session:
        now = utcnow()
        budget = admit(session, config, now)
        assert budget.checks == 3
        record_checks(config, budget, 2, now)
        session.commit()
        assert admit(session, config, now + timedelta(seconds=1)).checks == 1
        session.commit()
        assert admit(session, config, now + timedelta(seconds=11)).checks == 3


def test_the_balance_guard_admits_what_it_covers_and_pauses_below_the_minimum(
    engine: Engine,
) -> None:
    """Each queued job costs 60 credits (its estimate); the balance as last read decides."""
    with Session(engine) as session:
        queue(session, {"a": 4})
        session.execute(update(Job).values(credits_estimated=60.0, credits_reserved=60.0))
        now = utcnow()
        row = session.get(SchedulerState, "kie") or SchedulerState(name="kie")
        row.creates, row.checks, row.paused_until, row.account_reason = [], [], None, None
        row.kie_credits, row.kie_credits_at = 150.0, now
        session.add(row)
        session.commit()
        # 150 covers two 60-credit jobs (a third would need 180).
        budget = admit(session, settings(kie_min_credits=10), now)
        session.commit()
        assert len(budget.admitted) == 2
        state = session.get(SchedulerState, "kie", populate_existing=True)
        assert state is not None
        assert state.account_reason is None
        # The reading drops below KIE_MIN_CREDITS: admission pauses, nothing more goes.
        session.execute(update(SchedulerState).values(kie_credits=5.0, kie_credits_at=utcnow()))
        session.commit()
        budget = admit(session, settings(kie_min_credits=10), utcnow())
        session.commit()
        assert budget.admitted == []
        state = session.get(SchedulerState, "kie", populate_existing=True)
        assert state is not None
        assert state.account_reason == "kie_low_credits"
        # A top-up read: admission resumes for the rest.
        session.execute(
            update(SchedulerState).values(kie_credits=10_000.0, kie_credits_at=utcnow())
        )
        session.commit()
        budget = admit(session, settings(kie_min_credits=10), utcnow())
        session.commit()
        assert len(budget.admitted) == 2
        state = session.get(SchedulerState, "kie", populate_existing=True)
        assert state is not None
        assert state.account_reason is None


def test_a_full_window_asks_for_one_wake_up_at_the_instant_a_token_frees(engine: Engine) -> None:
    with Session(engine) as session:
        queue(session, {"burst": 30})
        now = utcnow()
        first = admit(session, settings(), now)
        session.commit()
        assert _submit_all(session, first.admitted) == 6
        # The admitted jobs are submitted; the window is full until their tokens free.
        session.execute(update(Job).where(Job.id.in_(first.admitted)).values(status="waiting"))
        session.commit()
        later = now + timedelta(seconds=4)
        full = admit(session, settings(), later)
        session.commit()
        assert full.admitted == []
        assert full.wake_in is not None
        # LEAD before the oldest token's time + 10 s (+ the margin)
        assert 6.0 <= full.wake_in + LEAD_SECONDS <= 6.3
        again = admit(session, settings(), later + timedelta(seconds=1))
        session.commit()
        assert again.wake_in is None  # one wake-up outstanding: no second one


def test_tokens_freeing_moments_apart_are_admitted_in_one_round_with_their_start_times(
    engine: Engine,
) -> None:
    """A round shortly before tokens free admits every job whose token frees within the
    horizon, each told when its token frees; the wake-up after is LEAD before the next."""
    with Session(engine) as session:
        queue(session, {"burst": 30})
        now = utcnow()
        first = admit(session, settings(), now)
        session.commit()
        assert first.starts_in == [0.0] * 6  # free now: go at once
        for job_id in first.admitted[:3]:
            _submit_all(session, [job_id])
        time.sleep(0.5)  # the last three tokens are taken half a second later
        _submit_all(session, first.admitted[3:])
        session.execute(update(Job).where(Job.id.in_(first.admitted)).values(status="waiting"))
        session.commit()
        soon = utcnow() + timedelta(seconds=10 + MARGIN_SECONDS - 0.5 - HORIZON_SECONDS + 0.05)
        round_ = admit(session, settings(), soon)
        session.commit()
        assert len(round_.admitted) == 3  # the three older tokens, not the three after them
        assert all(0 < start <= HORIZON_SECONDS for start in round_.starts_in)
        assert round_.wake_in is not None
        # LEAD before the younger tokens, ~0.5 s after the older ones (the round came a
        # horizon, less 0.05 s, before those)
        assert abs(round_.wake_in + LEAD_SECONDS - (0.5 + HORIZON_SECONDS - 0.05)) < 0.2


def test_a_client_with_jobs_already_at_kie_waits_its_turn_across_rounds(engine: Engine) -> None:
    """Rounds with room for one or two jobs remember who already holds Kie's capacity: a
    client with three jobs at Kie comes after one with none, whatever their jobs' ages."""
    with Session(engine) as session:
        queue(session, {"busy": 6, "idle": 3})  # busy's jobs are the older ones
        held = session.scalars(select(Job).where(Job.client_id == "cl_busy").limit(3)).all()
        for job in held:
            job.status = JobStatus.GENERATING
        session.commit()
        budget = admit(session, settings(), utcnow())
        session.commit()
        assert owners(session, budget.admitted[:3]) == Counter({"idle": 3})
