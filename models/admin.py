"""The operator's side: dashboard sessions kept server-side, and failed admin logins."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Insert,
    Integer,
    Select,
    String,
    Table,
    Update,
    case,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, UTCDateTime, utcnow


class AdminSession(Base):
    """A dashboard session: the signed cookie carries only this id, so logging out (or
    `soraq admin revoke-sessions`) ends it on the server, whatever a copied cookie says."""

    __tablename__ = "admin_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class AdminAuthFailures(Base):
    """Failed admin authentications from one address in the current minute."""

    __tablename__ = "admin_auth_failures"

    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    failures: Mapped[int] = mapped_column(Integer, default=0)


# --- queries beside the models --------------------------------------------------------------

SESSION_TTL = timedelta(hours=8)
FAILURE_WINDOW = timedelta(minutes=1)
MAX_FAILURES = 10  # from one address
# From every address together: a guesser with many addresses (or a rotating proxy) is capped
# as well; the right token still passes (api.throttle).
MAX_FAILURES_EVERYWHERE = 100


def new_session(session_id: str, now: datetime) -> Insert:
    return insert(AdminSession).values(
        id=session_id, created_at=now, expires_at=now + SESSION_TTL, revoked_at=None
    )


def live_session(session_id: str, now: datetime) -> Select[Any]:
    return select(AdminSession.id).where(
        AdminSession.id == session_id,
        AdminSession.revoked_at.is_(None),
        AdminSession.expires_at > now,
    )


def revoke_session(session_id: str, now: datetime) -> Update:
    return (
        update(AdminSession)
        .where(AdminSession.id == session_id, AdminSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_all_sessions(session: Session) -> int:
    """Every live dashboard session ends now (`soraq admin revoke-sessions`)."""
    result = session.execute(
        update(AdminSession).where(AdminSession.revoked_at.is_(None)).values(revoked_at=utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def recent_failures(address: str, now: datetime) -> Select[Any]:
    return select(AdminAuthFailures.failures).where(
        AdminAuthFailures.address == address,
        AdminAuthFailures.window_start > now - FAILURE_WINDOW,
    )


def failures_everywhere(now: datetime) -> Select[Any]:
    return select(func.coalesce(func.sum(AdminAuthFailures.failures), 0)).where(
        AdminAuthFailures.window_start > now - FAILURE_WINDOW
    )


def record_failure(dialect: str, address: str, now: datetime) -> Insert:
    """One more failure from `address`: counted in a one-minute window that restarts once it
    has passed. One upsert, so concurrent failures are all counted."""
    table = cast(Table, AdminAuthFailures.__table__)
    make = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = make(table).values(address=address, window_start=now, failures=1)
    stale = table.c.window_start <= now - FAILURE_WINDOW
    return statement.on_conflict_do_update(
        index_elements=["address"],
        set_={
            "failures": case((stale, 1), else_=table.c.failures + 1),
            "window_start": case((stale, now), else_=table.c.window_start),
        },
    )
