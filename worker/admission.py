"""Admission control: use Kie's capacity fully, never trip its limits, share it fairly.

Kie takes about 20 new tasks per 10 s per account and ~100 at once; excess is refused with
429, not queued. So jobs over the limit stay `queued` in the database — not as broker
messages, not as ETA tasks — and the dispatcher admits them as capacity frees:

- the createTask and recordInfo windows live in Redis in production and in the scheduler row on
  the embedded default (worker.limiter); every dispatcher, on any machine, takes the scheduler
  row's lock (an UPDATE) before admitting, so admissions never race each other;
- in-flight work is counted from the jobs themselves;
- the next jobs come round-robin across clients with queued work, weighted by each client's
  `weight`, FIFO (by priority, then age) within a client;
- a 429 from Kie anyway pauses admission for its Retry-After.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import Float, Select, cast, func, literal_column, or_, select, union_all, update
from sqlalchemy.orm import Session

from catalogue.accounts import DEFAULT_ACCOUNT, Account, account_named, accounts
from core.config import Settings
from models.base import utcnow
from models.client import Client
from models.job import IN_FLIGHT, Job, JobStatus, in_lock_order
from models.job_queries import admitted_not_submitted
from models.lifecycle import AT_KIE, fail_held_past_timeout
from models.model_state import PAUSED, hold_queued, unavailable_models
from models.scheduler import SchedulerState
from worker import account, credits
from worker.limiter import Token, check_window, create_window

# The dispatcher's timed wake-up comes this long before the token it is for frees, and admits
# every token freeing within COALESCE_SECONDS after that one: each admitted job's message
# carries a countdown to its own token's instant. The round's own work and the hop to a worker
# happen before the token frees, not after, and tokens that free milliseconds apart go in one
# round instead of one wake-up each.
LEAD_SECONDS = 0.3
COALESCE_SECONDS = 0.15
HORIZON_SECONDS = LEAD_SECONDS + COALESCE_SECONDS


@dataclass
class Budget:
    admitted: list[str]
    checks: int
    state: SchedulerState  # the first account's row: it holds the shared check window
    read_balances: list[str] = field(default_factory=list)  # accounts whose read we claimed
    wake_in: float | None = None  # run the dispatcher again in this many seconds
    # Every account's wake-up (the soonest is wake_in): each account's window frees on its
    # own clock, and one wake-up for all would leave the others to the next sweep tick.
    wakes_in: list[float] = field(default_factory=list)
    # Seconds until each admitted job's createTask token frees (0: free now), in order.
    starts_in: list[float] = field(default_factory=list)


def lock_state(session: Session, now: datetime, name: str = DEFAULT_ACCOUNT) -> SchedulerState:
    """Take account `name`'s scheduler row lock for this transaction (an UPDATE locks on
    every backend). Several accounts' rows are always locked in priority order."""
    touched = session.execute(
        update(SchedulerState).where(SchedulerState.name == name).values(touched_at=now)
    ).rowcount  # type: ignore[attr-defined]
    if not touched:
        session.add(SchedulerState(name=name, creates=[], checks=[], touched_at=now))
        session.flush()
    state = session.get(SchedulerState, name, populate_existing=True)
    assert state is not None
    return state


def in_flight(session: Session, name: str = DEFAULT_ACCOUNT) -> int:
    """Live jobs of account `name` between their upload and their end upstream (test-mode
    jobs are the sandbox's)."""
    return int(
        session.scalar(
            select(func.count()).where(
                Job.status.in_(IN_FLIGHT), Job.livemode.is_(True), Job.account == name
            )
        )
        or 0
    )


