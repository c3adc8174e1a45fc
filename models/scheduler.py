from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime


class SchedulerState(Base):
    """Kie's account-wide limits, shared by every dispatcher on every machine.

    One row; a dispatcher takes its row lock (an UPDATE) before admitting work, so admissions
    are serialised across processes. `creates` and `checks` are sliding-window logs of the
    recent createTask and recordInfo tokens on the embedded default (with Redis, the windows
    live there: worker.limiter).
    """

    __tablename__ = "scheduler_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    creates: Mapped[list[float]] = mapped_column(JSON, default=list)
    checks: Mapped[list[float]] = mapped_column(JSON, default=list)
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    touched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # An account-level refusal (bad key, no credits, sub-key limit) pauses admission for
    # everyone: the reason, since when, when the next probe (one createTask) may go, and which
    # job carries it. Cleared when a createTask is accepted again (worker.account).
    account_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    account_paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    account_probe_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    account_probe_job: Mapped[str | None] = mapped_column(String(40), default=None)
    # The one timed wake-up the dispatcher has asked for (when the create window next has
    # room): a later admission round does not ask for another before it.
    wake_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The account's balance in Kie credits, as last read (GET /api/v1/chat/credit, or a
    # callback's remainedCredits), and when the next read is due (claimed by one dispatcher).
    kie_credits: Mapped[float | None] = mapped_column(Float, default=None)
    kie_credits_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    balance_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # A low-credits episode: since when, and its one operator alert (pending | sent | failed).
    low_credits_since: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    low_credits_alert: Mapped[str | None] = mapped_column(String(16), default=None)
    low_credits_alert_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # An attempt at the alert holds it until then: no second reader sends it meanwhile.
    low_credits_alert_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
