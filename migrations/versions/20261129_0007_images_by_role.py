"""images by role, account-level pause

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 21:00:00

A job may carry several input images, each with a role (first_frame, last_frame, reference):
`jobs.images` lists them, `job_images` holds the bytes of those still to upload, one row per
image. `jobs.waiting_reason` says why a queued job is held back (an account-level pause);
`jobs.adopt_task_id` holds a task id a callback named for a job whose createTask answer was
lost, until the worker has checked it; `scheduler_state` records the account pause.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("images", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("waiting_reason", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("adopt_task_id", sa.String(length=200), nullable=True))
    with op.batch_alter_table("scheduler_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account_reason", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("account_paused_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("account_probe_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("account_probe_job", sa.String(length=40), nullable=True))
    with op.batch_alter_table("job_images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("position", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("role", sa.String(length=16), nullable=False, server_default="first_frame")
        )
        batch_op.drop_constraint("pk_job_images", type_="primary")
        batch_op.create_primary_key("pk_job_images", ["job_id", "position"])
    # Jobs stored before this revision: their one image is the first frame.
    op.execute(
        "UPDATE jobs SET images = json_build_array(json_build_object("
        "'role', 'first_frame', 'url', image_url)) WHERE image_url IS NOT NULL"
        if op.get_bind().dialect.name == "postgresql"
        else "UPDATE jobs SET images = json_array(json_object("
        "'role', 'first_frame', 'url', image_url)) WHERE image_url IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DELETE FROM job_images WHERE position > 0")
    with op.batch_alter_table("job_images", schema=None) as batch_op:
        batch_op.drop_constraint("pk_job_images", type_="primary")
        batch_op.create_primary_key("pk_job_images", ["job_id"])
        batch_op.drop_column("role")
        batch_op.drop_column("position")
    with op.batch_alter_table("scheduler_state", schema=None) as batch_op:
        for column in ("account_probe_job", "account_probe_at", "account_paused_at"):
            batch_op.drop_column(column)
        batch_op.drop_column("account_reason")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("adopt_task_id")
        batch_op.drop_column("waiting_reason")
        batch_op.drop_column("images")
