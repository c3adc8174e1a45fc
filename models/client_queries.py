"""Queries about clients, beside the model."""

from __future__ import annotations

from sqlalchemy import Select, select

from models.client import Client, hash_api_key


def active_client_by_key(api_key: str) -> Select[Client]:
    return select(Client).where(Client.key_hash == hash_api_key(api_key), Client.active.is_(True))


def client_by_name(name: str) -> Select[Client]:
    return select(Client).where(Client.name == name)
