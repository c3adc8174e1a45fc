"""a job remembers its trace

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 09:50:00

- `jobs.traceparent`: the W3C trace context of the job's creation span (OpenTelemetry, when
  tracing is on): every later step of the job — in other processes, hours later — joins that
  one trace. NULL when tracing was off as the job was made.

A plain ADD COLUMN on both databases (no batch rebuild: see 0015).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("traceparent", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE jobs DROP COLUMN traceparent")
