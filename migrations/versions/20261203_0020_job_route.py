"""a job may be pinned to one upstream account

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 17:20:00

- `jobs.route`: the account (catalogue.accounts) the client pinned the job to (`"route"`, or
  `"failover": false` — then the first account serving its model when it was made). Admission
  gives such a job to that account only; None lets it go to any account serving its model.

A plain ADD COLUMN on both databases (no batch rebuild: see 0015).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("route", sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE jobs DROP COLUMN route")
