"""the low-credits alert's attempt lease

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 07:00:00

- `scheduler_state.low_credits_alert_until`: an attempt at the operator's low-credits alert
  holds it until then, so a second balance reader never sends the alert while the first
  reader's attempt is still on its way.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("scheduler_state", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "low_credits_alert_until", models.base.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("scheduler_state", schema=None) as batch_op:
        batch_op.drop_column("low_credits_alert_until")
