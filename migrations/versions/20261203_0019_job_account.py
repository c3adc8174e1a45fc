"""a job names the upstream account it went to

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 14:10:00

- `jobs.account`: the upstream account (catalogue.accounts) admission gave the job; it stays once
  the createTask is sent. Unfinished live jobs made before accounts existed went to the one
  KIE_* account, whose name is `kie`.

A plain ADD COLUMN on both databases (no batch rebuild: see 0015).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("account", sa.String(length=32), nullable=True))
    op.execute(
        "UPDATE jobs SET account = 'kie' WHERE livemode AND status <> 'queued' "
        "AND next_check_at IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE jobs DROP COLUMN account")
