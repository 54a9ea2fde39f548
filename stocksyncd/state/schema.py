"""The tables of the state store, as the migrations leave them at head.

The migrations under ``migrations/versions`` are the source of truth for the
database; this module mirrors them for queries (and for ``alembic
revision --autogenerate``). A test compares the two.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import TypeCompiler

metadata = sa.MetaData()


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL keeps ``timestamptz``; SQLite stores naive text, so values are
    converted to UTC before they are written and marked UTC when read back.
    The fixed text format of SQLite keeps string comparison in time order.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the state store needs aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {value!r}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class _SqliteJsonText(sa.JSON):
    """JSON in a TEXT column on SQLite.

    A column declared ``JSON`` gets NUMERIC affinity there, which turns the
    text ``18`` into the integer 18 (and big integers into lossy floats).
    """


@compiles(_SqliteJsonText, "sqlite")
def _sqlite_json_ddl(_type: _SqliteJsonText, _compiler: TypeCompiler, **_kw: Any) -> str:
    return "TEXT"


Json = sa.JSON().with_variant(_SqliteJsonText(), "sqlite")

# BIGINT autoincrement is not an alias of ROWID in SQLite; INTEGER is.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("integration", sa.String(200), nullable=False),
    sa.Column("trigger", sa.String(32), nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("replica", sa.String(200), nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("duration_s", sa.Float, nullable=False),
    sa.Column("counts", Json, nullable=False),
    sa.Column("conflicts", Json, nullable=False),
    sa.Column("errors", Json, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("requests", Json, nullable=False),
    sa.Column("details", Json, nullable=False),
    sa.Column("changes_total", sa.Integer, nullable=False),
    sa.Index("ix_runs_integration_started", "integration", "started_at"),
    sa.Index("ix_runs_integration_status_finished", "integration", "status", "finished_at"),
    sa.Index("ix_runs_started", "started_at"),
    # Added by revision 0005: the runs page filters by status.
    sa.Index("ix_runs_status_started", "status", "started_at"),
)

run_changes = sa.Table(
    "run_changes",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "run_id",
        sa.String(64),
        sa.ForeignKey("runs.run_id", ondelete="CASCADE", name="fk_run_changes_run"),
        nullable=False,
    ),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("ref", sa.Text, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("field", sa.String(200), nullable=False),
    sa.Column("old", sa.Text, nullable=True),
    sa.Column("new", sa.Text, nullable=True),
    sa.Column("applied", sa.Boolean, nullable=False),
    # Added by revision 0003 (write-ahead audit): planned | sent | confirmed |
    # refused | unconfirmed, why (refused, unconfirmed), and whether the row was
    # stored before its request went out.
    sa.Column("status", sa.String(16), nullable=False, server_default="confirmed"),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("ahead", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_run_changes_run_seq", "run_id", "seq"),
    # Added by revision 0005: the history search finds changes by key or ref.
    sa.Index("ix_run_changes_key", "key"),
    sa.Index("ix_run_changes_ref", "ref"),
)

kv_values = sa.Table(
    "kv_values",
    metadata,
    sa.Column("scope", sa.String(200), primary_key=True),
    sa.Column("key", sa.String(500), primary_key=True),
    sa.Column("value", Json, nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

quotas = sa.Table(
    "quotas",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("bucket", sa.String(100), primary_key=True),
    sa.Column("used", sa.Integer, nullable=False),
    sa.Column("quota_limit", sa.Integer, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("acquired_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
)

replicas = sa.Table(
    "replicas",
    metadata,
    sa.Column("replica", sa.String(200), primary_key=True),
    sa.Column("seen_at", UtcDateTime, nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("version", sa.String(100), nullable=False),
    sa.Column("info", Json, nullable=False),
)

reviews = sa.Table(
    "reviews",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("integration", sa.String(200), nullable=False),
    sa.Column("part_pk", sa.BigInteger, nullable=False),
    sa.Column("part_name", sa.Text, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("data", Json, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # Added by revision 0002: which run produced the entry.
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Index("ix_reviews_integration_id", "integration", "id"),
    sa.Index("ix_reviews_run", "run_id"),
)
