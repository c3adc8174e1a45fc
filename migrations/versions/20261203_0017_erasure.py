"""a job's data can be erased

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 07:20:00

- `jobs.deleted_at`: when the job's data was erased (DELETE /jobs/{id}, JOB_RETENTION_DAYS,
  `soraq jobs purge`): its prompt, inputs, metadata, uploads and archived files are gone; the
  row stays as a tombstone (id, client, model, times, usage) so usage and budgets add up.

A plain ADD COLUMN on both databases (no batch rebuild: see 0015).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "jobs", sa.Column("deleted_at", models.base.UTCDateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.execute("ALTER TABLE jobs DROP COLUMN deleted_at")
