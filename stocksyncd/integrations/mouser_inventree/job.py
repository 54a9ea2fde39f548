"""The Mouser -> InvenTree job: each run walks the next parts after a persistent cursor.

Known SKUs are looked up ten to a Mouser call (``Exact``, joined by ``|``);
a part without a Mouser supplier part is searched by name, one call of its
own. Every write goes through the write-ahead audit (``writes``).

Failure policy, by who is at fault:

* A call limit: Mouser's per-minute refusal waits a minute and goes on (a
  second refusal ends the run, the next run tries again); the daily quota
  (Mouser says so, our ledger of calls says so, or refusals go on for a
  quarter of an hour) stops calls until 00:00 UTC with the cursor on the
  part; the run is ``aborted``.
* Mouser's answer for one part is garbage or refused (``PayloadError``,
  ``InvalidResponseError``): an ``error`` entry for that part, the cursor
  moves on. Nulls or wrong types are never read as "unknown SKU".
* Mouser unavailable (5xx, timeouts) or InvenTree failing a write of one
  part: the run fails and the part is retried, but only ``MAX_PART_ATTEMPTS``
  times in a row, so one part can never stall the job.
* Mouser refusing the key or answering HTTP 4xx (a proxy's 407), InvenTree
  unreachable or refusing the token, the write fence: the run fails with the
  cursor on the part; nothing about the part is recorded.
* InvenTree refuses a write for one part (400, locked part, a currency it
  does not accept): an ``error`` entry, the cursor moves on; prices are
  never left with fewer breaks than before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from loguru import logger

from stocksyncd.clients.inventree import (
    LONG_LINK_API_VERSION,
    InvenTreeClient,
    Part,
    SupplierPart,
)
from stocksyncd.clients.mouser import (
    BATCH_MAX,
    MouserClient,
    MouserPart,
    sku_problem,
)
from stocksyncd.clients.mouser_quota import MouserQuota
from stocksyncd.clock import Clock
from stocksyncd.config import MouserInvenTreeConfig
from stocksyncd.errors import (
    ApiError,
    AuthError,
    NotFoundError,
    PayloadError,
    RetriableError,
    StockSyncError,
    WriteFenced,
)
from stocksyncd.integrations.base import (
    TIME_TO_WIRE,
    Change,
    MemoryWriteAhead,
    RunContext,
    RunResult,
    WriteAhead,
)
from stocksyncd.integrations.mouser_inventree.cursor import STATE_SCOPE, cursor_after, rotation
from stocksyncd.integrations.mouser_inventree.diff import (
    Break,
    BreakPlan,
    MouserFields,
    StoredBreak,
    SupplierFields,
    plan_fields,
    plan_price_breaks,
)
from stocksyncd.integrations.mouser_inventree.exclusion import (
    PartInfo,
    metadata_reason,
    status_reason,
)
from stocksyncd.integrations.mouser_inventree.gate import MouserGate, iso
from stocksyncd.integrations.mouser_inventree.hits import (
    check_creatable,
    hits_message,
    is_na,
    make_hit,
    mark_created,
    summarise_hits,
)
from stocksyncd.integrations.mouser_inventree.note import plan_note
from stocksyncd.integrations.mouser_inventree.outcomes import (
    Halt,
    PartProblem,
    PartRetry,
    RunFailure,
    Stop,
    inventree_failure,
    part_failure,
)
from stocksyncd.integrations.mouser_inventree.review import ReviewBook
from stocksyncd.integrations.mouser_inventree.writes import SwapFailed, Writer
from stocksyncd.state.api import StateStore

CURSOR_SCOPE = STATE_SCOPE
MAX_PART_ATTEMPTS = 3  # runs in a row one part may fail before it is recorded and skipped
MAX_SKIPS_PER_RUN = 200  # excluded parts walked past in one run (bounds InvenTree traffic)
# How long the list of candidate pks is reused. Listing 10,000 parts is 100 pages;
# at a run every 90 s that would be 96,000 requests a day. Between listings each
# part is read fresh (one request) before it is synced, so no stale flag counts.
CANDIDATES_TTL = 900.0
T = TypeVar("T")

_UNKNOWN: Any = object()  # accepted currencies not asked yet


@dataclass
class _Pass:
    """What syncing parts needs besides the clients: quota, calls, review book, result, writes."""

    quota: MouserQuota
    book: ReviewBook
    result: RunResult
    dry_run: bool
    writer: Writer
    gate: MouserGate
    currencies: Any = _UNKNOWN  # frozenset[str] | None once asked


@dataclass
class _Outcome:
    """What syncing one part did."""

    matched: bool = False
    changed: bool = False
    written: bool = False
    state: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class _Item:
    """One part of a look-up batch: its searchable supplier parts, and the others."""

    part: Part
    sps: list[SupplierPart]
    unsearchable: list[tuple[SupplierPart, str]] = field(default_factory=list)

    @property
    def needs_search(self) -> bool:
        """No Mouser supplier part at all: the part is searched by name."""
        return not self.sps and not self.unsearchable


def _quota_key(api_key: str) -> str:
    """The daily quota belongs to the API key; the key itself never goes into the store."""
    return "mouser:" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


def _to_part_info(part: Part) -> PartInfo:
    return PartInfo(part.pk, part.name, part.active, part.purchaseable, part.category)


def currency_message(sku: str, codes: Iterable[str]) -> str:
    """The error entry for prices in a currency the InvenTree server refuses."""
    listed = ", ".join(sorted(codes))
    return (f"Mouser prices SKU {sku} in {listed}, which this InvenTree server does not "
            f"accept: add {listed} to the currency codes setting (CURRENCY_CODES, under "
            f"Settings > Pricing) and the prices follow with the next sync; the prices in "
            f"InvenTree are left as they are")


class MouserInvenTreeJob:
    """Keeps InvenTree's Mouser supplier parts in step with Mouser (``mouser-inventree``)."""

    type = "mouser-inventree"

    def __init__(
        self, name: str, cfg: MouserInvenTreeConfig, *, inventree: InvenTreeClient,
        mouser: MouserClient, clock: Clock, state: StateStore | None = None,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.inventree = inventree
        self.mouser = mouser
        self.clock = clock
        self.state = state  # set by every run; review actions need it between runs
        self.quota_key = _quota_key(cfg.mouser_api_key.get_secret_value())
        self._supplier_checked = False
        self._pks: list[int] = []
        self._pks_at: float | None = None

    async def close(self) -> None:
        """Nothing of our own to release: the runtime owns the sessions."""

    def _quota(self, state: StateStore) -> MouserQuota:
        return MouserQuota(state, self.quota_key, self.cfg.calls_per_minute,
                           self.cfg.calls_per_day, self.clock)

    async def quota_left(self) -> int | None:
        """Mouser calls left today by the ledger (None before the job has a state store)."""
        return None if self.state is None else await self._quota(self.state).left_today()

    def _pass(self, state: StateStore, book: ReviewBook, result: RunResult, dry_run: bool,
              audit: WriteAhead) -> _Pass:
        # An InvenTree write goes out right after it is recorded (no limiter to wait for).
        writer = Writer(self.inventree, audit, TIME_TO_WIRE, dry_run, result.changes)
        quota = self._quota(state)
        return _Pass(quota, book, result, dry_run, writer, MouserGate(self.name, quota, self.clock))

    # -- the run -------------------------------------------------------------------
    async def run(self, ctx: RunContext) -> RunResult:
        """Sync the next parts after the cursor: ``parts_per_run`` at most, ``calls_per_run``."""
        self.state = ctx.state
        result = RunResult(integration=self.name, dry_run=ctx.dry_run)
        book = ReviewBook(ctx.state, self.name, ctx.run_id, ctx.dry_run)
        run = self._pass(ctx.state, book, result, ctx.dry_run, ctx.audit)
        try:
            await self._run(ctx, run)
        except RunFailure as exc:
            result.status = "failed"
            result.message = str(exc)
            result.errors.append(str(exc))
        except WriteFenced as exc:
            result.status = "failed"
            result.message = f"writes to InvenTree stopped: {exc}"
            result.errors.append(result.message)
        finally:
            result.details["mouser_quota_left"] = await run.quota.left_today()
            if ctx.dry_run:
                result.details["review"] = book.collected
        return result

    async def _run(self, ctx: RunContext, run: _Pass) -> None:
        result, quota = run.result, run.quota
        if await quota.left_today() <= 0:
            # Known to be used up: do not walk InvenTree just to find that out again.
            result.status = "aborted"
            result.message = (f"Mouser call quota used up; the next part is synced after "
                              f"the reset at {iso(quota.day_resets_at())}")
            result.details["quota_resets_at"] = quota.day_resets_at()
            return
        self.inventree.clear_cache()
        await self._inventree(self._check_supplier())
        parts: dict[int, Part] = {}
        now = self.clock.monotonic()
        if self._pks_at is None or now - self._pks_at >= CANDIDATES_TTL or not self._pks:
            parts = await self._inventree(self._candidates())
            self._pks, self._pks_at = sorted(parts), now
        pks = self._pks
        stored = await ctx.state.get_value(CURSOR_SCOPE, self.name)
        cursor = stored if isinstance(stored, int) and not isinstance(stored, bool) else None
        result.details["cursor"] = cursor
        if not pks:
            result.message = "no active, purchasable parts in InvenTree"
            return
        order = rotation(pks, cursor)
        i = synced = calls = 0
        items: dict[int, _Item] = {}
        while (i < len(order) and synced < self.cfg.parts_per_run
               and calls < self.cfg.calls_per_run and result.counts.skipped < MAX_SKIPS_PER_RUN):
            try:
                batch, after = await self._collect(ctx, run, parts, order=order, i=i,
                                                   room=self.cfg.parts_per_run - synced,
                                                   items=items)
            except Halt as halt:
                await self._set_cursor(ctx, result, halt.pk)
                return
            if not batch:
                i = after
                continue
            stop_at = await self._sync_batch(ctx, run, batch)
            calls += 1 if batch[0].needs_search else -(-sum(len(b.sps) for b in batch)
                                                        // BATCH_MAX)
            if stop_at is not None:
                await self._set_cursor(ctx, result, stop_at)
                return
            synced += len(batch)
            i = after
            # Saved after every batch: a later failure does not redo this one.
            nxt = order[i] if i < len(order) else cursor_after(pks, order[-1])
            await self._set_cursor(ctx, result, nxt)
        nxt = order[i] if i < len(order) else cursor_after(pks, order[-1])
        await self._set_cursor(ctx, result, nxt)
        if not result.message:
            result.message = (f"{synced} part(s) synced with {calls} Mouser call(s), "
                              f"{result.counts.skipped} skipped; next part {nxt}")

    async def _set_cursor(self, ctx: RunContext, result: RunResult, pk: int | None) -> None:
        if not ctx.dry_run:
            await ctx.state.set_value(CURSOR_SCOPE, self.name, pk)
        result.details["cursor"] = pk

    async def _collect(self, ctx: RunContext, run: _Pass, parts: dict[int, Part], *,
                       order: list[int], i: int, room: int,
                       items: dict[int, _Item]) -> tuple[list[_Item], int]:
        """The parts one Mouser call serves from ``order[i]``: up to ten known SKUs, or one
        part searched by name. Excluded parts on the way are skipped. Returns the batch and
        the index of the first part not walked."""
        batch: list[_Item] = []
        skus = 0
        result = run.result
        while i < len(order) and len(batch) < room and result.counts.skipped < MAX_SKIPS_PER_RUN:
            part = parts.get(order[i]) or await self._fresh_part(order[i])
            if part is None:
                result.counts.source += 1
                result.counts.skip("gone")  # deleted since the candidates were listed
                i += 1
                continue
            parts[part.pk] = part
            item = items.get(part.pk)
            if item is None:
                try:
                    reason = await self._checked_exclusion(part, result, run.book)
                    item = None if reason else await self._item(part)
                except NotFoundError:
                    reason = "gone"
                except PartProblem as exc:
                    result.counts.source += 1
                    await self._part_error(ctx, run, part, str(exc))
                    i += 1
                    continue
                except PartRetry as exc:
                    if batch:
                        break  # the batch so far goes first; this part leads the next one
                    result.counts.source += 1
                    stop = await self._stopped(ctx, run, part, exc)
                    if stop is not None:
                        raise Halt(stop) from exc
                    i += 1
                    continue
                result.counts.source += 1
                if reason is not None:
                    result.counts.skip(reason)
                    i += 1
                    continue
                assert item is not None
                items[part.pk] = item
            if item.needs_search:
                if not batch:
                    batch.append(item)
                    i += 1
                break  # a name search is a call of its own
            if batch and skus + len(item.sps) > BATCH_MAX:
                break
            batch.append(item)
            skus += len(item.sps)
            i += 1
            if skus >= BATCH_MAX:
                break
        return batch, i

    async def _fresh_part(self, pk: int) -> Part | None:
        """The part as InvenTree has it now; None when it is gone."""
        try:
            return await self.inventree.get_part(pk)
        except NotFoundError:
            return None
        except (ApiError, PayloadError) as exc:
            raise RunFailure(f"InvenTree: {exc}") from exc

    async def _item(self, part: Part) -> _Item:
        try:
            sps = await self.inventree.supplier_parts(part=part.pk,
                                                      supplier=self.cfg.mouser_supplier)
        except NotFoundError:
            raise
        except (ApiError, PayloadError) as exc:
            raise part_failure(exc) from exc
        item = _Item(part, [])
        for sp in sps:
            if is_na(sp.sku):
                continue
            problem = sku_problem(sp.sku.strip())
            if problem:
                item.unsearchable.append((sp, f"SKU {sp.sku!r} {problem}"))
            else:
                item.sps.append(sp)
        return item

    async def _sync_batch(self, ctx: RunContext, run: _Pass, batch: list[_Item]) -> int | None:
        """Sync the batch; the pk to leave the cursor on when the run must stop, else None."""
        first = batch[0]
        found: dict[str, MouserPart | PayloadError | None] = {}
        try:
            if first.needs_search:
                outcome = await self._search(first.part, run)
                await self._done(ctx, run, first.part, outcome)
                return None
            skus = list(dict.fromkeys(sp.sku.strip() for b in batch for sp in b.sps))
            for n in range(0, len(skus), BATCH_MAX):
                chunk = skus[n:n + BATCH_MAX]
                try:
                    answer = await run.gate.call(
                        lambda chunk=chunk: self.mouser.lookup_many(chunk))  # type: ignore[misc]
                except PartProblem as exc:
                    answer = {sku: PayloadError(str(exc)) for sku in chunk}
                found.update({k.casefold(): v for k, v in answer.items()})
        except (PartRetry, Stop) as exc:
            return await self._stopped(ctx, run, first.part, exc)
        for item in batch:
            try:
                outcome = await self._sync_item(item, found, run)
            except (PartRetry, Stop) as exc:
                return await self._stopped(ctx, run, item.part, exc)
            except (RunFailure, WriteFenced):
                await self._set_cursor(ctx, run.result, item.part.pk)  # the ones before are done
                raise
            except PartProblem as exc:
                await self._part_error(ctx, run, item.part, str(exc))
                continue
            except NotFoundError:
                run.result.counts.skip("gone")  # deleted in InvenTree while we looked
                continue
            await self._done(ctx, run, item.part, outcome)
        return None

    async def _done(self, ctx: RunContext, run: _Pass, part: Part, outcome: _Outcome) -> None:
        await self._forget_attempts(ctx)
        run.result.counts.matched += outcome.matched
        run.result.counts.changed += outcome.changed
        run.result.counts.written += outcome.written
        await run.book.set_state(part.pk, part.name, outcome.state)

    async def _part_error(self, ctx: RunContext, run: _Pass, part: Part, message: str) -> None:
        run.result.errors.append(f"part {part.pk} {part.name!r}: {message}")
        await run.book.set_state(part.pk, part.name, [("error", message, {})])
        await self._forget_attempts(ctx)

    async def _stopped(self, ctx: RunContext, run: _Pass, part: Part,
                       exc: PartRetry | Stop) -> int | None:
        """Where the run goes after a failure on ``part``: stop on it, or move past it."""
        result = run.result
        if isinstance(exc, Stop):
            result.status = "aborted"
            result.message = f"{exc}; part {part.pk} is synced first after that"
            result.details["quota_resets_at"] = exc.resets_at
            return part.pk
        key = f"{self.name}:attempts"
        seen = await ctx.state.get_value(CURSOR_SCOPE, key)
        attempts = 1
        if isinstance(seen, dict) and seen.get("pk") == part.pk:
            attempts = int(seen.get("n", 0)) + 1
        if attempts >= MAX_PART_ATTEMPTS:
            # The same failure on the same part again: record it and move on, so
            # one part can never stall the job.
            await self._part_error(ctx, run, part, f"failed {attempts} times in a row: {exc}")
            return None
        if not ctx.dry_run:
            await ctx.state.set_value(CURSOR_SCOPE, key, {"pk": part.pk, "n": attempts})
        result.status = "failed"
        result.message = f"{exc}; part {part.pk} is retried next run"
        result.errors.append(result.message)
        return part.pk

    async def _forget_attempts(self, ctx: RunContext) -> None:
        if not ctx.dry_run and await ctx.state.get_value(CURSOR_SCOPE,
                                                         f"{self.name}:attempts") is not None:
            await ctx.state.delete_value(CURSOR_SCOPE, f"{self.name}:attempts")

    # -- InvenTree reads -------------------------------------------------------------
    async def _inventree(self, call: Awaitable[T]) -> T:
        """Run an InvenTree call whose failure ends the run (cursor unchanged)."""
        try:
            return await call
        except (ApiError, PayloadError) as exc:
            raise RunFailure(f"InvenTree: {exc}") from exc

    async def _check_supplier(self) -> None:
        """The configured supplier must be a supplier company (checked once per object)."""
        if self._supplier_checked:
            return
        pk = self.cfg.mouser_supplier
        try:
            company = await self.inventree.get_company(pk)
        except NotFoundError:
            raise RunFailure(f"mouser_supplier {pk} does not exist in InvenTree") from None
        if not company.is_supplier:
            raise RunFailure(f"mouser_supplier {pk} is not a supplier company in InvenTree "
                             f"({company.name!r})")
        self._supplier_checked = True

    async def _candidates(self) -> dict[int, Part]:
        return {p.pk: p async for p in self.inventree.iter_parts(active=True, purchaseable=True)}

    async def _checked_exclusion(self, part: Part, result: RunResult,
                                 book: ReviewBook) -> str | None:
        """The exclusion reason; a part whose data InvenTree cannot give is skipped as "error"."""
        try:
            return await self._exclusion(part)
        except AuthError as exc:
            raise RunFailure(f"InvenTree: {exc}") from exc
        except RetriableError as exc:
            raise inventree_failure(exc) from exc
        except NotFoundError:
            return "gone"  # deleted while we looked
        except (ApiError, PayloadError) as exc:
            message = f"InvenTree could not tell whether the part is excluded: {exc}"
            result.errors.append(f"part {part.pk} {part.name!r}: {message}")
            await book.set_state(part.pk, part.name, [("error", message, {})])
            return "error"

    async def _exclusion(self, part: Part) -> str | None:
        info = _to_part_info(part)
        reason = status_reason(info)
        if reason is not None:
            return reason
        chain = []
        if part.category is not None:
            categories = await self.inventree.category_and_ancestors(part.category)
            chain = [await self.inventree.category_metadata(c.pk) for c in categories]
        return metadata_reason(await self.inventree.part_metadata(part.pk), chain)

    async def _accepted_currencies(self, run: _Pass) -> frozenset[str] | None:
        """The server's currency codes, asked once per run (None: it does not say)."""
        if run.currencies is _UNKNOWN:
            try:
                run.currencies = await self.inventree.accepted_currencies()
            except (AuthError, RetriableError) as exc:
                raise RunFailure(f"InvenTree: {exc}") from exc
            except (ApiError, PayloadError) as exc:
                # Creating before deleting still keeps the old prices if it refuses.
                logger.warning("{}: InvenTree does not list its currencies: {}", self.name, exc)
                run.currencies = None
        codes: frozenset[str] | None = run.currencies
        return codes

    # -- one part -------------------------------------------------------------------
    async def _sync_item(self, item: _Item, found: dict[str, MouserPart | PayloadError | None],
                         run: _Pass) -> _Outcome:
        part = item.part
        outcome = _Outcome()
        run.result.counts.target += len(item.sps) + len(item.unsearchable)
        for sp, problem in item.unsearchable:
            outcome.state.append(("error", f"{problem}; it cannot be looked up on Mouser",
                                  {"sku": sp.sku, "supplier_part": sp.pk}))
        for sp in item.sps:
            mp = found.get(sp.sku.strip().casefold())
            if isinstance(mp, PayloadError):
                run.result.errors.append(f"part {part.pk} {part.name!r}: {mp}")
                outcome.state.append(("error", str(mp), {"sku": sp.sku, "supplier_part": sp.pk}))
                continue
            await self._sync_supplier_part(part.pk, part.name, sp, mp, run=run, outcome=outcome)
        return outcome

    async def _search(self, part: Part, run: _Pass) -> _Outcome:
        """No Mouser supplier part: search by name and keep the hits for review."""
        name = part.name.strip()
        if len(name) < 3 or len(name) > 40 or not name.isascii():
            raise PartProblem(
                f"part name {name!r} cannot be searched on Mouser (3-40 ASCII characters)"
            )
        found = await run.gate.call(lambda: self.mouser.search_name(name))
        hits = [
            make_hit(mouser_pn=p.mouser_part_number, manufacturer=p.manufacturer,
                     mpn=p.manufacturer_part_number, description=p.description,
                     availability=p.availability, link=p.product_detail_url, na=p.is_na)
            for p in found.parts
        ]
        summary = summarise_hits(name, hits, found.number_of_results, self.cfg.search_link)
        if found.rejected:
            summary["rejected"] = found.rejected[:10]
        return _Outcome(matched=bool(hits), state=[("hits", hits_message(summary), summary)])

    async def _sync_supplier_part(
        self, part_pk: int, part_name: str, sp: SupplierPart, mp: MouserPart | None, *,
        run: _Pass, outcome: _Outcome,
    ) -> None:
        """Bring note, price breaks and fields of one supplier part in step with ``mp``."""
        if mp is None:
            outcome.state.append(("unknown_sku", f"Mouser no longer knows SKU {sp.sku}",
                                  {"sku": sp.sku, "supplier_part": sp.pk}))
            return
        outcome.matched = True
        try:
            await self._apply(part_pk, part_name, sp, mp, run=run, outcome=outcome)
        except NotFoundError as exc:
            raise PartProblem(f"InvenTree: {exc}") from exc
        except (ApiError, PayloadError) as exc:
            raise part_failure(exc, f"InvenTree refused an update of SKU {sp.sku}") from exc

    async def _plan_breaks(self, sp: SupplierPart, mp: MouserPart,
                           run: _Pass) -> tuple[BreakPlan | None, str | None]:
        """The price-break plan, or None and why the prices are left alone."""
        if mp.price_error:
            return None, (f"Mouser sent an unusable price list for SKU {sp.sku} "
                          f"({mp.price_error}); the prices in InvenTree are left as they are")
        current = [StoredBreak(b.pk, b.quantity, b.price, b.price_currency)
                   for b in await self.inventree.price_breaks(sp.pk)]
        plan = plan_price_breaks(
            current, [Break(Decimal(b.quantity), b.price, b.currency) for b in mp.price_breaks]
        )
        if plan is None:
            return None, None
        accepted = await self._accepted_currencies(run)
        if accepted is not None and not plan.currencies <= accepted:
            return None, currency_message(sp.sku, plan.currencies - accepted)
        return plan, None

    async def _apply(
        self, part_pk: int, part_name: str, sp: SupplierPart, mp: MouserPart, *, run: _Pass,
        outcome: _Outcome,
    ) -> None:
        key = f"{part_name}/{sp.sku}"
        ref = str(sp.pk)
        book, result, writer = run.book, run.result, run.writer
        note = plan_note(sp.note, mp.lifecycle_status, note_format=self.cfg.note_format)
        link_max = 2000 if await self.inventree.api_version() >= LONG_LINK_API_VERSION else 200
        fields = plan_fields(
            SupplierFields(sp.available, sp.packaging, sp.link),
            MouserFields(mp.in_stock, mp.packaging or None, mp.product_detail_url or None),
            link_max=link_max,
        )
        breaks, price_problem = await self._plan_breaks(sp, mp, run)
        if note.changed or fields or breaks:
            outcome.changed = True
        patch: dict[str, Any] = {f.api_field: f.value for f in fields}
        changes = [Change(ref, key, f.field, f.old, f.new) for f in fields]
        if note.changed:
            patch["note"] = note.note or ""
            changes.insert(0, Change(ref, key, "note", note.old_note, note.note))
        if patch:
            await writer.write(changes, lambda: self.inventree.update_supplier_part(sp.pk, patch))
            outcome.written = not run.dry_run
        if breaks is not None:
            try:
                await writer.swap_breaks(sp.pk, key, breaks)
                outcome.written = not run.dry_run
            except SwapFailed as exc:
                price_problem = f"SKU {sp.sku}: {exc}"
                breaks = None
        if price_problem:
            result.errors.append(f"part {part_pk} {part_name!r}: {price_problem}")
            outcome.state.append(("error", price_problem, {"sku": sp.sku, "supplier_part": sp.pk}))
        if note.changed:
            await book.event(
                part_pk, part_name, "lifecycle",
                f"lifecycle {note.old_status or '(none)'} -> {note.new_status or '(none)'}",
                {"sku": sp.sku, "supplier_part": sp.pk, "old": note.old_status,
                 "new": note.new_status},
            )
        changed: dict[str, dict[str, str | None]] = {
            f.field: {"old": f.old, "new": f.new} for f in fields}
        if breaks is not None:
            changed["price_breaks"] = {"old": breaks.old or None, "new": breaks.new}
        # Stock moves all the time; only changes worth a look make a review entry.
        if set(changed) - {"availability"}:
            await book.event(part_pk, part_name, "updated",
                             f"updated {', '.join(changed)} of SKU {sp.sku}",
                             {"sku": sp.sku, "supplier_part": sp.pk, "fields": changed})

    # -- review action -----------------------------------------------------------------
    async def create_supplier_part(self, entry_id: int, hit: int) -> str:
        """Create the Mouser supplier part from hit ``hit`` of a ``hits`` entry."""
        state = self.state
        if state is None:
            raise StockSyncError("the job has not run yet, so its results are not available")
        entry = await state.get_review(entry_id)
        if entry is None or entry.integration != self.name:
            raise StockSyncError(f"review entry {entry_id} does not exist")
        try:
            chosen = check_creatable(entry.kind, entry.data, hit)
        except ValueError as exc:
            raise StockSyncError(f"cannot create a supplier part: {exc}") from None
        sku = str(chosen.get("mouser_pn", "")).strip()
        try:
            sp = await self._create(entry.part_pk, sku, chosen)
        except RunFailure as exc:
            raise StockSyncError(str(exc)) from None
        except (ApiError, PayloadError) as exc:
            raise StockSyncError(f"InvenTree refused the supplier part: {exc}") from None
        await state.update_review(
            entry_id, data=mark_created(entry.data, hit, sp.pk, sku),
            message=f"{entry.message}; created supplier part {sp.pk} (SKU {sku})",
        )
        text = f"created supplier part {sp.pk} (SKU {sku}) for {entry.part_name}"
        return text + await self._fill(state, entry.part_pk, entry.part_name, sp)

    async def ignore_part(self, part_pk: int) -> str:
        """Flag the part as excluded in its InvenTree metadata and drop its review entries.

        Writes the original plugin's flag (``supplier_sync.exclude = "True"``),
        keeping whatever else the part's metadata holds.
        """
        state = self.state
        if state is None:
            raise StockSyncError("the job has not run yet, so its results are not available")
        try:
            current = await self.inventree.part_metadata(part_pk)
            own = current.get("supplier_sync")
            flag = {**(own if isinstance(own, dict) else {}), "exclude": "True"}
            await self.inventree.set_metadata("part", part_pk, {"supplier_sync": flag})
        except NotFoundError:
            raise StockSyncError(f"part {part_pk} no longer exists in InvenTree") from None
        except (ApiError, PayloadError) as exc:
            raise StockSyncError(f"InvenTree refused the exclusion flag: {exc}") from None
        logger.info("{}: part {} metadata supplier_sync.exclude set to True (review page)",
                    self.name, part_pk)
        gone = await ReviewBook(state, self.name).forget_part(part_pk)
        return (f"part {part_pk} is ignored from now on (metadata supplier_sync.exclude); "
                f"{gone} entr{'y' if gone == 1 else 'ies'} removed")

    async def _create(self, part_pk: int, sku: str, chosen: dict[str, Any]) -> SupplierPart:
        await self._inventree(self._check_supplier())
        existing = await self.inventree.supplier_parts(supplier=self.cfg.mouser_supplier,
                                                       sku=sku)
        if existing:
            sp = existing[0]
            raise StockSyncError(
                f"SKU {sku} already exists as supplier part {sp.pk} of part {sp.part}"
            )
        mpn = str(chosen.get("mpn") or "").casefold()
        makers = await self.inventree.manufacturer_parts(part=part_pk)
        linked = next((m for m in makers if m.mpn.casefold() == mpn), None)
        return await self.inventree.create_supplier_part(
            part=part_pk, supplier=self.cfg.mouser_supplier, sku=sku,
            manufacturer_part=linked.pk if linked else None,
            link=str(chosen.get("link") or "") or None,
            description=str(chosen.get("description") or "") or None,
        )

    async def _fill(self, state: StateStore, part_pk: int, part_name: str,
                    sp: SupplierPart) -> str:
        """Bring the new supplier part in step at once; it is fine if that must wait."""
        result = RunResult(integration=self.name)
        book = ReviewBook(state, self.name)
        audit = MemoryWriteAhead()
        run = self._pass(state, book, result, False, audit)
        try:
            found = await run.gate.call(lambda: self.mouser.lookup_many([sp.sku.strip()]))
            mp = found[sp.sku.strip()]
            if isinstance(mp, PayloadError):
                raise PartProblem(str(mp))
            await self._sync_supplier_part(part_pk, part_name, sp, mp, run=run,
                                           outcome=_Outcome())
        except (Stop, PartRetry, PartProblem, RunFailure, WriteFenced, ValueError) as exc:
            return f"; prices and lifecycle follow with the next sync ({exc})"
        finally:
            for c in audit.changes:  # not part of a run, so the log is the audit trail
                logger.info("{}: supplier part {} {}: {} -> {} ({})", self.name, c.ref, c.field,
                            c.old, c.new, c.status)
        if result.errors:
            return f"; prices and lifecycle follow with the next sync ({result.errors[0]})"
        return "; prices and lifecycle filled in from Mouser"
