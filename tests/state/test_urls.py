"""state_url handling: drivers, SQLite paths, in-memory, libpq options, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from stocksyncd.errors import ConfigError
from stocksyncd.state import open_store
from stocksyncd.state.engine import parse_state_url, redact_state_url


def test_sqlite_paths() -> None:
    rel = parse_state_url("sqlite:///data/state.db")
    assert (rel.backend, rel.url.drivername, rel.url.database) == (
        "sqlite", "sqlite+aiosqlite", "data/state.db")
    absolute = parse_state_url("sqlite:////var/lib/stocksyncd/state.db")
    assert absolute.url.database == "/var/lib/stocksyncd/state.db" and not absolute.memory


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_sqlite_memory(url: str) -> None:
    spec = parse_state_url(url)
    assert spec.memory and spec.url.database == ":memory:"


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+asyncpg"])
def test_postgres_schemes_map_to_asyncpg(scheme: str) -> None:
    spec = parse_state_url(f"{scheme}://sync:s3cret@db.example:6432/stock")
    assert spec.backend == "postgresql"
    assert spec.url.drivername == "postgresql+asyncpg"
    assert (spec.url.host, spec.url.port, spec.url.database) == ("db.example", 6432, "stock")
    assert spec.url.password == "s3cret"  # the engine still needs it
    assert "s3cret" not in spec.redacted and "sync@db.example:6432" in spec.redacted


def test_libpq_options_become_server_settings() -> None:
    spec = parse_state_url(
        "postgresql://u@h/db?options=-csearch_path%3Dtenant%20-c%20statement_timeout%3D5s"
        "&sslmode=require")
    assert spec.connect_args["server_settings"]["search_path"] == "tenant"
    assert spec.connect_args["server_settings"]["statement_timeout"] == "5s"
    assert spec.connect_args["ssl"] == "require"
    assert not spec.url.query


@pytest.mark.parametrize("url", ["mysql://u@h/db", "postgresql://u@h/db?foo=1",
                                 "postgresql://u@h/db?options=garbage", "not a url"])
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_state_url(url)


def test_redaction_keeps_urls_without_password() -> None:
    assert redact_state_url("sqlite:///x.db") == "sqlite:///x.db"
    assert "pw" not in redact_state_url("postgres://me:pw@host/db")


async def test_memory_store_works() -> None:
    store = await open_store("sqlite://")
    try:
        assert store.backend == "sqlite" and store.url == "sqlite://"
        await store.set_value("s", "k", [1])
        assert await store.get_value("s", "k") == [1]
        assert await store.quota_take("q", "b", limit=1)
    finally:
        await store.close()


async def test_relative_sqlite_file_gets_its_directory(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = await open_store("sqlite:///nested/dir/state.db")
    try:
        await store.set_value("s", "k", "v")
    finally:
        await store.close()
    assert (tmp_path / "nested" / "dir" / "state.db").is_file()


async def test_a_sqlite_file_is_in_wal_mode(tmp_path: Path) -> None:
    import sqlite3

    store = await open_store(f"sqlite:///{tmp_path}/wal.db")
    try:
        with sqlite3.connect(tmp_path / "wal.db") as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        await store.close()
