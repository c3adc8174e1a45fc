"""webhook host slots

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 20:40:00

At most WEBHOOK_MAX_IN_FLIGHT_PER_HOST deliveries to one host at once, across every worker:
one row per slot, taken by a compare-and-set on `held_until`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_host_slots",
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=40), nullable=True),
        sa.Column("held_until", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("host", "slot", name=op.f("pk_webhook_host_slots")),
    )


def downgrade() -> None:
    op.drop_table("webhook_host_slots")
