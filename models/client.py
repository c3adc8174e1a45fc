from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime

from sqlalchemy import Boolean, Integer, String, true
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow

API_KEY_PREFIX = "sk_"


def new_client_id() -> str:
    return "cl_" + secrets.token_hex(8)


TEST_KEY_PREFIX = "sk_test_"  # a test-mode key says so, as Stripe's do


def new_api_key(livemode: bool = True) -> str:
    return (API_KEY_PREFIX if livemode else TEST_KEY_PREFIX) + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    # Keys are 256 random bits: a fast hash is enough, and keeps every request's lookup cheap.
    return hashlib.sha256(key.encode()).hexdigest()


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Client(Base):
    """Someone who submits jobs: an API key (stored as a hash) and a webhook signing secret."""

    __tablename__ = "clients"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_client_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(12))  # enough to recognise a key in a list
    webhook_secret: Mapped[str] = mapped_column(String(100), default=new_webhook_secret)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    max_active_jobs: Mapped[int] = mapped_column(Integer, default=100)
    # Its unfinished jobs, kept by triggers on `jobs` (migration 0014), never by this code.
    active_jobs: Mapped[int] = mapped_column(Integer, server_default="0")
    weight: Mapped[int] = mapped_column(Integer, default=1)  # its share of Kie's capacity
    create_rate: Mapped[str | None] = mapped_column(String(20), default=None)  # e.g. "600/1m"
    # After `rotate-webhook-secret`, deliveries are signed with both secrets until this passes.
    previous_webhook_secret: Mapped[str | None] = mapped_column(String(100), default=None)
    previous_secret_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    retention_days: Mapped[int | None] = mapped_column(Integer, default=None)  # RESULT_RETENTION
    # Budgets in Kie credits per UTC calendar day and month; None: no cap.
    daily_credits: Mapped[int | None] = mapped_column(Integer, default=None)
    monthly_credits: Mapped[int | None] = mapped_column(Integer, default=None)
    # A test-mode key (`soraq clients create --test`): its jobs go to the sandbox.
    livemode: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
