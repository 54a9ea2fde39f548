"""Indexes for the history pages: changes by key or ref, runs by status.

The search "every change to 4600000000228, newest first" looks changes up by
key (or by the written object's id); the runs page filters by status and date.
Without these, both scan every change of every kept run (20,000 runs per
integration by default).

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_run_changes_key", "run_changes", ["key"])
    op.create_index("ix_run_changes_ref", "run_changes", ["ref"])
    op.create_index("ix_runs_status_started", "runs", ["status", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_status_started", table_name="runs")
    op.drop_index("ix_run_changes_ref", table_name="run_changes")
    op.drop_index("ix_run_changes_key", table_name="run_changes")
