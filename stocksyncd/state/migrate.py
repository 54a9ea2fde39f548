"""Apply the alembic migrations from code, at daemon start.

They run on a connection of the store's own engine, so they land in the
schema the URL's search_path names. On PostgreSQL a transaction-scoped
advisory lock makes replicas that start together migrate one after the other;
the later ones find the schema at head and do nothing. SQLite gets the same
effect from ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

_HERE = Path(__file__).resolve().parent

# Key space of pg_advisory_xact_lock: one lock per schema.
_LOCK_SQL = text(
    "SELECT pg_advisory_xact_lock("
    "hashtext('stocksyncd.migrate:' || coalesce(current_schema(), '')))"
)


def alembic_config() -> Config:
    """The alembic config of the shipped migrations."""
    cfg = Config(str(_HERE / "alembic.ini"))
    cfg.set_main_option("script_location", str(_HERE / "migrations"))
    return cfg


def head_revision() -> str:
    """The newest revision shipped with this version."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no migrations shipped")
    return head


def _upgrade(connection: Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(_LOCK_SQL)
    elif connection.dialect.name == "sqlite":
        # Take the write lock before reading the version, so a second process
        # waits (busy_timeout) and then finds the schema at head.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database of ``engine`` to ``revision`` (one transaction)."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at; None when it was never migrated."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current)
