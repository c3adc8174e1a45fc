"""clients that wait, watch and batch

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 02:00:00

- `batches`, and `jobs.batch_id`: many jobs from one request; `jobs_open` counts down to the
  one `batch.completed` event;
- `jobs.webhook_events`: which webhook events a job's client asked for (None: completed only),
  `jobs.progress_announced`, the last tenth of progress announced, and
  `webhook_deliveries.progress`, the figure a `job.progress` event carries;
- `clients.livemode` / `jobs.livemode`: test-mode keys, whose jobs go to the sandbox;
- `idempotency_keys.batch_id`, and `job_id` may be empty (a key can name a batch);
- on PostgreSQL, a trigger that NOTIFYs `soraq_job_events` with "<job id> <client id>" for each
  history row but a job's creation, so that waiting requests and event streams wake at once.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION soraq_notify_job_event() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('soraq_job_events',
    NEW.job_id || ' ' || COALESCE((SELECT client_id FROM jobs WHERE id = NEW.job_id), ''));
  RETURN NULL;
END
$$ LANGUAGE plpgsql
"""
# A job's creation is left out: nobody waits on a job before it exists, it keeps NOTIFY's
# commit-time lock off the API's hottest path, and the creating process wakes its own streams.
_NOTIFY_TRIGGER = """
CREATE TRIGGER job_events_notify AFTER INSERT ON job_events
FOR EACH ROW WHEN (NEW.from_status IS NOT NULL OR NEW.kind <> 'transition')
EXECUTE FUNCTION soraq_notify_job_event()
"""


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("job_count", sa.Integer(), nullable=False),
        sa.Column("jobs_open", sa.Integer(), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_batches_client_created", "batches", ["client_id", "created_at"])
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("webhook_events", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("progress_announced", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("batch_id", sa.String(length=40), nullable=True))
        batch_op.add_column(
            sa.Column("livemode", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.create_foreign_key(
            "fk_jobs_batch_id_batches", "batches", ["batch_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_index("ix_jobs_batch", ["batch_id", "id"], unique=False)
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("progress", sa.Integer(), nullable=True))
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("livemode", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.alter_column("job_id", existing_type=sa.String(length=40), nullable=True)
        batch_op.add_column(sa.Column("batch_id", sa.String(length=40), nullable=True))
        batch_op.create_foreign_key(
            "fk_idempotency_keys_batch_id_batches",
            "batches",
            ["batch_id"],
            ["id"],
            ondelete="CASCADE",
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_NOTIFY_FUNCTION)
        op.execute(_NOTIFY_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS job_events_notify ON job_events")
        op.execute("DROP FUNCTION IF EXISTS soraq_notify_job_event()")
    op.execute("DELETE FROM idempotency_keys WHERE job_id IS NULL")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_constraint("fk_idempotency_keys_batch_id_batches", type_="foreignkey")
        batch_op.drop_column("batch_id")
        batch_op.alter_column("job_id", existing_type=sa.String(length=40), nullable=False)
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("livemode")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_column("progress")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_batch")
        batch_op.drop_constraint("fk_jobs_batch_id_batches", type_="foreignkey")
        batch_op.drop_column("livemode")
        batch_op.drop_column("batch_id")
        batch_op.drop_column("progress_announced")
        batch_op.drop_column("webhook_events")
    op.drop_index("ix_batches_client_created", table_name="batches")
    op.drop_table("batches")
