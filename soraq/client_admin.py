"""Managing clients (the CLI's `soraq clients …` and the dev demo client)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import parse_rate
from models import spend
from models.base import utcnow
from models.client import Client, hash_api_key, new_api_key, new_webhook_secret
from models.client_queries import client_by_name
from models.spend import month_start


class ClientError(ValueError):
    pass


@dataclass(frozen=True)
class Credentials:
    """Shown once, at creation or rotation: only the key's hash is stored."""

    client: Client
    api_key: str


def _with_new_key(client: Client) -> str:
    key = new_api_key(client.livemode is not False)
    client.key_hash = hash_api_key(key)
    client.key_prefix = key[:10]
    return key


def parse_budget(option: str, text: str | None) -> int | None:
    """A budget as the CLI takes it: a whole number of credits, 0 or more; "none" clears it."""
    if text is None or text.strip().lower() in ("none", "off", "unlimited"):
        return None
    value = text.strip()
    if not value.isdigit():
        raise ClientError(
            f"{option} must be a whole number of credits, 0 or more (or none), not {text!r}"
        )
    return int(value)


def _check_budgets(daily: int | None, monthly: int | None) -> None:
    if daily is not None and monthly is not None and daily > monthly:
        raise ClientError(
            f"the daily budget ({daily}) is larger than the monthly one ({monthly}): a month "
            "would stop the client before a day could"
        )


def create(
    session: Session,
    name: str,
    *,
    max_active_jobs: int,
    weight: int = 1,
    create_rate: str | None = None,
    retention_days: int | None = None,
    daily_credits: int | None = None,
    monthly_credits: int | None = None,
    test: bool = False,
) -> Credentials:
    """A new client and its key; `test`: a test-mode key, whose jobs go to the sandbox."""
    if session.scalar(client_by_name(name)) is not None:
        raise ClientError(f"a client named {name!r} exists already")
    _check_budgets(daily_credits, monthly_credits)
    if create_rate is not None:
        try:
            parse_rate(create_rate)
        except ValueError as exc:
            raise ClientError(str(exc)) from None
    client = Client(
        name=name,
        max_active_jobs=max_active_jobs,
        weight=weight,
        active=True,
        create_rate=create_rate,
        retention_days=retention_days,
        daily_credits=daily_credits,
        monthly_credits=monthly_credits,
        livemode=not test,
    )
    key = _with_new_key(client)
    session.add(client)
    session.commit()
    return Credentials(client, key)


def get(session: Session, name: str) -> Client:
    client = session.scalar(client_by_name(name))
    if client is None:
        raise ClientError(f"no client named {name!r}")
    return client


def rotate_key(session: Session, name: str) -> Credentials:
    client = get(session, name)
    key = _with_new_key(client)
    session.commit()
    return Credentials(client, key)


def set_active(session: Session, name: str, active: bool) -> Client:
    client = get(session, name)
    client.active = active
    session.commit()
    return client


def rotate_webhook_secret(session: Session, name: str, *, grace: timedelta) -> Client:
    """A new signing secret; for `grace` the old one still signs too (Standard Webhooks allows
    several `v1,` signatures), so receivers can switch without missing an event."""
    client = get(session, name)
    client.previous_webhook_secret = client.webhook_secret
    client.previous_secret_until = utcnow() + grace
    client.webhook_secret = new_webhook_secret()
    session.commit()
    return client


_KEEP = object()


def set_budget(
    session: Session, name: str, *, daily: int | None | object, monthly: int | None | object
) -> Client:
    """Change a client's budgets (_KEEP leaves one as it is; None removes the cap)."""
    client = get(session, name)
    new_daily = client.daily_credits if daily is _KEEP else daily
    new_monthly = client.monthly_credits if monthly is _KEEP else monthly
    assert new_daily is None or isinstance(new_daily, int)
    assert new_monthly is None or isinstance(new_monthly, int)
    _check_budgets(new_daily, new_monthly)
    if (new_daily is not None or new_monthly is not None) and (
        client.daily_credits is None and client.monthly_credits is None
    ):
        # Counters are kept only for clients with a budget: count this month's jobs now.
        spend.rebuild(session, session.get_bind().dialect.name, client.id, month_start(utcnow()))
    client.daily_credits, client.monthly_credits = new_daily, new_monthly
    session.commit()
    return client


def all_clients(session: Session) -> list[Client]:
    return list(session.scalars(select(Client).order_by(Client.created_at)))
