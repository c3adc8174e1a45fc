"""Managing clients (the CLI's `soraq clients …` and the dev demo client)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.client import Client, hash_api_key, new_api_key, new_webhook_secret
from models.client_queries import client_by_name
from soraq.config import parse_rate


class ClientError(ValueError):
    pass


@dataclass(frozen=True)
class Credentials:
    """Shown once, at creation or rotation: only the key's hash is stored."""

    client: Client
    api_key: str


def _with_new_key(client: Client) -> str:
    key = new_api_key()
    client.key_hash = hash_api_key(key)
    client.key_prefix = key[:10]
    return key


def create(
    session: Session,
    name: str,
    *,
    max_active_jobs: int,
    weight: int = 1,
    create_rate: str | None = None,
    retention_days: int | None = None,
) -> Credentials:
    if session.scalar(client_by_name(name)) is not None:
        raise ClientError(f"a client named {name!r} exists already")
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


def all_clients(session: Session) -> list[Client]:
    return list(session.scalars(select(Client).order_by(Client.created_at)))
