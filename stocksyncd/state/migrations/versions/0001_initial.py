"""Initial schema: runs and their changes, values, quotas, leases, replicas, reviews.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types, so later edits of schema.py cannot
# change what this revision creates.
TS = sa.DateTime(timezone=True)
# JSON as TEXT on SQLite: a column declared JSON gets NUMERIC affinity there.
JSON = sa.JSON().with_variant(sa.Text(), "sqlite")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("integration", sa.String(200), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("replica", sa.String(200), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.Column("counts", JSON, nullable=False),
        sa.Column("conflicts", JSON, nullable=False),
        sa.Column("errors", JSON, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("requests", JSON, nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.Column("changes_total", sa.Integer, nullable=False),
    )
    op.create_index("ix_runs_integration_started", "runs", ["integration", "started_at"])
    op.create_index("ix_runs_integration_status_finished", "runs",
                    ["integration", "status", "finished_at"])
    op.create_index("ix_runs_started", "runs", ["started_at"])

    op.create_table(
        "run_changes",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64),
                  sa.ForeignKey("runs.run_id", ondelete="CASCADE", name="fk_run_changes_run"),
                  nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("ref", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("field", sa.String(200), nullable=False),
        sa.Column("old", sa.Text, nullable=True),
        sa.Column("new", sa.Text, nullable=True),
        sa.Column("applied", sa.Boolean, nullable=False),
    )
    op.create_index("ix_run_changes_run_seq", "run_changes", ["run_id", "seq"])

    op.create_table(
        "kv_values",
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("key", sa.String(500), primary_key=True),
        sa.Column("value", JSON, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
    )

    op.create_table(
        "quotas",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("bucket", sa.String(100), primary_key=True),
        sa.Column("used", sa.Integer, nullable=False),
        sa.Column("quota_limit", sa.Integer, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )

    op.create_table(
        "leases",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("acquired_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )

    op.create_table(
        "replicas",
        sa.Column("replica", sa.String(200), primary_key=True),
        sa.Column("seen_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("info", JSON, nullable=False),
    )

    op.create_table(
        "reviews",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("integration", sa.String(200), nullable=False),
        sa.Column("part_pk", sa.BigInteger, nullable=False),
        sa.Column("part_name", sa.Text, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_reviews_integration_id", "reviews", ["integration", "id"])


def downgrade() -> None:
    for table in ("reviews", "replicas", "leases", "quotas", "kv_values", "run_changes", "runs"):
        op.drop_table(table)