def fair_order(
    now: datetime,
    limit: int,
    waiting_models: list[str] | None = None,
    served: frozenset[str] | None = None,
    newest: bool = False,
    account: str | None = None,
    fal: bool = False,
) -> Select:
    """Due queued jobs, interleaved across clients: a client's k-th job ranks
    (k + the jobs it already has in flight) / weight.

    Counting what each client already holds gives the order a memory across rounds: a round
    often has room for one or two jobs (a token or two freeing), and ranking by queue position
    alone would hand every such round to whichever client's oldest job is oldest."""
    position = func.row_number().over(
        partition_by=Job.client_id, order_by=(Job.priority, Job.created_at, Job.id)
    )
    held = (
        select(Job.client_id, func.count().label("held"))
        # (At most KIE_MAXIN_FLIGHT rows, through the status index. Jobs admitted but not yet
        # at their call are left out: counting them would read the whole queue, and they are
        # there for a fraction of a second.)
        .where(Job.status.in_(IN_FLIGHT))
        .group_by(Job.client_id)
        .subquery()
    )
    weight = func.coalesce(Client.weight, 1)
    rank = cast(position + func.coalesce(held.c.held, 0), Float) / cast(weight, Float)
    queue = (
        select(Job.id, Job.created_at, Job.route, rank.label("turn"))
        .outerjoin(Client, Client.id == Job.client_id)
        .outerjoin(held, held.c.client_id == Job.client_id)
        .where(
            Job.status == JobStatus.QUEUED,
            Job.livemode.is_(True),  # test-mode jobs: admit_test_mode
            Job.next_check_at.is_not(None),
            Job.next_check_at <= now,
            *([Job.model.not_in(waiting_models)] if waiting_models else []),
            *([Job.model.in_(sorted(served))] if served is not None else []),
            # A job pinned to another account (jobs.route) is not this one's to take.
            *([or_(Job.route.is_(None), Job.route == account)] if account is not None else []),
            # A fal account takes only the jobs fal can make (catalogue/fal.toml's limits).
            *([Job.fal_refusal.is_(None)] if fal else []),
        )
        .subquery()
    )
    return select(queue).order_by(*_order(queue.c, newest)).limit(limit)


def _order(columns: Any, newest: bool) -> tuple[Any, ...]:
    """fair_order's order, for its queue and for the rows read from it (one definition)."""
    if newest:
        # A refused account's probe: a job pinned to it (it can go nowhere else), else the
        # job that has waited least (the longest waiting go to accounts that work).
        pinned_first = columns.route.is_(None)  # False sorts first
        return (pinned_first, columns.created_at.desc(), columns.id)
    return (columns.turn, columns.created_at, columns.id)


def admit_test_mode(session: Session, now: datetime, settings: Settings) -> list[str]:
    """Test-mode jobs (the sandbox stands in for Kie) are admitted on their own: Kie's
    windows, the live account's pause, its probe and its balance are none of theirs, and
    what they meet never pauses or resumes live admission (worker.stage, worker.submit)."""
    due = session.scalars(
        select(Job.id)
        .where(
            Job.status == JobStatus.QUEUED,
            Job.livemode.is_(False),
            Job.next_check_at.is_not(None),
            Job.next_check_at <= now,
        )
        .order_by(Job.next_check_at)
        .limit(settings.sweep_batch)
    ).all()
    if not due:
        return []
    dialect = session.get_bind().dialect.name
    lease = timedelta(seconds=settings.claim_lease)
    return list(
        session.scalars(
            update(Job)
            .where(in_lock_order(dialect, Job.id.in_(due), Job.status == JobStatus.QUEUED))
            .values(next_check_at=now + lease, admitted_at=now)
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        )
    )


def held_models(session: Session, now: datetime, settings: Settings) -> list[str]:
    """Models Kie's catalogue says are paused or gone: their queued jobs wait (and fail
    past their JOB_TIMEOUT, never having been sent: nothing was charged)."""
    held = [row.model_id for row in session.execute(unavailable_models())]
    if held:
        dialect = session.get_bind().dialect.name
        # Also the jobs queued since the pause.
        session.execute(hold_queued(dialect, held, only_unmarked=True))
        fail_held_past_timeout(
            session,
            Job.model.in_(held),
            now - timedelta(seconds=settings.job_timeout),
            PAUSED,
            f"The model was unavailable at Kie for longer than this job's "
            f"{settings.job_timeout:.0f} s; it was never submitted, so nothing was charged.",
        )
    return held


def _pending_admissions(session: Session, now: datetime, name: str) -> int:
    """Account `name`'s jobs admitted but not yet at their createTask (they hold a claim on
    its window)."""
    return int(
        session.scalar(select(func.count()).where(admitted_not_submitted(now), Job.account == name))
        or 0
    )


