"""Write-ahead audit: every stored change says where it stands.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("run_changes") as batch:
        # Rows written before this revision were stored after their run: applied
        # ones were confirmed by the write's answer, the others never went out.
        batch.add_column(sa.Column("status", sa.String(16), nullable=False,
                                   server_default="confirmed"))
        batch.add_column(sa.Column("reason", sa.Text, nullable=False, server_default=""))
        # True for rows stored before their request went out (write-ahead).
        batch.add_column(sa.Column("ahead", sa.Boolean, nullable=False,
                                   server_default=sa.false()))
    op.execute("UPDATE run_changes SET status = 'planned' WHERE NOT applied")


def downgrade() -> None:
    with op.batch_alter_table("run_changes") as batch:
        batch.drop_column("ahead")
        batch.drop_column("reason")
        batch.drop_column("status")
