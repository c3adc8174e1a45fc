"""house: names that say what they hold

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 23:50:00

- `jobs.attempts` → `jobs.failures`: it counts consecutive transient failures of the current
  step (a webhook delivery's `attempts` counts every attempt);
- `jobs.stage_lease_until`: how long a worker holds a stage (uploading, submitting,
  archiving); `jobs.deadline_at` is only the job's timeout at Kie now (it was both);
- `idempotency_keys.status_code` is gone: every stored key answered 202;
- `webhook_deliveries.waiting_host`: a delivery waiting for one of its host's slots, so that
  the delivery freeing a slot hands it over at once.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STAGES = "('uploading', 'submitting', 'archiving')"


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.alter_column("attempts", new_column_name="failures")
        batch_op.add_column(
            sa.Column("stage_lease_until", models.base.UTCDateTime(timezone=True), nullable=True)
        )
    # A job in a held stage had its lease in deadline_at (and an archiving one had lost its
    # timeout to it, which no longer matters: it is past Kie).
    op.execute(
        f"UPDATE jobs SET stage_lease_until = deadline_at, deadline_at = NULL "
        f"WHERE status IN {_STAGES}"
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_column("status_code")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("waiting_host", sa.String(length=255), nullable=True))
        batch_op.create_index(
            "ix_webhook_deliveries_waiting",
            ["waiting_host", "next_attempt_at"],
            unique=False,
            postgresql_where=sa.text("waiting_host IS NOT NULL"),
            sqlite_where=sa.text("waiting_host IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_webhook_deliveries_waiting",
            postgresql_where=sa.text("waiting_host IS NOT NULL"),
            sqlite_where=sa.text("waiting_host IS NOT NULL"),
        )
        batch_op.drop_column("waiting_host")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status_code", sa.Integer(), server_default="202", nullable=False)
        )
    op.execute(f"UPDATE jobs SET deadline_at = stage_lease_until WHERE status IN {_STAGES}")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("stage_lease_until")
        batch_op.alter_column("failures", new_column_name="attempts")