def admit(session: Session, settings: Settings, now: datetime) -> Budget:
    """Under the accounts' scheduler locks: admit as many queued jobs as each account's limits
    allow, first account by priority first, and say how many checks may run. The caller
    claims the checks and commits (which releases the locks).

    Admission chooses *who* goes next and *where*: each admitted job is given its account
    (jobs.account). The token for the createTask itself is taken by the worker right before
    the call (acquire_create), so that the calls an account sees never bunch past its limit
    however long the jobs waited in the broker."""
    every = accounts(settings)
    states = [lock_state(session, now, account_.name) for account_ in every]
    if all(state.account_reason is not None for state in states):
        # No account can take them: jobs held past their JOB_TIMEOUT fail with the reason.
        account.expire_waiting(session, states[0], now, settings)
    held = cache(lambda: held_models(session, now, settings))  # once a sweep, when needed
    plans = [
        _plan(session, settings, now, a, state) for a, state in zip(every, states, strict=True)
    ]
    candidates = _candidates(session, now, plans, held)
    taken: set[str] = set()
    rounds = []
    for plan, theirs in zip(plans, candidates, strict=True):
        round_ = _admit_to(session, settings, now, plan, [j for j in theirs if j not in taken])
        taken.update(round_.admitted)
        rounds.append(round_)
    admitted = [job for round_ in rounds for job in round_.admitted]
    starts = [start for round_ in rounds for start in round_.starts_in]
    wakes = [round_.wake_in for round_ in rounds if round_.wake_in is not None]
    testing = admit_test_mode(session, now, settings)
    return Budget(
        [*admitted, *testing],
        check_window(settings).room(states[0], now),
        states[0],
        [round_.state.name for round_ in rounds if round_.read_balances],
        min(wakes) if wakes else None,
        starts_in=[*starts, *([0.0] * len(testing))],
        wakes_in=coalesced(wakes),
    )


def coalesced(wakes: list[float]) -> list[float]:
    """The wake-ups worth sending: one round admits every token freeing within
    COALESCE_SECONDS after its own, so a wake-up that close after an earlier one adds nothing."""
    kept: list[float] = []
    for wake in sorted(wakes):
        if not kept or wake - kept[-1] > COALESCE_SECONDS:
            kept.append(wake)
    return kept


@dataclass
class _Plan:
    """One account's room in this round, before any job is chosen."""

    upstream: Account
    state: SchedulerState
    paused: bool = False
    room: int = 0
    probing: bool = False  # refused: this round's one job is its probe
    window_bound: bool = False  # the create window, not in-flight room, is what limits it
    frees: list[float] = field(default_factory=list)  # seconds until each free token frees


def _plan(
    session: Session, settings: Settings, now: datetime, upstream: Account, state: SchedulerState
) -> _Plan:
    plan = _Plan(
        upstream, state, paused=state.paused_until is not None and state.paused_until > now
    )
    if plan.paused:
        return plan
    pending = _pending_admissions(session, now, upstream.name)
    # Admitted jobs not yet at their call have the soonest tokens; the rest are ours.
    window = create_window(settings, upstream)
    plan.frees = window.upcoming(state, now, pending + settings.sweep_batch)[pending:]
    window_room = sum(1 for wait in plan.frees if wait <= HORIZON_SECONDS)
    plan.room = min(
        window_room,
        upstream.max_in_flight - in_flight(session, upstream.name) - pending,
        settings.sweep_batch,
    )
    plan.window_bound = plan.room == window_room
    plan.probing = state.account_reason is not None and state.account_reason != credits.LOW_CREDITS
    if plan.probing:
        # The account is refused: one probe per interval, nothing else — with the job
        # that has waited least, so that the longest waiting go to accounts that work.
        plan.room = 1 if plan.room > 0 and account.take_probe(state, now, settings) else 0
    return plan


