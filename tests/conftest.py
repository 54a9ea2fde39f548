"""Fixtures every test module may use."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from stocksyncd.clock import FakeClock
from stocksyncd.redact import clear_secrets

# The PostgreSQL server of the test machine (trust auth). CI must fail, not
# skip, when it is missing: the ``pg_url`` fixture raises instead of skipping.
PG_BASE = os.environ.get("STOCKSYNCD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when told to (or when code sleeps on it)."""
    return FakeClock()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session for talking to simulators."""
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    yield
    clear_secrets()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL schema for one test; fails loudly when the server is missing."""
    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        conn = await asyncpg.connect(PG_BASE)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL at {PG_BASE} is not reachable: {exc}")
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
