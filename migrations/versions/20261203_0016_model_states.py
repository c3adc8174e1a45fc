"""what Kie's live catalogue says of each model

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 03:30:00

- `model_states`: per model, its status at Kie (live, paused, gone) and why, Kie's prices and
  published success rate, and when each was read.
- `catalogue_reports`: each comparison of the catalogue with Kie's (the drift found).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_states",
        sa.Column("model_id", sa.String(100), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("changed_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("kie_prices", sa.JSON(), nullable=True),
        sa.Column("prices_read_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("kie_success_rate", sa.Float(), nullable=True),
        sa.Column("rate_read_at", models.base.UTCDateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "catalogue_reports",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("checked_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("drift", sa.JSON(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("catalogue_reports")
    op.drop_table("model_states")
