"""hardening and archived media: per-client creation rate, webhook secret rotation, admin
sessions, auth throttle; result retention

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 21:00:00

- `clients.create_rate` overrides CLIENT_CREATE_RATE for one client;
- `clients.previous_webhook_secret` / `previous_secret_until`: during a rotation's grace period
  deliveries carry two signatures, the new secret's and the old one's;
- `admin_sessions`: dashboard sessions are server-side ids, revoked at logout or all at once;
- `admin_auth_failures`: failed admin logins per address, to answer 429 after 10 a minute;
- `clients.retention_days` overrides RESULT_RETENTION; `jobs.media_expires_at` (indexed where
  set) is when a job's archived files are deleted, `jobs.media_bytes` what they take.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("create_rate", sa.String(length=20), nullable=True))
        batch_op.add_column(
            sa.Column("previous_webhook_secret", sa.String(length=100), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "previous_secret_until", models.base.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("retention_days", sa.Integer(), nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("media_expires_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("media_bytes", sa.BigInteger(), nullable=True))
        batch_op.create_index(
            "ix_jobs_media_expires",
            ["media_expires_at"],
            unique=False,
            postgresql_where=sa.text("media_expires_at IS NOT NULL"),
            sqlite_where=sa.text("media_expires_at IS NOT NULL"),
        )
    op.create_table(
        "admin_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_sessions")),
    )
    op.create_table(
        "admin_auth_failures",
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("window_start", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_admin_auth_failures")),
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_jobs_media_expires",
            postgresql_where=sa.text("media_expires_at IS NOT NULL"),
            sqlite_where=sa.text("media_expires_at IS NOT NULL"),
        )
        batch_op.drop_column("media_bytes")
        batch_op.drop_column("media_expires_at")
    op.drop_table("admin_auth_failures")
    op.drop_table("admin_sessions")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("retention_days")
        batch_op.drop_column("previous_secret_until")
        batch_op.drop_column("previous_webhook_secret")
        batch_op.drop_column("create_rate")
