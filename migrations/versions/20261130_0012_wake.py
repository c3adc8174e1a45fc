"""the dispatcher's timed wake-up

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 02:30:00

- `scheduler_state.wake_at`: the one timed wake-up the dispatcher has asked for, at the
  instant Kie's create window next has room.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("scheduler_state", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("wake_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("scheduler_state", schema=None) as batch_op:
        batch_op.drop_column("wake_at")
