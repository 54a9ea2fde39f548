"""The stock sync both InSales integrations run: fetch source and target, match, plan, apply.

A run sees complete data from both sides or writes nothing (SPEC §2.1);
upstream failures become a ``failed`` result rather than an exception, so
the daemon goes on with its other jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from stocksyncd.clients.insales import InSalesClient, Product, basic_auth, warehouse_field
from stocksyncd.config import ShopConfig, StockSyncOptions
from stocksyncd.errors import StockSyncError
from stocksyncd.http.ratelimit import RateLimiter, WindowLimiter
from stocksyncd.http.transport import Transport, on_the_wire
from stocksyncd.integrations.base import Change, Integration, Resources, RunContext, RunResult
from stocksyncd.integrations.stock.apply import apply_writes
from stocksyncd.integrations.stock.index import (
    DEFAULT_OVERLAP,
    INDEX_SCOPE,
    JOURNAL_SUFFIX,
    PRODUCT_WEIGHT,
    IndexJournal,
    InSalesIndex,
    RefreshReport,
    ScanFailed,
    needs_full,
    refresh_index,
    removed_during,
    rescan,
)
from stocksyncd.integrations.stock.keys import normalize_key, show_quantity
from stocksyncd.integrations.stock.model import StockSource
from stocksyncd.integrations.stock.plan import (
    Plan,
    PlannedWrite,
    SourceReducer,
    SourceStock,
    TargetVariant,
    plan_reduced,
)
from stocksyncd.integrations.stock.report import partial_message, skip_rows
from stocksyncd.integrations.stock.slices import CPU_SLICE, in_slices

# Which InSales field carries the key when the config does not say.
DEFAULT_TARGET_KEY = {"moysklad-insales": "sku", "kak2c-insales": "barcode"}
MAX_REPORTED_PROBLEMS = 50
JOURNAL_MIN = 2_000  # journal weight always allowed before the whole index is stored again


class TargetRows:
    """The planner's view of the shop: normalised key and current figure per variant.

    Made product by product, and kept: a full scan hands each page here as it
    arrives, so the rows are made while the later pages are in flight, not
    after the last one. A product replaced since (read again) is done again.
    """

    def __init__(self, key_field: str, warehouse: int | None) -> None:
        self.by_sku = key_field == "sku"
        self.warehouse = warehouse
        self._made: dict[int, tuple[Product, list[TargetVariant]]] = {}

    def add(self, products: Iterable[Product]) -> None:
        """Make the rows of ``products`` now."""
        made, rows = self._made, self._rows
        for product in products:
            made[product.id] = (product, rows(product))

    def of(self, index: InSalesIndex) -> list[TargetVariant]:
        """Every variant of ``index``, as the planner takes it."""
        out: list[TargetVariant] = []
        made, rows = self._made, self._rows
        for pid, product in index.products.items():
            hit = made.get(pid)
            out += hit[1] if hit is not None and hit[0] is product else rows(product)
        return out

    def _rows(self, product: Product) -> list[TargetVariant]:
        by_sku, warehouse = self.by_sku, self.warehouse
        out = []
        for v in product.variants:
            raw = v.sku if by_sku else v.barcode
            # Keys parsed from InSales are already stripped text: skip the general path.
            key = raw if type(raw) is str and raw and raw == raw.strip() else normalize_key(raw)
            current = v.quantity if warehouse is None else v.warehouses.get(warehouse)
            out.append(TargetVariant(v.id, key, current, product.id))
        return out


def target_variants(
    index: InSalesIndex, key_field: str, warehouse: int | None
) -> list[TargetVariant]:
    """The planner's view of the shop: normalised key and current figure per variant."""
    return TargetRows(key_field, warehouse).of(index)


def _change(w: PlannedWrite, field_name: str, applied: bool) -> Change:
    return Change(ref=str(w.variant_id), key=w.key, field=field_name,
                  old=show_quantity(w.old), new=str(w.new), applied=applied)


