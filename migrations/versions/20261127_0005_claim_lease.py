"""claim lease outside the indexes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 16:50:00

The sweep's claim used to push `next_check_at` (indexed) past a lease, so each claimed row
was written again into every index of `jobs`. The lease now lives in `claimed_until`, which
no index covers: on PostgreSQL the claim is a HOT update, given room on the page (fillfactor).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("claimed_until", models.base.UTCDateTime(timezone=True), nullable=True)
        )
    if op.get_bind().dialect.name == "postgresql":
        # Room on each page for the claim's new row version (applies to pages written after).
        op.execute("ALTER TABLE jobs SET (fillfactor = 80)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE jobs RESET (fillfactor)")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("claimed_until")
