"""Turn a ``state_url`` into an async SQLAlchemy engine.

Accepted: ``sqlite:///relative.db``, ``sqlite:////abs/path.db``, ``sqlite://``
or ``sqlite:///:memory:`` (in memory), ``postgresql://...`` and
``postgres://...``. A libpq-style ``options=-c name=value`` query (how
``search_path`` is usually chosen) becomes asyncpg ``server_settings``.
"""

from __future__ import annotations

import shlex
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from stocksyncd.errors import ConfigError

# Seconds a SQLite writer waits for another process's write lock (a `sync`
# command next to the daemon) before failing.
SQLITE_BUSY_TIMEOUT_MS = 15_000
# A pooled PostgreSQL connection that sat unused this many seconds is checked
# (pinged) before it is handed out; one used more recently is not.
PING_IDLE = 10.0


@dataclass(frozen=True)
class EngineSpec:
    """Everything needed to build the engine for one ``state_url``."""

    backend: str  # "sqlite" | "postgresql"
    url: URL  # the SQLAlchemy URL, with its async driver
    redacted: str  # for logs and the web page: no password
    memory: bool = False
    connect_args: dict[str, Any] = field(default_factory=dict)


def redact_state_url(url: str) -> str:
    """The URL without its password."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "<invalid state_url>"
    if parsed.password is None:
        return url
    # URL.set(password=None) means "unchanged": build the URL anew instead.
    bare = URL.create(parsed.drivername, username=parsed.username, host=parsed.host,
                      port=parsed.port, database=parsed.database, query=parsed.query)
    return bare.render_as_string(hide_password=False)


def parse_state_url(url: str) -> EngineSpec:
    """Validate ``url`` and translate it for SQLAlchemy's async drivers."""
    redacted = redact_state_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"state_url {redacted!r} is not a valid database URL") from exc
    scheme = parsed.drivername.split("+", 1)[0]
    if scheme == "sqlite":
        return _sqlite_spec(parsed, redacted)
    if scheme in ("postgresql", "postgres"):
        return _postgres_spec(parsed, redacted)
    raise ConfigError(f"state_url {redacted!r}: use sqlite:// or postgresql://")


def _sqlite_spec(parsed: URL, redacted: str) -> EngineSpec:
    database = parsed.database or ""
    memory = database in ("", ":memory:")
    url = parsed.set(drivername="sqlite+aiosqlite", query={})
    if memory:
        url = url.set(database=":memory:")
    return EngineSpec("sqlite", url, redacted, memory=memory,
                      connect_args={"check_same_thread": False} if memory else {})


def _postgres_spec(parsed: URL, redacted: str) -> EngineSpec:
    query = dict(parsed.query)
    connect_args: dict[str, Any] = {}
    server_settings: dict[str, str] = {}
    options = query.pop("options", None)
    for text in [options] if isinstance(options, str) else list(options or ()):
        server_settings.update(_libpq_options(text, redacted))
    sslmode = query.pop("sslmode", None)
    if isinstance(sslmode, str) and sslmode != "disable":
        connect_args["ssl"] = sslmode
    application_name = query.pop("application_name", "stocksyncd")
    server_settings.setdefault("application_name", str(application_name))
    if query:
        raise ConfigError(f"state_url {redacted!r}: unsupported parameters {sorted(query)}")
    connect_args["server_settings"] = server_settings
    url = parsed.set(drivername="postgresql+asyncpg", query={})
    return EngineSpec("postgresql", url, redacted, connect_args=connect_args)


def _libpq_options(text: str, redacted: str) -> dict[str, str]:
    """``-c search_path=x -c statement_timeout=5s`` (or ``-csearch_path=x``) -> settings."""
    settings: dict[str, str] = {}
    words = shlex.split(text)
    i = 0
    while i < len(words):
        word = words[i]
        if word == "-c" and i + 1 < len(words):
            item, i = words[i + 1], i + 2
        elif word.startswith(("-c", "--")):
            item, i = word[2:], i + 1
        else:
            raise ConfigError(f"state_url {redacted!r}: cannot read options {text!r}")
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"state_url {redacted!r}: option {item!r} needs name=value")
        settings[name.replace("-", "_")] = value
    return settings


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def make_engine(spec: EngineSpec) -> AsyncEngine:
    """The engine for ``spec``; a SQLite file's directory is created if missing."""
    kwargs: dict[str, Any] = {
        "json_serializer": _json_dumps,
        "json_deserializer": orjson.loads,
        "connect_args": spec.connect_args,
    }
    if spec.backend == "sqlite":
        if spec.memory:
            # Every connection to :memory: is a new empty database: keep one.
            kwargs["poolclass"] = StaticPool
        else:
            Path(spec.url.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
    else:
        kwargs["pool_size"] = 5
        kwargs["max_overflow"] = 5
    engine = create_async_engine(spec.url, **kwargs)
    if spec.backend == "sqlite":
        _sqlite_pragmas(engine, memory=spec.memory)
    else:
        _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: AsyncEngine) -> None:
    """Check a pooled connection before use only when it sat idle for ``PING_IDLE``.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout, and asyncpg's ping is
    three round trips (BEGIN, a query, ROLLBACK): as many as the statement it
    guards, on every run start, lease renewal and value read. A connection in
    steady use was answered a moment ago; one idle for a while (the server
    restarted, a firewall dropped it) is pinged, and replaced when it fails.
    """
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < PING_IDLE:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:
            # The pool drops this connection and hands out another (or a new one).
            raise DisconnectionError(f"idle connection is gone: {exc}") from exc


def ensure_wal(spec: EngineSpec) -> None:
    """Put a SQLite file in WAL mode before the engine's connections use it.

    WAL is a property of the file, so this is needed once. Switching a file
    that another process is using at that moment fails at once with
    "database is locked" (SQLite's busy timeout does not cover it), which
    happens when replicas start together on a new file: retry for as long
    as the busy timeout would wait. Blocking: call it in a worker thread.
    """
    if spec.backend != "sqlite" or spec.memory:
        return
    path = Path(spec.url.database or "").expanduser()
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        conn = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() == "wal":
                return
            raise sqlite3.OperationalError(f"{path}: journal mode stays {mode!r}, not WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        finally:
            conn.close()
        time.sleep(0.05)


def _sqlite_pragmas(engine: AsyncEngine, *, memory: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if not memory:
                # WAL itself is set once per file by ``ensure_wal`` (it is persistent).
                # Safe with WAL: a power cut may lose the last commit, never corrupt.
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()
