"""MoySklad -> InSales stock: MoySklad products joined with the short stock report."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from stocksyncd.clients.moysklad import (
    API,
    MoySkladClient,
    SourceKey,
    StockType,
    moysklad_limiter,
    moysklad_transport,
)
from stocksyncd.integrations.stock.model import SourceItem
from stocksyncd.integrations.stock.pipeline import build_stock_integration
from stocksyncd.integrations.stock.slices import in_slices

if TYPE_CHECKING:
    from stocksyncd.config import Config, MoySkladInSalesConfig
    from stocksyncd.integrations.base import Integration, Resources, RunContext


class MoySkladSource:
    """Every product with a non-empty key, with its stock (absent from the report = 0)."""

    api = API

    def __init__(
        self,
        client: MoySkladClient,
        *,
        key: SourceKey = "article",
        stock_type: StockType = "quantity",
        store_id: str | None = None,
    ) -> None:
        self.client = client
        self.key = key
        self.stock_type = stock_type
        self.store_id = store_id

    async def fetch(self, ctx: RunContext) -> list[SourceItem]:
        """Products and the stock report, fetched together; either failing fails the run."""
        try:
            async with asyncio.TaskGroup() as group:
                products_task = group.create_task(self.client.products(self.key))
                stock_task = group.create_task(self.client.stock(self.stock_type, self.store_id))
        except ExceptionGroup as failed:
            # The other call was cancelled; report the failure itself, not the group.
            raise failed.exceptions[0] from None
        products, stock = products_task.result(), stock_task.result()
        items: list[SourceItem] = []
        # A part at a time: the shop's answers, read meanwhile, need not wait
        # for 10k rows to be joined.
        async for part in in_slices(products):
            _join(part, stock, self.key, items)
        return items

    def requests_made(self) -> int:
        """HTTP attempts sent to MoySklad."""
        return self.client.requests_made()


def _join(products: Sequence[dict[str, Any]], stock: Mapping[str, object], field: str,
          items: list[SourceItem]) -> None:
    """Each product with a key, with its stock from the report, added to ``items``."""
    add = items.append
    for product in products:
        key = product.get(field)
        if key is None or key == "":
            continue  # the filter asked for a key; an answer without one is not ours
        ref = product.get("id", "")
        if type(ref) is not str:
            ref = str(ref)
        name = product.get("name")
        # Products that never took part in an operation are not in the report.
        add(SourceItem(key, stock.get(ref, 0), ref, name if type(name) is str else ""))


def build(name: str, cfg: MoySkladInSalesConfig, config: Config, res: Resources) -> Integration:
    """The ``moysklad-insales`` integration ``name``."""
    limiter = res.limiter(f"{API}:{name}", lambda: moysklad_limiter(res.clock, f"{API}:{name}"))
    transport = moysklad_transport(
        res.session(API), token=cfg.token.get_secret_value(), base_url=cfg.base_url,
        limiter=limiter, clock=res.clock, timeout=cfg.timeout, observer=res.observer,
    )
    source = MoySkladSource(
        MoySkladClient(transport, weight=cfg.request_weight), key=cfg.source_key,
        stock_type=cfg.stock_type, store_id=cfg.store_id,
    )
    return build_stock_integration(
        name=name, type_=cfg.type, cfg=cfg, shop_name=cfg.shop, shop=config.shops[cfg.shop],
        source=source, res=res,
    )
