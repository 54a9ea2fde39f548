"""The state store on SQLAlchemy async: SQLite (one host) or PostgreSQL (replicas).

Operations that replicas race on (quota, leases) are single statements
(``INSERT ... ON CONFLICT DO UPDATE ... WHERE ... RETURNING``), so they hold
across processes on PostgreSQL without explicit locks. Times come from the
injected clock, never from the database server.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from stocksyncd.clock import SYSTEM_CLOCK, Clock
from stocksyncd.errors import WriteFenced
from stocksyncd.state import retention
from stocksyncd.state import schema as t
from stocksyncd.state.api import (
    ChangeHit,
    ChangePage,
    ChangeRecord,
    Lease,
    LeaseFence,
    ReplicaInfo,
    ReviewEntry,
    RunPage,
    RunRecord,
    StoreUnavailable,
)
from stocksyncd.state.engine import EngineSpec, ensure_wal, make_engine, parse_state_url
from stocksyncd.state.migrate import upgrade
from stocksyncd.state.retention import Retention

if TYPE_CHECKING:
    from stocksyncd.integrations.base import Change, ChangeStatus, RunResult


_CHANGE_COLUMNS = ("run_id", "seq", "ref", "key", "field", "old", "new", "applied", "status",
                   "reason", "ahead")
# Seconds any one operation may take before the store counts as unable to record
# (a frozen PostgreSQL accepts connections and never answers).
STORE_TIMEOUT = 10.0
# Statuses whose write went out and was taken.
_APPLIED = frozenset({"sent", "confirmed", "unconfirmed"})
# On SQLite (one host, no failover) a heartbeat only feeds the status page.
SQLITE_BEAT_EVERY = 60.0


@functools.cache
def _excluded(table: sa.Table) -> Any:
    """The row an upsert proposed (``EXCLUDED`` in ON CONFLICT DO UPDATE), one per table.

    ``stmt.excluded`` builds a new alias of the table on every call: a few
    dozen objects in reference cycles, which only the cyclic collector frees.
    One upsert per request and per beat piled them up for hours between
    collections (see runtime/heap.py); the alias is the same every time.
    """
    return sa.alias(table, name="excluded").c


@functools.cache
def _insert_changes(dialect: sa.Dialect) -> str:
    """The dialect's INSERT of one change row, its parameters in ``_CHANGE_COLUMNS`` order."""
    compiled = t.run_changes.insert().inline().compile(dialect=dialect,
                                                       column_keys=list(_CHANGE_COLUMNS))
    if not compiled.positional or tuple(compiled.positiontup or ()) != _CHANGE_COLUMNS:
        raise RuntimeError(f"unexpected parameter style {dialect.paramstyle!r} for run_changes")
    return str(compiled)


