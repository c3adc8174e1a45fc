"""where Kie's charge for a job was read

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 03:00:00

- `jobs.credits_reported_from`: which answer and field carried Kie's figure for the job's
  charge ("callback.creditsConsumed", "recordInfo.consumeCredits", …): Kie's pages disagree
  on the field's name, so `usage` says which one was read.

A plain ADD COLUMN on both databases (no batch rebuild: on SQLite a rebuild of `jobs` would
drop the active-jobs triggers of migration 0014).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("credits_reported_from", sa.String(40), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+ has it), for the same reason as above.
    op.execute("ALTER TABLE jobs DROP COLUMN credits_reported_from")
