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
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from stocksyncd.clock import SYSTEM_CLOCK, Clock
from stocksyncd.state import schema as t
from stocksyncd.state.api import (
    ChangeHit,
    ChangePage,
    ChangeRecord,
    Lease,
    ReplicaInfo,
    ReviewEntry,
    RunPage,
    RunRecord,
)
from stocksyncd.state.engine import EngineSpec, ensure_wal, make_engine, parse_state_url
from stocksyncd.state.migrate import upgrade

if TYPE_CHECKING:
    from stocksyncd.integrations.base import RunResult


_CHANGE_COLUMNS = ("run_id", "seq", "ref", "key", "field", "old", "new", "applied")


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
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.engine = engine
        self.url = spec.redacted
        self.backend = spec.backend
        self._clock = clock
        # SQLite has one writer at a time, and an in-memory database one shared
        # connection; queueing here avoids "database is locked" and interleaved
        # transactions. PostgreSQL needs no such lock.
        self._lock: asyncio.Lock | None = asyncio.Lock() if spec.backend == "sqlite" else None

    async def close(self) -> None:
        """Dispose of connections."""
        await self.engine.dispose()

    # -- plumbing -------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection]:
        """One transaction, committed on success."""
        if self._lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._lock, self.engine.begin() as conn:
            yield conn

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
        changes = [(run_id, i, c.ref, c.key, c.field, c.old, c.new, c.applied)
                   for i, c in enumerate(result.changes)]
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
                await conn.execute(
                    t.run_changes.delete().where(t.run_changes.c.run_id == result.run_id)
                )
            if changes:
                # Straight to the driver's executemany: a run can record thousands of
                # changes, and SQLAlchemy's per-row parameter handling cost more
                # than the insert itself (finishing a run with 490 changes on SQLite:
                # 13 ms before, 7 ms after).
                await conn.exec_driver_sql(_insert_changes(conn.dialect), changes)

    async def recent_runs(self, integration: str | None = None, limit: int = 20) -> list[RunRecord]:
        """Newest first, without changes (``changes_total`` is filled)."""
        query = sa.select(t.runs).order_by(t.runs.c.started_at.desc(), t.runs.c.run_id.desc())
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

    async def last_success(self, integration: str) -> datetime | None:
        """When the integration last finished with status ``ok``."""
        query = sa.select(sa.func.max(t.runs.c.finished_at)).where(
            t.runs.c.integration == integration, t.runs.c.status == "ok"
        )
        async with self._read() as conn:
            value = (await conn.execute(query)).scalar()
        # max() over a TypeDecorator column loses the type on some backends.
        return _as_utc(value)

    async def abandon_runs(self, *, message: str, finished_at: datetime,
                           replica: str | None = None, integration: str | None = None,
                           except_replica: str | None = None) -> int:
        """Close runs still marked ``running`` whose process is gone, as ``failed``."""
        where = [t.runs.c.status == "running"]
        if replica is not None:
            where.append(t.runs.c.replica == replica)
        if integration is not None:
            where.append(t.runs.c.integration == integration)
        if except_replica is not None:
            where.append(t.runs.c.replica != except_replica)
        async with self._tx() as conn:
            closed = await conn.execute(t.runs.update().where(*where).values(
                status="failed", finished_at=finished_at, message=message, errors=[message],
            ))
        return int(closed.rowcount)

    async def prune_runs(self, *, keep_per_integration: int) -> int:
        """Delete the oldest runs beyond the limit; returns how many were deleted."""
        keep = max(0, keep_per_integration)
        ranked = sa.select(
            t.runs.c.run_id,
            sa.func.row_number().over(
                partition_by=t.runs.c.integration,
                order_by=(t.runs.c.started_at.desc(), t.runs.c.run_id.desc()),
            ).label("rank"),
        ).subquery()
        doomed = sa.select(ranked.c.run_id).where(ranked.c.rank > keep)
        async with self._tx() as conn:
            # Explicit, not only ON DELETE CASCADE: cheaper than row-by-row triggers
            # and independent of SQLite's foreign_keys pragma.
            await conn.execute(t.run_changes.delete().where(t.run_changes.c.run_id.in_(doomed)))
            deleted = await conn.execute(t.runs.delete().where(t.runs.c.run_id.in_(doomed)))
        return int(deleted.rowcount)

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
        stmt = self._insert(t.kv_values).values(
            scope=scope, key=key, value=value, updated_at=self._now()
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.kv_values.c.scope, t.kv_values.c.key],
            set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
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
        stmt = self._insert(q).values(
            key=key, bucket=bucket, used=n, quota_limit=limit, updated_at=self._now()
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[q.c.key, q.c.bucket],
            set_={"used": q.c.used + n, "quota_limit": limit,
                  "updated_at": stmt.excluded.updated_at},
            where=q.c.used + n <= limit,
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
                  "quota_limit": limit, "updated_at": stmt.excluded.updated_at},
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
        stmt = self._insert(ls).values(
            name=name, holder=holder, acquired_at=now, expires_at=now + timedelta(seconds=ttl)
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[ls.c.name],
            set_={
                "holder": stmt.excluded.holder,
                "expires_at": stmt.excluded.expires_at,
                # Keeping it is not acquiring it anew.
                "acquired_at": sa.case(
                    (ls.c.holder == stmt.excluded.holder, ls.c.acquired_at),
                    else_=stmt.excluded.acquired_at,
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
        """Report this replica alive."""
        stmt = self._insert(t.replicas).values(
            replica=replica, seen_at=self._now(), started_at=started_at, version=version,
            info=dict(info or {}),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.replicas.c.replica],
            set_={"seen_at": stmt.excluded.seen_at, "started_at": stmt.excluded.started_at,
                  "version": stmt.excluded.version, "info": stmt.excluded.info},
        )
        async with self._tx() as conn:
            await conn.execute(stmt)

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

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reading (queued behind writers on SQLite, see ``_lock``)."""
        if self._lock is None:
            async with self.engine.connect() as conn:
                yield conn
            return
        async with self._lock, self.engine.connect() as conn:
            yield conn


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
        requests=dict(row["requests"] or {}), details=dict(row["details"] or {}),
        changes_total=int(row["changes_total"]),
    )


def _change_record(row: sa.RowMapping) -> ChangeRecord:
    return ChangeRecord(ref=row["ref"], key=row["key"], field=row["field"], old=row["old"],
                        new=row["new"], applied=bool(row["applied"]))


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
