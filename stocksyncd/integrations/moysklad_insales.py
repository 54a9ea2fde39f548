"""MoySklad -> InSales stock: MoySklad products joined with the short stock report.

Kept in a stored source index and refreshed by changed-since windows
(``moysklad_index``), so an every-minute run costs two MoySklad requests.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from stocksyncd.clients.moysklad import (
    API,
    MoySkladClient,
    SourceKey,
    StockType,
    is_entity_id,
    moysklad_limiter,
    moysklad_transport,
    msk_text,
)
from stocksyncd.integrations.moysklad_index import (
    DEFAULT_OVERLAP,
    ITEMS_SUFFIX,
    JOURNAL_MIN,
    JOURNAL_SUFFIX,
    SCOPE,
    IndexHeader,
    SourceIndex,
    WindowChange,
    apply_window,
    full_index,
    full_reason,
    journal_entries,
    journal_json,
    journal_weight,
)
from stocksyncd.integrations.stock.keys import Unusable
from stocksyncd.integrations.stock.model import SourceItem
from stocksyncd.integrations.stock.pipeline import build_stock_integration

if TYPE_CHECKING:
    from stocksyncd.config import Config, MoySkladInSalesConfig
    from stocksyncd.integrations.base import Integration, Resources, RunContext


NO_PRODUCT_ID = Unusable("no_product_id")


class MoySkladSource:
    """Every product with a non-empty key, with its stock (absent from the report = 0).

    With ``index_key`` the products and figures are kept in a stored source
    index (``moysklad_index``): a run reads only what changed since the last
    one and hands the planner the whole picture, index plus changes. Without
    it every run reads everything.
    """

    api = API

    def __init__(
        self,
        client: MoySkladClient,
        *,
        key: SourceKey = "article",
        stock_type: StockType = "quantity",
        store_id: str | None = None,
        index_key: str | None = None,
        full_every: float = 3600.0,
        overlap: float = DEFAULT_OVERLAP,
    ) -> None:
        self.client = client
        self.key = key
        self.stock_type = stock_type
        self.store_id = store_id
        self.index_key = index_key
        self.full_every = full_every
        self.overlap = overlap
        self._index: SourceIndex | None = None  # the copy this process last stored
        self._tail = ""  # the journal entry (or copy) ``_index`` stands at
        self._entries: list[dict[str, Any]] = []  # the journal behind ``_index``
        self._doubt: str | None = None  # why the next run must read everything
        self.report: dict[str, Any] = {}  # what the last fetch did, for the run's details

    async def fetch(self, ctx: RunContext) -> list[SourceItem]:
        """The whole picture; any request failing fails the run (and the next one reads all)."""
        if self.index_key is None:
            self.report = {"source_mode": "full"}
            return _items((await self._read_full())[0])
        started = ctx.clock.time()
        header = IndexHeader.from_json(await ctx.state.get_value(SCOPE, self.index_key))
        reason = self._doubt or full_reason(
            header, now=started, key=self.key, stock_type=self.stock_type,
            store_id=self.store_id, full_every=self.full_every, overlap=self.overlap)
        loaded = None
        if reason is None and header is not None:
            loaded = await self._load(ctx, header)
            if loaded is None:
                reason = "the stored source index does not match its header"
        if loaded is not None and header is not None and header.since is not None:
            index, entries = loaded
            window = await self._read_window(ctx, index, header)
            if window is None:
                reason = self._doubt
            else:
                await self._store(ctx, index, full_at=header.full_at, read_at=started,
                                  window=window, entries=entries,
                                  since=self.client.earliest_date)
                return _items(index)
        return await self._read_everything(ctx, started, reason or "no stored index")

    async def _read_everything(self, ctx: RunContext, started: float,
                               reason: str) -> list[SourceItem]:
        index, since = await self._read_full()
        self.report = {"source_mode": "full", "source_full_reason": reason,
                       "source_products": len(index.products)}
        ctx.log.info("{api}: reading every product and the whole stock report ({why})",
                     api=API, why=reason)
        self._doubt = None
        await self._store(ctx, index, full_at=started, read_at=started, window=None,
                          entries=[], since=since)
        return _items(index)

    async def _read_full(self) -> tuple[SourceIndex, datetime | None]:
        """Products and the stock report, fetched together; either failing fails the run."""
        self.client.reset_server_date()
        try:
            async with asyncio.TaskGroup() as group:
                products_task = group.create_task(self.client.products(self.key))
                stock_task = group.create_task(self.client.stock(self.stock_type, self.store_id))
        except ExceptionGroup as failed:
            # The other call was cancelled; report the failure itself, not the group.
            raise failed.exceptions[0] from None
        since = self.client.earliest_date
        return full_index(products_task.result(), stock_task.result(), self.key), since

    async def _read_window(self, ctx: RunContext, index: SourceIndex,
                           header: IndexHeader) -> WindowChange | None:
        """Apply what changed since the last read; None when it left a doubt."""
        assert header.since is not None
        since = header.since - timedelta(seconds=self.overlap)
        self.client.reset_server_date()
        try:
            async with asyncio.TaskGroup() as group:
                products_task = group.create_task(
                    self.client.products(self.key, updated_since=since))
                stock_task = group.create_task(self.client.stock(
                    self.stock_type, self.store_id, changed_since=since))
        except ExceptionGroup as failed:
            # All or nothing: the window is not used, and the next run reads everything.
            self._doubt = "the previous changed-since window failed"
            await self._mark_doubt(ctx, header)
            raise failed.exceptions[0] from None
        # Changed in place from here: this process's copy is trusted again only
        # once ``_store`` has named what it stands at.
        self._index = None
        change = apply_window(index, products_task.result(), stock_task.result(), self.key)
        self.report = {
            "source_mode": "window", "source_since": msk_text(since),
            "source_products_changed": change.products, "source_stock_changed": change.stock,
            "source_products": len(index.products),
        }
        if change.doubt is not None:
            ctx.log.warning("{api}: {why}; reading everything", api=API, why=change.doubt)
            self._doubt = change.doubt
            return None
        return change

    async def _load(self, ctx: RunContext,
                    header: IndexHeader) -> tuple[SourceIndex, list[dict[str, Any]]] | None:
        """The index ``header`` stands for, and the journal entries behind it: this
        process's copy when it is at the header's tail, else the stored items with the
        journal replayed; None when the store does not hold them."""
        if self._index is not None and self._tail == (header.tail or header.snapshot):
            return self._index, self._entries
        assert self.index_key is not None
        self._index = None
        data = await ctx.state.get_value(SCOPE, self.index_key + ITEMS_SUFFIX)
        index = SourceIndex.from_json(data, header.snapshot)
        if index is None:
            return None
        journal = await ctx.state.get_value(SCOPE, self.index_key + JOURNAL_SUFFIX) if (
            header.tail) else None
        entries = journal_entries(journal, header)
        if entries is None:
            return None
        index.replay(entries)
        return index, entries

    async def _store(self, ctx: RunContext, index: SourceIndex, *, full_at: float,
                     read_at: float, window: WindowChange | None,
                     entries: list[dict[str, Any]], since: datetime | None) -> None:
        """Store what changed, then the header.

        ``window`` None: a full read, whose items are always written. A window
        with changes adds an entry to the journal, or, once the journal would
        hold more than a quarter of the index, the items are written again and
        the journal starts anew; a quiet window writes only the header. A
        failure is logged and makes the next run read everything; this run's
        figures are right either way, so it goes on.
        """
        assert self.index_key is not None
        if since is None:
            ctx.log.warning("{api}: no Date header in MoySklad's answers: the next run "
                            "reads everything again", api=API)
        entries = list(entries)
        rewrite = window is None
        grown = False
        if window is not None and window.changed:
            entries.append(window.entry())
            grown = True
            rewrite = journal_weight(entries) > max(JOURNAL_MIN, len(index.products) // 4)
        if rewrite:
            index.renamed()
            entries, grown = [], False
        header = IndexHeader(key=self.key, stock_type=self.stock_type, store_id=self.store_id,
                             since=since, read_at=read_at, full_at=full_at,
                             snapshot=index.snapshot,
                             tail=str(entries[-1]["id"]) if entries else "")
        self._index, self._entries = index, entries
        self._tail = header.tail or header.snapshot
        try:
            if rewrite:
                await ctx.state.set_value(SCOPE, self.index_key + ITEMS_SUFFIX,
                                          index.items_json())
            elif grown:
                await ctx.state.set_value(SCOPE, self.index_key + JOURNAL_SUFFIX,
                                          journal_json(index.snapshot, entries))
            await ctx.state.set_value(SCOPE, self.index_key, header.to_json())
        except Exception as exc:  # noqa: BLE001 - the figures read are right: keep the run
            self._doubt = "the source index could not be saved"
            self.report["source_index_error"] = f"state store: {exc}"
            ctx.log.warning("{api}: saving the source index failed: {exc}", api=API, exc=exc)

    async def _mark_doubt(self, ctx: RunContext, header: IndexHeader) -> None:
        """Tell every replica that the next run must read everything (best effort)."""
        assert self.index_key is not None
        header.doubt = self._doubt
        with contextlib.suppress(Exception):
            await ctx.state.set_value(SCOPE, self.index_key, header.to_json())

    def requests_made(self) -> int:
        """HTTP attempts sent to MoySklad."""
        return self.client.requests_made()


def _items(index: SourceIndex) -> list[SourceItem]:
    """The whole picture: each keyed product with its figure (absent from the report = 0)."""
    items: list[SourceItem] = []
    add, stock, names = items.append, index.stock, index.names
    for ref, key in index.products.items():
        name = names.get(ref, "")
        if not is_entity_id(ref):
            # Without its id a product's row in the report cannot be found: its
            # stock is unknown, never the 0 of "absent from the report".
            add(SourceItem(key, NO_PRODUCT_ID, ref[:60], name))
            continue
        # Products that never took part in an operation are not in the report.
        add(SourceItem(key, stock.get(ref, 0), ref, name))
    return items


def build(name: str, cfg: MoySkladInSalesConfig, config: Config, res: Resources) -> Integration:
    """The ``moysklad-insales`` integration ``name``."""
    limiter = res.limiter(f"{API}:{name}", lambda: moysklad_limiter(res.clock, f"{API}:{name}"))
    transport = moysklad_transport(
        res.session(API), token=cfg.token.get_secret_value(), base_url=cfg.base_url,
        limiter=limiter, clock=res.clock, timeout=cfg.timeout, observer=res.observer,
        limits=config.http.limits(API),
    )
    source = MoySkladSource(
        MoySkladClient(transport, weight=cfg.request_weight), key=cfg.source_key,
        stock_type=cfg.stock_type, store_id=cfg.store_id, index_key=name,
        full_every=cfg.source_full_refresh, overlap=cfg.source_overlap,
    )
    return build_stock_integration(
        name=name, type_=cfg.type, cfg=cfg, shop_name=cfg.shop, shop=config.shops[cfg.shop],
        source=source, res=res, limits=config.http.limits("insales"),
    )