def _candidates(
    session: Session, now: datetime, plans: list[_Plan], held: Callable[[], list[str]]
) -> list[list[str]]:
    """Each account's candidates, in its order, from ONE statement: under READ COMMITTED every
    statement sees its own snapshot, and with a query per account a job committed between
    two of them would be seen by the later account only — which would take it although an
    account before it by priority had room. An account's list is long enough to keep its
    room after the accounts before it take theirs out of it."""
    members = []
    before = 0  # how many jobs the accounts before this one may take
    for k, plan in enumerate(plans):
        if plan.room <= 0:
            continue
        upstream = plan.upstream
        fal = upstream.provider == "fal"
        # Kie's live catalogue pausing a model holds it back at Kie's accounts only.
        query = fair_order(
            now,
            plan.room + before,
            held() if not fal else [],
            upstream.models,
            plan.probing,
            upstream.name,
            fal=fal,
        ).subquery()
        # A UNION keeps no order: each row carries its place in its account's list.
        place = func.row_number().over(order_by=_order(query.c, plan.probing))
        members.append(select(query.c.id, literal_column(str(k)).label("k"), place))
        before += plan.room
    lists: list[list[tuple[int, str]]] = [[] for _ in plans]
    if members:
        statement = members[0] if len(members) == 1 else union_all(*members)
        for job_id, k, at in session.execute(statement):
            lists[k].append((at, job_id))
    return [[job_id for _, job_id in sorted(rows)] for rows in lists]


def _admit_to(
    session: Session, settings: Settings, now: datetime, plan: _Plan, candidates: list[str]
) -> Budget:
    """One account's round: the jobs it takes now (given to it), when to wake up for it, and
    whether this dispatcher reads its balance."""
    upstream, state = plan.upstream, plan.state
    admitted: list[str] = []
    candidates = candidates[: plan.room]
    if candidates:
        # Only what the balance covers goes to the account: a 402 prevented, not reported.
        admitted = credits.affordable(session, state, candidates, now, settings)
        if not admitted:
            credits.pause_low(session, state, now, settings)
        elif state.account_reason == credits.LOW_CREDITS:
            credits.resume_low(session, state)
        elif state.account_reason is not None:
            state.account_probe_job = admitted[0]
    if admitted:
        dialect = session.get_bind().dialect.name
        lease = timedelta(seconds=settings.claim_lease)
        session.execute(
            update(Job)
            .where(in_lock_order(dialect, Job.id.in_(admitted), Job.status == JobStatus.QUEUED))
            .values(next_check_at=now + lease, admitted_at=now, account=upstream.name)
            .execution_options(synchronize_session=False)
        )
    reads = [upstream.name] if credits.claim_balance_read(state, now, settings) else []
    frees = plan.frees
    following = frees[len(admitted)] if len(frees) > len(admitted) else None
    wake_in = _wake_up(
        session, state, settings, now, plan.paused, plan.window_bound, admitted, following
    )
    return Budget(admitted, 0, state, reads, wake_in, starts_in=frees[: len(admitted)])


def _wake_up(
    session: Session,
    state: SchedulerState,
    settings: Settings,
    now: datetime,
    paused: bool,
    window_bound: bool,
    admitted: list[str],
    following: float | None,
) -> float | None:
    """When queued work waits only for Kie's create window (or a 429 pause) to free, one timed
    wake-up of the dispatcher shortly before that instant (LEAD_SECONDS), instead of waiting
    for the next sweep tick. `following`: seconds until the first token no job has been
    admitted for frees. At most one wake-up is outstanding: a later round asks again only for
    an earlier instant."""
    if state.account_reason is not None or not (paused or window_bound):
        return None
    waiting = session.scalar(
        select(Job.id)
        .where(
            Job.status == JobStatus.QUEUED,
            Job.livemode.is_(True),
            Job.next_check_at.is_not(None),
            Job.next_check_at <= now,
            Job.admitted_at.is_(None),
        )
        .limit(1)
    )
    if waiting is None and not admitted:
        return None
    if paused and state.paused_until is not None:
        delay = (state.paused_until - now).total_seconds()
    elif following is not None:
        delay = following - LEAD_SECONDS
    else:
        return None  # every token is spoken for: the answers' restamps decide, the sweep sees
    if delay <= 0 or delay > settings.create_rate.window + 1:
        return None  # room now (the next round sees it) or far off (the sweep will do)
    target = now + timedelta(seconds=delay)
    if state.wake_at is not None and now < state.wake_at <= target:
        return None  # an earlier (or the same) wake-up is already on its way
    state.wake_at = target
    return delay


