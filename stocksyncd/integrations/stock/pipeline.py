"""The stock sync both InSales integrations run: fetch -> plan -> write -> confirm -> record.

* fetch: the source and the shop at once. The shop comes from the index
  (kept in memory between runs, checked against the stored copy), brought
  up to date by a scan that sees every edit and deletion since the last
  one; a full scan is checked for products it may have missed before
  anything is planned from it. Reads also decide the earlier writes InSales
  had not shown yet (``pending``); those overdue are read by id.
* plan: pure (``plan``): never a key duplicated in the shop or ambiguous
  in the source; a figure written and not yet shown counts as the shop's.
* write: batches of 100, each stored in the write-ahead audit before it
  goes out. InSales only queues them.
* confirm: earlier writes the reads showed are settled ``confirmed``, the
  ones that never showed ``unconfirmed``; this run's become pending. A
  variant refused because its product was deleted leaves the index.
* record: the index is stored (the pieces that changed).

A run sees complete data from both sides or writes nothing (SPEC §2.1);
upstream failures become a ``failed`` result rather than an exception, so
the daemon goes on with its other jobs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from stocksyncd.clients.insales import InSalesClient, Product, basic_auth, warehouse_field
from stocksyncd.config import ShopConfig, StockSyncOptions
from stocksyncd.errors import StockSyncError
from stocksyncd.http.limits import Limits
from stocksyncd.http.ratelimit import RateLimiter, WindowLimiter
from stocksyncd.http.transport import Transport
from stocksyncd.integrations.base import Integration, Resources, RunContext, RunResult
from stocksyncd.integrations.stock.apply import ApplyOutcome, apply_writes, as_change
from stocksyncd.integrations.stock.cold import cold_slot
from stocksyncd.integrations.stock.index import (
    DEFAULT_OVERLAP,
    InSalesIndex,
    RefreshReport,
    ScanFailed,
    needs_full,
    refresh_index,
)
from stocksyncd.integrations.stock.keys import normalize_key
from stocksyncd.integrations.stock.model import StockSource
from stocksyncd.integrations.stock.pending import Pending, Verdicts
from stocksyncd.integrations.stock.plan import (
    Plan,
    TargetVariant,
    plan_reduced,
    reduce_source,
)
from stocksyncd.integrations.stock.report import StoredSkips, partial_message, skip_rows
from stocksyncd.integrations.stock.safety_buffer import BufferReport, apply_buffer
from stocksyncd.integrations.stock.stored import StoredIndex

# Which InSales field carries the key when the config does not say.
DEFAULT_TARGET_KEY = {"moysklad-insales": "sku", "kak2c-insales": "barcode"}
MAX_REPORTED_PROBLEMS = 50
MAX_REPORTED_UNCONFIRMED = 50
# Products read by id in one run (overdue writes, refused variants): the rest wait a run.
MAX_READS_BY_ID = 25
SKIP_DELETED_IN_TARGET = "deleted_in_target"
SKIP_UNCONFIRMED = "unconfirmed"


class TargetRows:
    """The planner's view of the shop, kept per product between runs.

    A product not replaced since the last run keeps its rows: a quiet minute
    makes rows only for the products its scan read.
    """

    def __init__(self, key_field: str, warehouse: int | None) -> None:
        self.by_sku = key_field == "sku"
        self.warehouse = warehouse
        self._made: dict[int, tuple[Product, list[TargetVariant]]] = {}

    def of(self, index: InSalesIndex) -> list[TargetVariant]:
        """Every variant of ``index``; a pending write's figure stands for the shop's."""
        out: list[TargetVariant] = []
        made: dict[int, tuple[Product, list[TargetVariant]]] = {}
        old, rows = self._made, self._rows
        for pid, product in index.products.items():
            hit = old.get(pid)
            if hit is None or hit[0] is not product:
                hit = (product, rows(product))
            made[pid] = hit
            out += hit[1]
        self._made = made
        pending = index.pending
        if pending:
            out = [t._replace(current=float(pending[t.id].value)) if t.id in pending else t
                   for t in out]
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
        self.client = client
        self.source = source
        self.key_field = key_field
        self.field_name = warehouse_field(cfg.warehouse)
        self.overlap = overlap
        self._index: InSalesIndex | None = None  # the copy in memory, between runs
        self._rows = TargetRows(key_field, cfg.warehouse)
        self._buffer: BufferReport | None = None  # this run's safety buffer record
        self._skips = StoredSkips()
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
            # A run without the index in memory reads the shop in full or loads
            # the stored copy: at most a few such runs at once (cold.py).
            async with cold_slot(self._index is None):
                await self._run(ctx, result)
        except BaseException:
            self._index = None  # possibly half updated: load the stored copy next time
            self._skips.forget()
            raise
        finally:
            result.requests = {
                "insales": self.client.requests_made - insales_before,
                self.source.api: self.source.requests_made() - source_before,
            }
            result.duration_s = ctx.clock.monotonic() - started
        return result

    async def _run(self, ctx: RunContext, result: RunResult) -> None:
        store = StoredIndex(ctx.state, self.index_key)
        verdicts = Verdicts()
        try:
            async with asyncio.TaskGroup() as tg:
                items = tg.create_task(self.source.fetch(ctx))
                shop = tg.create_task(self._read_shop(ctx, store, verdicts, after=items))
        except* StockSyncError as group:
            self._index = None  # the reads may have been half taken in
            result.status = "failed"
            for exc in group.exceptions:
                if isinstance(exc, ScanFailed | ByIdFailed):
                    result.errors.append(str(exc))
                else:
                    result.errors.append(f"{self.source.api}: fetching the source failed: {exc}")
            result.message = f"reading failed, nothing written: {result.errors[0]}"
        if result.status == "failed":
            return
        index, report = shop.result()
        source = reduce_source(items.result(), self.cfg.negative)
        # Lower the figures before planning, so the zero guard and the writes see
        # what will be published (safety_buffer.py).
        self._buffer = apply_buffer(source, self.cfg.safety_buffer, self.cfg.safety_buffer_share)

        plan = plan_reduced(source, self._rows.of(index), zero_guard=self.cfg.zero_guard)
        self._report_plan(result, plan, report)
        self._skips.record(result.details, skip_rows(plan.skips, self.shop_url, _titles(index)),
                           ctx.run_id, ctx.clock.time())

        outcome = await self._write(ctx, result, plan)
        if outcome is not None:
            await self._refused(result, index, outcome, verdicts)

        await self._confirm(ctx, result, index, verdicts)
        if outcome is not None:
            self._pending(ctx, index, outcome, verdicts)

        await self._record(result, store, index, full=report.mode == "full")

    async def _read_shop(self, ctx: RunContext, store: StoredIndex, verdicts: Verdicts,
                         after: asyncio.Future[Any]) -> tuple[InSalesIndex, RefreshReport]:
        """The index, up to date and checked; overdue writes read by id and judged.

        A full scan (long) goes alongside the source read; an incremental one
        (a request or a few) waits for the source, so the plan is made from
        a view of the shop taken a moment before, and our writes land just
        after the scan's watermark and are read back by the next run only
        (see ``index``).
        """
        header = await store.header()
        index = self._index if store.holds(header, self._index) else await store.load(header)
        self._index = None  # until this run has stored what it makes of it
        pending = None if index is not None else await store.load_pending()
        full = needs_full(index, ctx.clock.time(), self.cfg.full_refresh, self.field_name)
        if full is None:
            await asyncio.wait([after])
        now = ctx.clock.time()
        index, report = await refresh_index(
            self.client, index, verdicts, now=now, full=full,
            overlap=self.overlap, concurrency=self.cfg.write_concurrency,
            field=self.field_name, pending=pending)
        overdue = index.overdue(now, self.cfg.confirm_within)
        if overdue:
            read = await self._read_by_id(index, (p.product_id for p in overdue), verdicts)
            index.expire((p for p in overdue if p.product_id in read), verdicts)
        return index, report

    async def _read_by_id(self, index: InSalesIndex, pids: Iterable[int],
                          verdicts: Verdicts) -> set[int]:
        """Read products by id (the first ``MAX_READS_BY_ID``) into ``index``; returns their ids."""
        chosen = sorted(set(pids))[:MAX_READS_BY_ID]
        gate = asyncio.Semaphore(max(1, self.cfg.write_concurrency))

        async def read(pid: int) -> Product | None:
            async with gate:
                return await self.client.product(pid)

        try:
            found = await asyncio.gather(*(read(pid) for pid in chosen))
        except StockSyncError as exc:
            raise ByIdFailed(exc) from exc
        for pid, product in zip(chosen, found, strict=True):
            if product is None:
                index.remove(pid, verdicts)
            else:
                index.take([product], verdicts)
        return set(chosen)

    async def _write(self, ctx: RunContext, result: RunResult, plan: Plan) -> ApplyOutcome | None:
        """Send the plan, unless it is refused or a dry run."""
        if plan.abort is not None:
            result.status = "aborted"
            result.message = plan.abort
            result.errors.append(plan.abort)
            result.changes = [as_change(w, self.field_name, False) for w in plan.writes]
            ctx.log.warning("{name}: {msg}", name=self.name, msg=plan.abort)
            return None
        if result.dry_run:
            result.changes = [as_change(w, self.field_name, False) for w in plan.writes]
            result.message = f"dry run: {len(plan.writes)} changes planned, nothing written"
            return None
        if not plan.writes:
            result.message = "nothing to change"
            return None
        outcome = await apply_writes(self.client, plan.writes, field_name=self.field_name,
                                     concurrency=self.cfg.write_concurrency, audit=ctx.audit)
        result.changes = outcome.changes
        result.counts.written = len(outcome.sent)
        result.errors.extend(outcome.errors)
        result.details["batches"] = outcome.batches
        result.message = f"{len(outcome.sent)} changes sent to InSales' queue"
        if outcome.failed:
            result.status = "failed"
            result.message = partial_message(len(outcome.sent), plan.writes, outcome.failed)
        if outcome.fenced is not None:
            result.status = "failed"
            result.errors.append(f"write-ahead audit: {outcome.fenced}")
            result.message += f"; writing stopped: {outcome.fenced}"
        return outcome

    async def _refused(self, result: RunResult, index: InSalesIndex, outcome: ApplyOutcome,
                       verdicts: Verdicts) -> None:
        """Tell refusals of variants whose product was deleted from real ones.

        Refused variants' products are read by id: one InSales no longer has
        is counted ``deleted_in_target`` and leaves the index; any other
        refusal fails the run.
        """
        if not outcome.refused:
            return
        owners = {vid: owner.id for vid, owner in index.owners(outcome.refused).items()}
        try:
            await self._read_by_id(index, set(owners.values()), verdicts)
        except ByIdFailed as exc:
            result.errors.append(str(exc))
        real = []
        for vid, reason in outcome.refused.items():
            if vid in owners and owners[vid] not in index.products:
                result.counts.skip(SKIP_DELETED_IN_TARGET)
            else:
                real.append(f"insales: variant {vid} refused: {reason}")
        if real:
            result.status = "failed"
            result.errors.extend(real)
        deleted = len(outcome.refused) - len(real)
        if deleted:
            result.message += f"; {deleted} refused as their product was deleted in InSales"

    async def _confirm(self, ctx: RunContext, result: RunResult, index: InSalesIndex,
                       verdicts: Verdicts) -> None:
        """Settle earlier writes the reads decided, and report the ones never shown."""
        field_name = self.field_name

        async def settle(pending: Sequence[Pending], status: Any, reason: str = "") -> None:
            if pending:
                await ctx.audit.settle([p.audited(field_name) for p in pending], status, reason)

        await settle(verdicts.confirmed, "confirmed")
        for p, shown in verdicts.superseded:
            await settle([p], "unconfirmed",
                         f"InSales showed {shown} after a later change to the product")
        await settle(verdicts.deleted, "unconfirmed", "deleted in InSales")
        await settle(verdicts.rewrite, "unconfirmed",
                     f"not shown within {self.cfg.confirm_within:.0f} s; written again")
        await settle(verdicts.unconfirmed, "unconfirmed",
                     f"not shown within {self.cfg.confirm_within:.0f} s, twice")
        result.counts.skip(SKIP_DELETED_IN_TARGET, len(verdicts.deleted))
        result.counts.skip(SKIP_UNCONFIRMED, len(verdicts.unconfirmed))
        details = result.details
        details["confirmed"] = len(verdicts.confirmed)
        if verdicts.superseded:
            details["superseded"] = len(verdicts.superseded)
        if verdicts.rewrite:
            details["rewritten"] = len(verdicts.rewrite)
        if verdicts.unconfirmed:
            details["unconfirmed"] = [f"{p.variant_id} ({p.key}) = {p.value}"
                                      for p in verdicts.unconfirmed][:MAX_REPORTED_UNCONFIRMED]
            result.message += (f"; {len(verdicts.unconfirmed)} earlier writes never showed in "
                               "InSales (written twice)")
            ctx.log.warning("{name}: {n} writes not shown by InSales within the bound, twice",
                            name=self.name, n=len(verdicts.unconfirmed))

    def _pending(self, ctx: RunContext, index: InSalesIndex, outcome: ApplyOutcome,
                 verdicts: Verdicts) -> None:
        """This run's writes wait for a read to show them."""
        now = ctx.clock.time()
        again = {p.variant_id for p in verdicts.rewrite}
        owners = index.owners(w.variant_id for w, _ in outcome.sent)
        for w, change in outcome.sent:
            product = owners.get(w.variant_id)
            if product is None:
                continue  # left the index meanwhile (deleted): nothing to confirm
            index.pending[w.variant_id] = Pending(
                w.variant_id, product.id, w.key, w.new, now, product.updated_at,
                attempt=2 if w.variant_id in again else 1, audit_id=change.audit_id,
                change=change)
        index.pending_dirty = True
        ctx.log.debug("{name}: {n} writes pending", name=self.name, n=len(index.pending))

    async def _record(self, result: RunResult, store: StoredIndex, index: InSalesIndex, *,
                      full: bool) -> None:
        """Store the index; a failure fails the run (the next one loads the older copy)."""
        result.details["pending"] = len(index.pending)
        try:
            await store.save(index, full=full)
        except Exception as exc:  # noqa: BLE001 - the writes are done: keep their audit
            result.status = "failed"
            result.errors.append(f"state store: saving the InSales index failed: {exc}")
            result.message = (result.message + "; " if result.message else "") + (
                "the InSales index was not saved")
            return
        self._index = index

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
        if report.deleted:
            details["index_products_deleted"] = report.deleted
        if report.reason:
            details["index_full_reason"] = report.reason
        # --- safety buffer and source index hook: figures before and after the
        # buffer, and how the source read (e.g. MoySklad's window or full read).
        if self._buffer is not None:
            details["safety_buffer"] = self._buffer.details((w.key, w.new) for w in plan.writes)
        details.update(getattr(self.source, "report", {}))
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


class ByIdFailed(StockSyncError):
    """Reading products by id failed after retries."""

    def __init__(self, cause: StockSyncError) -> None:
        super().__init__(f"insales: reading products by id failed: {cause}")


# Positional on purpose: this exact signature is what both stock integrations call.
def build_stock_integration(  # noqa: PLR0917
    name: str,
    type_: str,
    cfg: StockSyncOptions,
    shop_name: str,
    shop: ShopConfig,
    source: StockSource,
    res: Resources,
    limits: Limits | None = None,
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
        limits=limits,
    )
    key_field = str(getattr(cfg, "target_key", None) or DEFAULT_TARGET_KEY.get(type_, "sku"))
    return StockSyncIntegration(
        name=name, type_=type_, cfg=cfg, shop_name=shop_name, client=InSalesClient(
            transport, warehouses=() if cfg.warehouse is None else (cfg.warehouse,)),
        source=source, key_field=key_field,
    )

