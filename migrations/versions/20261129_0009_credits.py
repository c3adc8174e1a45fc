"""credits and budgets: each job's estimate, Kie's reported charge and its budget reservation;
per-client daily and monthly budgets with their spend counters (client_spend, one row per
client and UTC day); the Kie account's balance and low-credits episode

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credits_estimated", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("credits_reported", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("credits_reserved", sa.Float(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("credits_counted", sa.Float(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("daily_credits", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("monthly_credits", sa.Integer(), nullable=True))
    op.create_table(
        "client_spend",
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("credits", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_client_spend_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_id", "day", name=op.f("pk_client_spend")),
    )
    with op.batch_alter_table("scheduler_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kie_credits", sa.Float(), nullable=True))
        for name in ("kie_credits_at", "balance_check_at", "low_credits_since"):
            batch_op.add_column(
                sa.Column(name, models.base.UTCDateTime(timezone=True), nullable=True)
            )
        batch_op.add_column(sa.Column("low_credits_alert", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column(
                "low_credits_alert_attempts", sa.Integer(), server_default="0", nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("scheduler_state", schema=None) as batch_op:
        for name in (
            "low_credits_alert_attempts",
            "low_credits_alert",
            "low_credits_since",
            "balance_check_at",
            "kie_credits_at",
            "kie_credits",
        ):
            batch_op.drop_column(name)
    op.drop_table("client_spend")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("monthly_credits")
        batch_op.drop_column("daily_credits")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("credits_counted")
        batch_op.drop_column("credits_reserved")
        batch_op.drop_column("credits_estimated")
        batch_op.drop_column("credits_reported")