def create_due_in(session: Session, settings: Settings, name: str | None) -> float:
    """Seconds until account `name`'s next createTask token frees (0: one is free now): a
    look, not a take — no lock, no write (the database window's row is read as it stands)."""
    upstream = account_named(settings, name)
    window = create_window(settings, upstream)
    # A detached copy of the database window's log: reading the window prunes the log it is
    # given, and the session must never write a log it read without the row's lock back
    # over tokens other workers took meanwhile.
    creates = (
        session.scalar(select(SchedulerState.creates).where(SchedulerState.name == upstream.name))
        if window.needs_lock
        else None
    )
    state = SchedulerState(name=upstream.name, creates=list(creates or []), checks=[])
    upcoming = window.upcoming(state, utcnow(), 1)
    return upcoming[0] if upcoming else 0.0


class Grant(NamedTuple):
    wait: float | None  # None: granted; else seconds until the account may take the call
    token: Token
    by_window: bool = False  # the wait is the create window's own (not a pause or a probe)


def acquire_create(
    session: Session, settings: Settings, job_id: str, name: str | None = DEFAULT_ACCOUNT
) -> Grant:
    """Take one createTask token of account `name`, right before the call: (None, the token)
    when granted, else (the seconds until one frees, None). The caller commits at once (the
    database window holds the scheduler row's lock until then).

    The token's time is read *after* the lock is held: a token stamped before a wait for the
    lock would leave the window early and let one call too many through."""
    upstream = account_named(settings, name)
    window = create_window(settings, upstream)
    if window.needs_lock:
        state = lock_state(session, utcnow(), upstream.name)
    else:  # the Redis window is atomic on its own: the row is only read for a pause
        state = session.get(
            SchedulerState, upstream.name, populate_existing=True
        ) or SchedulerState(name=upstream.name)
    now = utcnow()
    if state.paused_until is not None and state.paused_until > now:
        return Grant((state.paused_until - now).total_seconds(), None)
    probe = account.probe_wait(state, job_id, now)
    if probe is not None:
        return Grant(probe, None)  # the account is refused and this job is not the probe
    wait, token = window.take_one(state, now)
    return Grant(wait, token, by_window=wait is not None)


def restamp_create(
    session: Session, settings: Settings, token: Token, name: str | None = DEFAULT_ACCOUNT
) -> None:
    """The createTask this token was taken for has been answered (or has failed): Kie counted
    it at some moment before now, so the token is held one window from now (without the
    margin that covers a call still in flight). Our window then never frees a token before
    Kie's does, and the dispatcher can admit at the very instant it frees.
    Commits (the database window locks the scheduler row)."""
    if token is None:
        return
    upstream = account_named(settings, name)
    window = create_window(settings, upstream)
    if window.needs_lock:
        state = lock_state(session, utcnow(), upstream.name)
        window.restamp(state, token, utcnow())
        session.commit()
    else:
        window.restamp(SchedulerState(), token, utcnow())


def acquire_check(session: Session, settings: Settings, job_id: str) -> bool:
    """A callback's direct check takes its own recordInfo token (the sweep's checks take
    theirs as they are claimed). No token free: the job goes back to the sweep, due when one
    frees. Commits."""
    window = check_window(settings)
    # The Redis window keeps its own log: the scheduler row is neither read nor locked for it.
    first = accounts(settings)[0].name
    state = lock_state(session, utcnow(), first) if window.needs_lock else SchedulerState()
    now = utcnow()
    wait = window.take(state, now)
    if wait is not None:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.in_(sorted(AT_KIE)))
            .values(claimed_until=None, next_check_at=now + timedelta(seconds=wait))
            .execution_options(synchronize_session=False)
        )
    session.commit()
    return wait is None


def record_checks(settings: Settings, budget: Budget, count: int, now: datetime) -> None:
    """The checks just claimed take their tokens (never more than budget.checks)."""
    if count:
        check_window(settings).take(budget.state, now, count)