class StockSyncIntegration:
    """One configured stock job: a source, one InSales shop, and the rules of SPEC §2."""

    def __init__(
        self,
        *,
        name: str,
        type_: str,
        cfg: StockSyncOptions,
        shop_name: str,
        client: InSalesClient,
        source: StockSource,
        key_field: str,
        overlap: float = DEFAULT_OVERLAP,
    ) -> None:
        self.name = name
        self.type = type_
        self.cfg = cfg
        self.shop_name = shop_name
        # One index per integration, not per shop: two integrations writing to one
        # shop at the same time would otherwise overwrite each other's copy (lost
        # update). Each still sees the other's writes, as changes in InSales.
        self.index_key = f"{shop_name}/{name}"
        self.journal_key = self.index_key + JOURNAL_SUFFIX
        self.client = client
        self.source = source
        self.key_field = key_field
        self.field_name = warehouse_field(cfg.warehouse)
        self.overlap = overlap
        self.shop_url = str(client.transport.base_url) if hasattr(client, "transport") else ""

    async def close(self) -> None:
        """Nothing to release: sessions and limiters belong to the runtime."""

    async def run(self, ctx: RunContext) -> RunResult:
        """One run; see the module docstring."""
        started = ctx.clock.monotonic()
        result = RunResult(integration=self.name, run_id=ctx.run_id,
                           dry_run=ctx.dry_run or self.cfg.dry_run, started_at=ctx.clock.now())
        insales_before = self.client.requests_made
        source_before = self.source.requests_made()
        try:
            await self._run(ctx, result)
        finally:
            result.requests = {
                "insales": self.client.requests_made - insales_before,
                self.source.api: self.source.requests_made() - source_before,
            }
            result.duration_s = ctx.clock.monotonic() - started
        return result

    async def _fetch(
        self, ctx: RunContext
    ) -> tuple[SourceStock, InSalesIndex, RefreshReport, TargetRows]:
        """Both sides at once; the first failure cancels the other.

        Each side does its own CPU work (reducing the source, loading the stored
        index) while the other side's requests are in flight.
        """
        rows = TargetRows(self.key_field, self.cfg.warehouse)
        async with asyncio.TaskGroup() as tg:
            # InSales first: its reads are the longer chain (more pages, fewer at a time).
            refreshed = tg.create_task(self._read_target(ctx, rows))
            source = tg.create_task(self._read_source(ctx))
        index, report = refreshed.result()
        return source.result(), index, report, rows

    async def _read_source(self, ctx: RunContext) -> SourceStock:
        items = await self.source.fetch(ctx)
        # A part at a time: tens of milliseconds of CPU at 10k items, and the
        # InSales answers that arrive meanwhile (the longer chain) should not
        # wait for all of it.
        reducer = SourceReducer(self.cfg.negative)
        async for part in in_slices(items):
            reducer.add(part)
        return reducer.result()

    async def _read_target(self, ctx: RunContext,
                           rows: TargetRows) -> tuple[InSalesIndex, RefreshReport]:
        now = ctx.clock.time()
        data = await ctx.state.get_value(INDEX_SCOPE, self.index_key)
        stored = InSalesIndex.header(data)
        if needs_full(stored, now, self.cfg.full_refresh, self.field_name) is None:
            # An incremental scan builds on the stored products: load them and the journal.
            journal = await ctx.state.get_value(INDEX_SCOPE, self.journal_key)
            stored = InSalesIndex.load(data, journal)
        return await refresh_index(
            self.client, stored, now=now, full_every=self.cfg.full_refresh,
            overlap=self.overlap, concurrency=self.cfg.write_concurrency, field=self.field_name,
            on_read=rows.add,
        )

    async def _run(self, ctx: RunContext, result: RunResult) -> None:
        try:
            source, index, report, rows = await self._fetch(ctx)
        except* StockSyncError as group:
            result.status = "failed"
            for exc in group.exceptions:
                if isinstance(exc, ScanFailed):
                    result.errors.append(str(exc))
                else:
                    result.errors.append(f"{self.source.api}: fetching the source failed: {exc}")
            result.message = "a page failed after retries; nothing written"
        if result.status == "failed":
            return
        why = await self._sync(ctx, result, source, index, report, rows=rows)
        if why is not None:
            await self._sync_again(ctx, result, source, why)

    async def _sync(self, ctx: RunContext, result: RunResult, source: SourceStock,
                    index: InSalesIndex, report: RefreshReport, *,
                    rows: TargetRows) -> str | None:
        """Plan and apply against ``index``, then store it.

        Returns why the page scan behind ``index`` may have missed products
        (then the index was not stored), or None.
        """
        check: asyncio.Future[str | None] | None = None
        if report.unchecked is not None:
            # The check for deletions goes out now and is answered while the
            # run plans and writes; only storing the index waits for it.
            check = asyncio.ensure_future(
                removed_during(self.client, report.unchecked, self.overlap))
            await on_the_wire()
        try:
            return await self._plan_and_apply(ctx, result, source, index, report, rows=rows,
                                              check=check)
        finally:
            if check is not None:
                await _cancelled(check)

    async def _plan_and_apply(self, ctx: RunContext, result: RunResult, source: SourceStock,
                              index: InSalesIndex, report: RefreshReport, *, rows: TargetRows,
                              check: asyncio.Future[str | None] | None) -> str | None:
        ctx.log.info("{name}: insales index {mode} ({pages} pages, {n} products read)",
                     name=self.name, mode=report.mode, pages=report.pages, n=report.products_read)
        plan = plan_reduced(source, rows.of(index), zero_guard=self.cfg.zero_guard)
        self._report_plan(result, plan, report)
        result.details["skips"] = skip_rows(plan.skips, self.shop_url, _titles(index))
        # The whole index is stored after a full scan, or when the journal has grown
        # to a good part of it; otherwise this run only adds an entry to the journal.
        rewrite = report.mode == "full" or index.snapshot is None or (
            index.journal_weight() + 1 + PRODUCT_WEIGHT * len(report.read) + len(plan.writes)
            > max(JOURNAL_MIN, PRODUCT_WEIGHT * len(index.products) // 4))
        read = [] if rewrite else list(report.read.values())
        if plan.abort is not None:
            result.status = "aborted"
            result.message = plan.abort
            result.errors.append(plan.abort)
            result.changes = [_change(w, self.field_name, False) for w in plan.writes]
            ctx.log.warning("{name}: {msg}", name=self.name, msg=plan.abort)
        elif result.dry_run:
            result.changes = [_change(w, self.field_name, False) for w in plan.writes]
            result.message = f"dry run: {len(plan.writes)} changes planned, nothing written"
        elif plan.writes:
            return await self._apply(ctx, result, plan, index, rewrite=rewrite, read=read,
                                     check=check)
        else:
            result.message = "nothing to change"
        if rewrite:
            why, failure = await self._save_checked(ctx, index, check)
            if why is not None:
                return why
        else:
            failure = await self._save_journal(ctx, index, read, [])
        _state_failure(result, failure)
        return None

    async def _sync_again(self, ctx: RunContext, result: RunResult, source: SourceStock,
                          why: str) -> None:
        """The page scan may have missed products: walk the cursor and sync what is left.

        What the first pass wrote is read back with its new figures, so the
        second plan holds only what the first one could not see.
        """
        ctx.log.warning("{name}: {why}; reading InSales again by cursor", name=self.name, why=why)
        applied = [c for c in result.changes if c.applied]
        written, batches = result.counts.written, result.details.get("batches", 0)
        failed = result.status == "failed"
        try:
            index, report = await rescan(self.client, now=ctx.clock.time(),
                                         field=self.field_name, reason=why)
        except ScanFailed as exc:
            result.status = "failed"
            result.errors.append(str(exc))
            result.message = (f"{result.message}; {why}, and reading InSales again failed: "
                              "the index was not saved")
            return
        result.status, result.changes = "ok", []
        await self._sync(ctx, result, source, index, report,
                         rows=TargetRows(self.key_field, self.cfg.warehouse))
        result.details["index_reread"] = why
        result.changes = applied + result.changes
        result.counts.written += written
        if batches:
            result.details["batches"] = batches + result.details.get("batches", 0)
        if failed and result.status == "ok":
            result.status = "failed"
        if written:
            result.message = (f"{written} changes written, then InSales was read again "
                              f"({why}): {result.message}")

    async def _save_journal(self, ctx: RunContext, index: InSalesIndex, read: list[Product],
                            writes: list[tuple[int, int]]) -> Exception | None:
        """Add this run to the journal of the stored copy; a failure is returned, not raised."""
        entries = [*index.journal, index.entry(read, writes, self.field_name)]
        journal = IndexJournal(snapshot=index.snapshot or "", entries=entries)
        failure = await _store(ctx, self.journal_key, journal.to_json())
        if failure is None:
            index.journal = entries
        return failure

    async def _save_index(self, ctx: RunContext, index: InSalesIndex) -> Exception | None:
        """Store the index; a failure is returned (the run records it) rather than raised."""
        # A new name for every copy: a journal written against an older copy
        # must never be applied to this one.
        index.snapshot = uuid.uuid4().hex
        # A part at a time: the save runs while write answers come in.
        products = await index.products_json(CPU_SLICE // 2)
        return await _store(ctx, self.index_key, index.to_json(products))

    async def _save_checked(self, ctx: RunContext, index: InSalesIndex,
                            check: asyncio.Future[str | None] | None,
                            ) -> tuple[str | None, Exception | None]:
        """Store the whole index once its scan proved complete.

        Returns why it was not (the check's verdict) and a save failure.
        """
        if check is not None and (why := await check) is not None:
            return why, None
        return None, await self._save_index(ctx, index)

    async def _save_while_writing(self, ctx: RunContext, index: InSalesIndex,
                                  check: asyncio.Future[str | None] | None,
                                  ) -> tuple[str | None, Exception | None]:
        # The batches go out first and the save fills the wait for their answers.
        await on_the_wire()
        return await self._save_checked(ctx, index, check)

    async def _apply(self, ctx: RunContext, result: RunResult, plan: Plan, index: InSalesIndex,
                     *, rewrite: bool, read: list[Product],
                     check: asyncio.Future[str | None] | None) -> str | None:
        """Write the plan; returns why the index was not stored (``_sync``)."""
        # With ``rewrite`` the index as read is saved while the batches are in
        # flight; either way what they change goes to the journal (IndexJournal).
        saving = (asyncio.ensure_future(self._save_while_writing(ctx, index, check))
                  if rewrite else None)
        try:
            outcome = await apply_writes(self.client, plan.writes, field_name=self.field_name,
                                         concurrency=self.cfg.write_concurrency)
        except BaseException:
            if saving is not None:
                await _cancelled(saving)
            raise
        # Before the index changes below: the saved copy is the index as read.
        why, failure = await saving if saving is not None else (None, None)
        written = {w.variant_id for w in outcome.written}
        result.changes = [_change(w, self.field_name, w.variant_id in written)
                          for w in plan.writes]
        result.counts.written = len(outcome.written)
        result.errors.extend(outcome.errors)
        result.details["batches"] = outcome.batches
        # The stored copy plus its journal is the index from now on: this copy is
        # not saved again, so the written figures go to the journal only.
        if outcome.written:
            # The next scans start after our writes (their figures are in the journal).
            index.mark_written(outcome.server_time)
        if outcome.failed:
            # A refused variant may have been deleted in InSales: rebuild the index next run.
            index.stale = True
            result.status = "failed"
            result.message = partial_message(len(outcome.written), plan.writes, outcome.failed)
        else:
            result.message = f"{len(outcome.written)} changes written"
        if why is not None:
            return why  # the caller reads InSales again and stores that index
        if failure is None:
            if rewrite:
                index.journal = []  # a new copy: the journal starts again
            failure = await self._save_journal(
                ctx, index, read, [(w.variant_id, w.new) for w in outcome.written])
        _state_failure(result, failure)
        return None

    def _report_plan(self, result: RunResult, plan: Plan, report: RefreshReport) -> None:
        result.counts = plan.counts
        result.conflicts = plan.conflicts
        details: dict[str, Any] = {
            "index_mode": report.mode,
            "index_pages": report.pages,
            "index_products_read": report.products_read,
            "field": self.field_name,
            "key": self.key_field,
            **plan.details,
        }
        if report.reason:
            details["index_full_reason"] = report.reason
        if report.problems:
            details["insales_problems_total"] = len(report.problems)
            details["insales_problems"] = report.problems[:MAX_REPORTED_PROBLEMS]
        result.details.update(details)


def _titles(index: InSalesIndex) -> Callable[[int], str]:
    """A product's title by id, for the skip list ("" when unknown)."""
    products = index.products

    def title(pid: int) -> str:
        found = products.get(pid)
        return found.title if found is not None else ""
    return title


async def _cancelled(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` unless done, and wait until it is over."""
    task.cancel()
    with contextlib.suppress(BaseException):
        await task


async def _store(ctx: RunContext, key: str, value: Any) -> Exception | None:
    """Store an index value; a failure is returned for the run to record, not raised."""
    try:
        await ctx.state.set_value(INDEX_SCOPE, key, value)
    except Exception as exc:  # noqa: BLE001 - the writes are done: keep their audit
        return exc
    return None


def _state_failure(result: RunResult, exc: Exception | None) -> None:
    """Record that the index could not be stored: the next run reads InSales again."""
    if exc is None:
        return
    result.status = "failed"
    result.errors.append(f"state store: saving the InSales index failed: {exc}")
    result.message = (result.message + "; " if result.message else "") + (
        "the InSales index was not saved")


# Positional on purpose: this exact signature is what both stock integrations call.
def build_stock_integration(  # noqa: PLR0917
    name: str,
    type_: str,
    cfg: StockSyncOptions,
    shop_name: str,
    shop: ShopConfig,
    source: StockSource,
    res: Resources,
) -> Integration:
    """Wire a stock source to an InSales shop with the shop's shared session and budget."""
    upstream = "insales:" + shop_name

    def limiter_factory() -> RateLimiter:
        return WindowLimiter(
            shop.requests_per_window, shop.window, concurrency=cfg.write_concurrency,
            usage_header="API-Usage-Limit", clock=res.clock, name=upstream,
        )

    transport = Transport(
        res.session(upstream),
        api="insales",
        base_url=shop.url,
        limiter=res.limiter(upstream, limiter_factory),
        clock=res.clock,
        timeout=cfg.timeout,
        headers=basic_auth(shop.api_key.get_secret_value(), shop.password.get_secret_value()),
        observer=res.observer,
    )
    key_field = str(getattr(cfg, "target_key", None) or DEFAULT_TARGET_KEY.get(type_, "sku"))
    return StockSyncIntegration(
        name=name, type_=type_, cfg=cfg, shop_name=shop_name, client=InSalesClient(
            transport, warehouses=() if cfg.warehouse is None else (cfg.warehouse,)),
        source=source, key_field=key_field,
    )