class SqlStateStore:
    """``StateStore`` over one SQLAlchemy async engine."""

    def __init__(self, engine: AsyncEngine, spec: EngineSpec, *,
                 clock: Clock = SYSTEM_CLOCK, timeout: float = STORE_TIMEOUT) -> None:
        self.engine = engine
        self.url = spec.redacted
        self.backend = spec.backend
        self.timeout = timeout
        self._spec = spec
        self._clock = clock
        # SQLite has one writer at a time, and an in-memory database one shared
        # connection; queueing here avoids "database is locked" and interleaved
        # transactions. PostgreSQL needs no such lock.
        self._lock: asyncio.Lock | None = asyncio.Lock() if spec.backend == "sqlite" else None
        # A SQLite file is watched by identity: writes into a deleted or replaced
        # file would be lost with it. The descriptor held open keeps the inode
        # allocated, so a new file at the path can never look like ours.
        self._path: Path | None = None
        self._fd: int | None = None
        if spec.backend == "sqlite" and not spec.memory:
            self._path = Path(spec.url.database or "").expanduser()
            self._fd = os.open(self._path, os.O_RDONLY)
        self._lost: str | None = None  # why the SQLite file can no longer be used
        self._problem: str | None = None
        # The last heartbeat written: replica, started_at, version, info, monotonic time.
        self._beat: tuple[str, datetime, str, dict[str, Any], float] | None = None

    async def close(self) -> None:
        """Dispose of connections."""
        await self.engine.dispose()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def recording_problem(self) -> str | None:
        """Why the store cannot record right now (its last write failed), or None."""
        return self._problem

    # -- plumbing -------------------------------------------------------------
    def _tx(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """One transaction, committed on success, bounded by ``timeout``.

        An outage (unreachable, too slow, file gone) raises ``StoreUnavailable``
        and is remembered until a write succeeds again (``recording_problem``).
        """
        return self._connection(write=True)

    def _read(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A connection for reading (queued behind writers on SQLite, see ``_lock``)."""
        return self._connection(write=False)

    @contextlib.asynccontextmanager
    async def _connection(self, *, write: bool) -> AsyncIterator[AsyncConnection]:
        open_ = self.engine.begin if write else self.engine.connect
        # SQLite's statements take turns in this process (``_lock``). The bound is on
        # the store's answer, not on that queue: 300 runs of an aligned cron wait
        # their turn for longer than the bound, with the store answering each at once.
        turn = self._lock if self._lock is not None else contextlib.nullcontext()
        try:
            async with turn, asyncio.timeout(self.timeout):
                if self._lock is not None:
                    await self._check_file()
                async with open_() as conn:
                    yield conn
        except Exception as exc:
            if (outage := self._outage(exc)) is None:
                raise
            # A store that cannot be read cannot be written either; the next
            # successful write clears this.
            self._problem = outage
            raise StoreUnavailable(f"state store {self.url}: {outage}") from exc
        if write:
            self._problem = None

    def _outage(self, exc: BaseException) -> str | None:
        """What ``exc`` says about the store being unable to record, or None (a bug)."""
        if isinstance(exc, StoreUnavailable):
            return str(exc).removeprefix(f"state store {self.url}: ")
        if isinstance(exc, TimeoutError):
            return f"no answer within {self.timeout:g}s"
        if isinstance(exc, sa.exc.IntegrityError | sa.exc.DataError | sa.exc.ProgrammingError):
            return None
        if isinstance(exc, sa.exc.DBAPIError | OSError | ConnectionError):
            return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        return None

    async def _check_file(self) -> None:
        """Fail for good once the SQLite file at the path is not the one we opened.

        Deleted, moved or replaced: whatever is recorded now would be lost, or
        land in a file that lacks the runs in flight. A file put in its place is
        not adopted while running: a WAL left over from the old file would be
        replayed into it. A restart opens it cleanly.
        """
        if self._path is None or self._fd is None:
            return
        if self._lost is None:
            identity = _file_identity(self._path)
            ours = os.fstat(self._fd)
            if identity == (ours.st_dev, ours.st_ino):
                return
            what = "is gone (deleted or moved)" if identity is None else (
                "was replaced by another file")
            self._lost = (f"the file {self._path} {what}; nothing is recorded until the "
                          "daemon is restarted with the file in place")
            # Pooled connections point at the old file.
            await self.engine.dispose()
        raise StoreUnavailable(f"state store {self.url}: {self._lost}")

    def _insert(self, table: sa.Table) -> Any:
        """The dialect's INSERT, which knows ON CONFLICT."""
        if self.backend == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _now(self) -> datetime:
        return self._clock.now()

    # -- runs -----------------------------------------------------------------
    async def start_run(self, *, run_id: str, integration: str, trigger: str, dry_run: bool,
                        replica: str, started_at: datetime) -> None:
        """Record that a run began (status ``running``)."""
        async with self._tx() as conn:
            await conn.execute(t.runs.insert().values(
                run_id=run_id, integration=integration, trigger=trigger, dry_run=dry_run,
                replica=replica, started_at=started_at, finished_at=None, status="running",
                duration_s=0.0, counts={}, conflicts=[], errors=[], message="", requests={},
                details={}, changes_total=0,
            ))

    async def finish_run(self, result: RunResult, *, finished_at: datetime) -> None:
        """Store the outcome of the run ``result.run_id`` began, with its changes.

        A run that was never started (e.g. recorded after the fact) is inserted;
        finishing twice replaces the first outcome and its changes.
        """
        outcome: dict[str, Any] = {
            "finished_at": finished_at,
            "status": result.status,
            "dry_run": result.dry_run,
            "duration_s": float(result.duration_s),
            "counts": asdict(result.counts),
            "conflicts": list(result.conflicts),
            "errors": list(result.errors),
            "message": result.message,
            "requests": dict(result.requests),
            "details": dict(result.details),
            "changes_total": len(result.changes),
        }
        run_id = result.run_id
        async with self._tx() as conn:
            updated = await conn.execute(
                t.runs.update().where(t.runs.c.run_id == result.run_id).values(**outcome)
            )
            if updated.rowcount == 0:
                started = result.started_at or finished_at - timedelta(seconds=result.duration_s)
                await conn.execute(t.runs.insert().values(
                    run_id=result.run_id, integration=result.integration, trigger="unknown",
                    replica="", started_at=started, **outcome,
                ))
            else:
                # Rows stored ahead of their writes stay as they are: they are the
                # audit even when the result lost track of them (a cut-off run).
                await conn.execute(t.run_changes.delete().where(
                    t.run_changes.c.run_id == result.run_id, ~t.run_changes.c.ahead))
            ahead = await self._ahead_ids(conn, run_id)
            rest = [c for c in result.changes if c.audit_id is None or c.audit_id not in ahead]
            if rest:
                first = await self._next_seq(conn, run_id) if ahead else 0
                # Straight to the driver's executemany: a run can record thousands of
                # changes, and SQLAlchemy's per-row parameter handling cost more
                # than the insert itself (finishing a run with 490 changes on SQLite:
                # 13 ms before, 7 ms after).
                await conn.exec_driver_sql(_insert_changes(conn.dialect), [
                    (run_id, first + i, c.ref, c.key, c.field, c.old, c.new, c.applied,
                     _stored_status(c),
                     "not sent" if _stored_status(c) == "planned" else "", False)
                    for i, c in enumerate(rest)
                ])
            await conn.execute(t.runs.update().where(t.runs.c.run_id == run_id).values(
                changes_total=len(ahead) + len(rest)))

    async def _ahead_ids(self, conn: AsyncConnection, run_id: str) -> set[int]:
        rows = await conn.execute(sa.select(t.run_changes.c.id).where(
            t.run_changes.c.run_id == run_id, t.run_changes.c.ahead))
        return {int(r[0]) for r in rows}

    async def _next_seq(self, conn: AsyncConnection, run_id: str) -> int:
        value = (await conn.execute(sa.select(sa.func.max(t.run_changes.c.seq)).where(
            t.run_changes.c.run_id == run_id))).scalar()
        return 0 if value is None else int(value) + 1

    async def plan_changes(self, run_id: str, changes: Sequence[Change], *,
                           fence: LeaseFence | None = None, valid_for: float = 0.0) -> None:
        """Store ``changes`` of run ``run_id`` as ``planned`` before they are sent.

        With ``fence``, in the same transaction: raise ``WriteFenced`` (storing
        nothing) unless ``fence.holder`` holds the lease ``fence.name`` for at
        least ``valid_for`` more seconds by its stored expiry.
        """
        if not changes:
            return
        async with self._tx() as conn:
            if fence is not None:
                await self._check_fence(conn, fence, valid_for)
            counted = await conn.execute(t.runs.update().where(t.runs.c.run_id == run_id).values(
                changes_total=t.runs.c.changes_total + len(changes)))
            if counted.rowcount != 1:
                raise WriteFenced(f"run {run_id} is not in the state store {self.url} (was its "
                                  "file replaced?): its writes could not be recorded")
            first = await self._next_seq(conn, run_id)
            rc = t.run_changes
            stmt = rc.insert().returning(rc.c.id, sort_by_parameter_order=True)
            rows = await conn.execute(stmt, [
                {"run_id": run_id, "seq": first + i, "ref": c.ref, "key": c.key,
                 "field": c.field, "old": c.old, "new": c.new, "applied": False,
                 "status": "planned", "reason": "", "ahead": True}
                for i, c in enumerate(changes)
            ])
            ids = [int(r[0]) for r in rows]
        for change, audit_id in zip(changes, ids, strict=True):
            change.audit_id, change.status, change.applied = audit_id, "planned", False

    async def _check_fence(self, conn: AsyncConnection, fence: LeaseFence,
                           valid_for: float) -> None:
        query = sa.select(t.leases.c.holder, t.leases.c.expires_at).where(
            t.leases.c.name == fence.name)
        if self.backend == "postgresql":
            # Held until commit: a takeover waits for our rows, and sees them.
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        if row is None or row[0] != fence.holder:
            holder = "nobody" if row is None else f"replica {row[0]}"
            raise WriteFenced(f"lease {fence.name} is held by {holder}, not by "
                              f"{fence.holder}: not writing")
        left = (row[1] - self._now()).total_seconds()
        if left < valid_for:
            raise WriteFenced(
                f"lease {fence.name} expires in {left:.1f}s by its stored expiry, "
                f"less than the {valid_for:.1f}s the write may take: not writing")

    async def settle_changes(self, changes: Sequence[Change], status: ChangeStatus,
                             reason: str = "") -> None:
        """Move stored changes (by ``audit_id``) to ``status``."""
        ids = [c.audit_id for c in changes if c.audit_id is not None]
        if ids:
            async with self._tx() as conn:
                await conn.execute(t.run_changes.update().where(t.run_changes.c.id.in_(ids))
                                   .values(status=status, reason=reason,
                                           applied=status in _APPLIED))
        for change in changes:
            change.status, change.applied = status, status in _APPLIED

    async def recent_runs(self, integration: str | None = None, limit: int = 20, *,
                          details: bool = True) -> list[RunRecord]:
        """Newest first, without changes (``changes_total`` is filled); see the protocol."""
        columns = t.runs.c if details else [c for c in t.runs.c if c.name != "details"]
        query = sa.select(*columns).order_by(t.runs.c.started_at.desc(), t.runs.c.run_id.desc())
        if integration is not None:
            query = query.where(t.runs.c.integration == integration)
        async with self._read() as conn:
            rows = (await conn.execute(query.limit(max(0, limit)))).mappings().all()
        return [_run_record(row) for row in rows]

    async def get_run(self, run_id: str) -> RunRecord | None:
        """One run with all its changes."""
        async with self._read() as conn:
            row = (await conn.execute(
                sa.select(t.runs).where(t.runs.c.run_id == run_id)
            )).mappings().first()
            if row is None:
                return None
            changes = (await conn.execute(
                sa.select(t.run_changes).where(t.run_changes.c.run_id == run_id)
                .order_by(t.run_changes.c.seq)
            )).mappings().all()
        record = _run_record(row)
        record.changes = [_change_record(c) for c in changes]
        return record

    async def list_runs(self, *, integration: str | None = None, status: str | None = None,
                        since: datetime | None = None, until: datetime | None = None,
                        offset: int = 0, limit: int = 50) -> RunPage:
        """Runs started in [since, until), newest first, without changes; filters optional."""
        where: list[sa.ColumnElement[bool]] = []
        if integration is not None:
            where.append(t.runs.c.integration == integration)
        if status is not None:
            where.append(t.runs.c.status == status)
        if since is not None:
            where.append(t.runs.c.started_at >= since)
        if until is not None:
            where.append(t.runs.c.started_at < until)
        query = (sa.select(t.runs).where(*where)
                 .order_by(t.runs.c.started_at.desc(), t.runs.c.run_id.desc())
                 .offset(max(0, offset)).limit(max(0, limit)))
        count = sa.select(sa.func.count()).select_from(t.runs).where(*where)
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
            total = int((await conn.execute(count)).scalar_one())
        return RunPage(runs=[_run_record(row) for row in rows], total=total)

    async def search_changes(self, term: str, *, integration: str | None = None,
                             offset: int = 0, limit: int = 100) -> ChangePage:
        """Every stored change whose key or ref is exactly ``term``, newest run first."""
        c, r = t.run_changes, t.runs
        # Both backends answer the OR from the two indexes (bitmap OR on
        # PostgreSQL, the OR-by-union plan on SQLite): see docs/benchmarks.md.
        where: list[sa.ColumnElement[bool]] = [sa.or_(c.c.key == term, c.c.ref == term)]
        if integration is not None:
            where.append(r.c.integration == integration)
        joined = c.join(r, r.c.run_id == c.c.run_id)
        query = (sa.select(c, r.c.integration, r.c.started_at, r.c.status, r.c.dry_run)
                 .select_from(joined).where(*where)
                 .order_by(r.c.started_at.desc(), r.c.run_id.desc(), c.c.seq)
                 .offset(max(0, offset)).limit(max(0, limit)))
        # Every change belongs to a stored run (foreign key): without a filter on the
        # run, the total needs no join (a hash join over all runs on PostgreSQL).
        count = sa.select(sa.func.count()).select_from(
            joined if integration is not None else c).where(*where)
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
            total = int((await conn.execute(count)).scalar_one())
        hits = [ChangeHit(run_id=row["run_id"], integration=row["integration"],
                          started_at=row["started_at"], status=row["status"],
                          dry_run=bool(row["dry_run"]), change=_change_record(row))
                for row in rows]
        return ChangePage(hits=hits, total=total)

    async def last_success(self, integration: str, *,
                           include_dry_runs: bool = True) -> datetime | None:
        """When the integration last finished with status ``ok`` (dry runs only if asked)."""
        query = sa.select(sa.func.max(t.runs.c.finished_at)).where(
            t.runs.c.integration == integration, t.runs.c.status == "ok"
        )
        if not include_dry_runs:
            query = query.where(t.runs.c.dry_run == sa.false())
        async with self._read() as conn:
            value = (await conn.execute(query)).scalar()
        # max() over a TypeDecorator column loses the type on some backends.
        return _as_utc(value)

    async def abandon_runs(self, *, message: str, finished_at: datetime,
                           replica: str | None = None, integration: str | None = None,
                           except_replica: str | None = None) -> int:
        """Close runs still marked ``running`` whose process is gone, as ``interrupted``.

        Their changes stay as they stood: ``planned`` ones may have been sent.
        """
        where = [t.runs.c.status == "running"]
        if replica is not None:
            where.append(t.runs.c.replica == replica)
        if integration is not None:
            where.append(t.runs.c.integration == integration)
        if except_replica is not None:
            where.append(t.runs.c.replica != except_replica)
        async with self._tx() as conn:
            closed = await conn.execute(t.runs.update().where(*where).values(
                status="interrupted", finished_at=finished_at, message=message,
                errors=[message],
            ))
        return int(closed.rowcount)

    async def prune_runs(self, *, keep_per_integration: int = 0,
                         older_than: datetime | None = None,
                         max_bytes: int | None = None) -> int:
        """Delete the runs beyond the retention (see ``retention``); how many were deleted."""
        keep = Retention(keep_per_integration=max(0, keep_per_integration),
                         older_than=older_than, max_bytes=max_bytes)
        if not keep.bounded:
            return 0
        async with self._read() as conn:
            mean_text = await conn.scalar(retention.change_text_bytes())
            change_bytes = retention.per_change_bytes(mean_text)
            doomed = list((await conn.execute(
                retention.doomed_runs(keep, change_bytes))).scalars())
        deleted = 0
        for start in range(0, len(doomed), retention.DELETE_BATCH):
            async with self._tx() as conn:
                for stmt in retention.delete_runs(doomed[start:start + retention.DELETE_BATCH]):
                    result = await conn.execute(stmt)
            deleted += int(result.rowcount)
            await asyncio.sleep(0)  # let runs write between batches
        return deleted

    async def history_bytes(self) -> int:
        """The estimated size of the run history (what ``max_bytes`` is compared with)."""
        async with self._read() as conn:
            mean_text = await conn.scalar(retention.change_text_bytes())
            total = await conn.scalar(
                retention.history_bytes(retention.per_change_bytes(mean_text)))
        return int(total or 0)

    # -- values ---------------------------------------------------------------
    async def get_value(self, scope: str, key: str) -> Any | None:
        """A JSON-able value stored under (scope, key), or None."""
        query = sa.select(t.kv_values.c.value).where(
            t.kv_values.c.scope == scope, t.kv_values.c.key == key
        )
        async with self._read() as conn:
            return (await conn.execute(query)).scalar()

    async def set_value(self, scope: str, key: str, value: Any) -> None:
        """Store a JSON-able value (upsert)."""
        new = _excluded(t.kv_values)
        stmt = self._insert(t.kv_values).values(
            scope=scope, key=key, value=value, updated_at=self._now()
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.kv_values.c.scope, t.kv_values.c.key],
            set_={"value": new.value, "updated_at": new.updated_at},
        )
        async with self._tx() as conn:
            await conn.execute(stmt)

    async def delete_value(self, scope: str, key: str) -> None:
        """Forget a value."""
        async with self._tx() as conn:
            await conn.execute(t.kv_values.delete().where(
                t.kv_values.c.scope == scope, t.kv_values.c.key == key
            ))

    # -- quotas ---------------------------------------------------------------
    async def quota_take(self, key: str, bucket: str, limit: int, n: int = 1) -> bool:
        """Atomically add ``n`` to the use of (key, bucket) if it stays <= limit."""
        if n < 0:
            raise ValueError("n must not be negative")
        if n > limit:
            return False
        q = t.quotas
        new = _excluded(q)
        stmt = self._insert(q).values(
            key=key, bucket=bucket, used=n, quota_limit=limit, updated_at=self._now()
        )
        # Column arithmetic only: ``used + n`` on a bound value builds a reference cycle.
        stmt = stmt.on_conflict_do_update(
            index_elements=[q.c.key, q.c.bucket],
            set_={"used": q.c.used + new.used, "quota_limit": limit,
                  "updated_at": new.updated_at},
            where=q.c.used <= limit - n,
        ).returning(q.c.used)
        async with self._tx() as conn:
            row = (await conn.execute(stmt)).first()
        return row is not None

    async def quota_used(self, key: str, bucket: str) -> int:
        """Units used in (key, bucket); 0 when unknown."""
        query = sa.select(t.quotas.c.used).where(
            t.quotas.c.key == key, t.quotas.c.bucket == bucket
        )
        async with self._read() as conn:
            value = (await conn.execute(query)).scalar()
        return int(value or 0)

    async def quota_exhaust(self, key: str, bucket: str, limit: int) -> None:
        """Mark (key, bucket) as used up (the upstream said the quota is gone)."""
        q = t.quotas
        stmt = self._insert(q).values(
            key=key, bucket=bucket, used=limit, quota_limit=limit, updated_at=self._now()
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[q.c.key, q.c.bucket],
            set_={"used": sa.case((q.c.used > limit, q.c.used), else_=limit),
                  "quota_limit": limit, "updated_at": _excluded(q).updated_at},
        )
        async with self._tx() as conn:
            await conn.execute(stmt)

    # -- leases ---------------------------------------------------------------
    async def prune_quotas(self, *, before: datetime) -> int:
        """Delete quota buckets last touched before ``before``; returns how many."""
        async with self._tx() as conn:
            deleted = await conn.execute(t.quotas.delete().where(t.quotas.c.updated_at < before))
        return int(deleted.rowcount)

    async def try_acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take the lease if it is free, expired, or already ours; True when we hold it."""
        now = self._now()
        ls = t.leases
        new = _excluded(ls)
        stmt = self._insert(ls).values(
            name=name, holder=holder, acquired_at=now, expires_at=now + timedelta(seconds=ttl)
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[ls.c.name],
            set_={
                "holder": new.holder,
                "expires_at": new.expires_at,
                # Keeping it is not acquiring it anew.
                "acquired_at": sa.case(
                    (ls.c.holder == new.holder, ls.c.acquired_at),
                    else_=new.acquired_at,
                ),
            },
            where=sa.or_(ls.c.holder == holder, ls.c.expires_at <= now),
        ).returning(ls.c.holder)
        async with self._tx() as conn:
            row = (await conn.execute(stmt)).first()
        return row is not None and row[0] == holder

    async def renew_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Extend our lease; False when it is no longer ours.

        An expired lease nobody took over is still ours: no one else ran meanwhile.
        """
        expires = self._now() + timedelta(seconds=ttl)
        async with self._tx() as conn:
            result = await conn.execute(
                t.leases.update()
                .where(t.leases.c.name == name, t.leases.c.holder == holder)
                .values(expires_at=expires)
            )
        return bool(result.rowcount)

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up (only if ours)."""
        async with self._tx() as conn:
            await conn.execute(t.leases.delete().where(
                t.leases.c.name == name, t.leases.c.holder == holder
            ))

    async def leases(self) -> list[Lease]:
        """Every lease that has not expired."""
        query = sa.select(t.leases).where(t.leases.c.expires_at > self._now()).order_by(
            t.leases.c.name
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [Lease(name=r["name"], holder=r["holder"], expires_at=r["expires_at"],
                      acquired_at=r["acquired_at"]) for r in rows]

    # -- replicas -------------------------------------------------------------
    async def heartbeat(self, replica: str, *, started_at: datetime, version: str,
                        info: dict[str, Any] | None = None) -> None:
        """Report this replica alive.

        Failover needs only ``seen_at``: while the rest is what this store last
        wrote, a beat updates that one column (the whole row, with a job list
        of hundreds of names, was rewritten every 15 s). SQLite has no
        replicas to fail over to, so there a beat is written at most once per
        ``SQLITE_BEAT_EVERY`` (for the status page).
        """
        info = dict(info or {})
        wrote = self._beat
        same = wrote is not None and wrote[:4] == (replica, started_at, version, info)
        now = self._clock.monotonic()
        if (same and wrote is not None and self.backend == "sqlite"
                and now - wrote[4] < SQLITE_BEAT_EVERY):
            return
        if same:
            async with self._tx() as conn:
                touched = await conn.execute(t.replicas.update().where(
                    t.replicas.c.replica == replica).values(seen_at=self._now()))
            if touched.rowcount == 1:
                self._beat = (replica, started_at, version, info, now)
                return
        new = _excluded(t.replicas)
        stmt = self._insert(t.replicas).values(
            replica=replica, seen_at=self._now(), started_at=started_at, version=version,
            info=info,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.replicas.c.replica],
            set_={"seen_at": new.seen_at, "started_at": new.started_at,
                  "version": new.version, "info": new.info},
        )
        async with self._tx() as conn:
            await conn.execute(stmt)
        self._beat = (replica, started_at, version, info, now)

    async def replicas(self, *, seen_within: float) -> list[ReplicaInfo]:
        """Replicas that reported within ``seen_within`` seconds."""
        since = self._now() - timedelta(seconds=seen_within)
        query = sa.select(t.replicas).where(t.replicas.c.seen_at >= since).order_by(
            t.replicas.c.replica
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [ReplicaInfo(replica=r["replica"], seen_at=r["seen_at"],
                            started_at=r["started_at"], version=r["version"],
                            info=dict(r["info"] or {})) for r in rows]

    # -- reviews --------------------------------------------------------------
    async def add_review(self, entry: ReviewEntry) -> int:
        """Store an entry; returns its id."""
        created = entry.created_at or self._now()
        stmt = t.reviews.insert().values(
            integration=entry.integration, part_pk=entry.part_pk, part_name=entry.part_name,
            kind=entry.kind, message=entry.message, data=dict(entry.data), created_at=created,
            run_id=entry.run_id,
        ).returning(t.reviews.c.id)
        async with self._tx() as conn:
            entry_id = int((await conn.execute(stmt)).scalar_one())
        entry.id, entry.created_at = entry_id, created
        return entry_id

    async def list_reviews(self, integration: str | None = None, *, kind: str | None = None,
                           limit: int = 200) -> list[ReviewEntry]:
        """Newest first."""
        query = sa.select(t.reviews).order_by(t.reviews.c.id.desc()).limit(max(0, limit))
        if integration is not None:
            query = query.where(t.reviews.c.integration == integration)
        if kind is not None:
            query = query.where(t.reviews.c.kind == kind)
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_review(r) for r in rows]

    async def get_review(self, entry_id: int) -> ReviewEntry | None:
        """One entry."""
        async with self._read() as conn:
            row = (await conn.execute(
                sa.select(t.reviews).where(t.reviews.c.id == entry_id)
            )).mappings().first()
        return None if row is None else _review(row)

    async def update_review(self, entry_id: int, *, message: str | None = None,
                            data: dict[str, Any] | None = None, kind: str | None = None) -> None:
        """Change an entry in place (e.g. mark a hit as created)."""
        values: dict[str, Any] = {}
        if message is not None:
            values["message"] = message
        if data is not None:
            values["data"] = dict(data)
        if kind is not None:
            values["kind"] = kind
        if not values:
            return
        async with self._tx() as conn:
            await conn.execute(
                t.reviews.update().where(t.reviews.c.id == entry_id).values(**values)
            )

    async def delete_review(self, entry_id: int) -> bool:
        """Delete an entry; False when it did not exist."""
        async with self._tx() as conn:
            result = await conn.execute(t.reviews.delete().where(t.reviews.c.id == entry_id))
        return bool(result.rowcount)


def _stored_status(change: Change) -> str:
    """A change the result holds but the audit never saw: not applied means never sent."""
    if not change.applied and change.status == "confirmed":
        return "planned"
    return change.status


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _as_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {value!r}")
    return t.UtcDateTime().process_result_value(value, sqlite.dialect())


def _run_record(row: sa.RowMapping) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"], integration=row["integration"], trigger=row["trigger"],
        dry_run=bool(row["dry_run"]), replica=row["replica"], started_at=row["started_at"],
        finished_at=row["finished_at"], status=row["status"], duration_s=float(row["duration_s"]),
        counts=dict(row["counts"] or {}), conflicts=list(row["conflicts"] or []),
        errors=list(row["errors"] or []), message=row["message"],
        requests=dict(row["requests"] or {}), details=dict(row.get("details") or {}),
        changes_total=int(row["changes_total"]),
    )


def _change_record(row: sa.RowMapping) -> ChangeRecord:
    return ChangeRecord(ref=row["ref"], key=row["key"], field=row["field"], old=row["old"],
                        new=row["new"], applied=bool(row["applied"]), status=row["status"],
                        reason=row["reason"] or "")


def _review(row: sa.RowMapping) -> ReviewEntry:
    return ReviewEntry(
        integration=row["integration"], part_pk=int(row["part_pk"]), part_name=row["part_name"],
        kind=row["kind"], message=row["message"], data=dict(row["data"] or {}), id=int(row["id"]),
        created_at=row["created_at"], run_id=row["run_id"],
    )


async def open_store(url: str, *, clock: Clock = SYSTEM_CLOCK) -> SqlStateStore:
    """Connect to ``url``, migrate it to the newest schema, and return the store."""
    spec = parse_state_url(url)
    engine = make_engine(spec)
    try:
        await asyncio.to_thread(ensure_wal, spec)
        await upgrade(engine)
    except BaseException:
        await engine.dispose()
        raise
    return SqlStateStore(engine, spec, clock=clock)
