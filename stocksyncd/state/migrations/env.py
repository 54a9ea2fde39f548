"""Alembic environment of the state store.

The daemon calls alembic with an open connection (``config.attributes
["connection"]``), already inside the schema of the URL's search_path and,
on PostgreSQL, under an advisory lock. From the command line, pass the state
URL with ``-x url=...``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from stocksyncd.state.engine import make_engine, parse_state_url
from stocksyncd.state.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_url(url: str) -> None:
    engine = make_engine(parse_state_url(url))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("pass the state URL: alembic -x url=sqlite:///state.db ...")
    asyncio.run(_run_from_url(url))


main()
