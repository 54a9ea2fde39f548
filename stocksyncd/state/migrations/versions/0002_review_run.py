"""Reviews remember the run that produced them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: entries written before this revision have no run.
    op.add_column("reviews", sa.Column("run_id", sa.String(64), nullable=True))
    op.create_index("ix_reviews_run", "reviews", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_reviews_run", table_name="reviews")
    with op.batch_alter_table("reviews") as batch:
        batch.drop_column("run_id")
