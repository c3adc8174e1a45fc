"""what fal cannot do for a job, and what fal bills for it

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 21:30:00

- `jobs.fal_refusal`: why fal cannot make the job (a value outside fal's limits, an input its
  endpoints have no field for — catalogue/fal.toml); admission gives such a job to Kie's
  accounts only. None: fal can, where a fal account serves its model.
- `jobs.provider_usd`: fal's price for the job in USD, set when it is sent to fal (fal bills
  in dollars; Kie's jobs keep their credits).

Plain ADD COLUMNs on both databases (no batch rebuild: see 0015).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("fal_refusal", sa.String(length=200), nullable=True))
    op.add_column("jobs", sa.Column("provider_usd", sa.Float(), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE jobs DROP COLUMN provider_usd")
    op.execute("ALTER TABLE jobs DROP COLUMN fal_refusal")
