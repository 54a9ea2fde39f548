"""Kak2c -> InSales stock: one stock figure per Kak2c variant."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from stocksyncd.clients.kak2c import (
    API,
    DEFAULT_PAGE_SIZE,
    Kak2cClient,
    kak2c_limiter,
    kak2c_transport,
)
from stocksyncd.integrations.stock.model import SourceItem
from stocksyncd.integrations.stock.pipeline import build_stock_integration
from stocksyncd.numbers import plain_decimal

if TYPE_CHECKING:
    from stocksyncd.config import Config, Kak2cInSalesConfig
    from stocksyncd.integrations.base import Integration, Resources, RunContext

Kak2cKey = Literal["barcode", "variant_id"]


def variant_barcode(variant: dict[str, Any]) -> object:
    """The variant's default barcode (else its first), raw; None when it has none."""
    barcodes = variant.get("barcodes")
    if isinstance(barcodes, list) and barcodes:
        entries = [b for b in barcodes if isinstance(b, dict)]
        default = next((b for b in entries if b.get("isDefault") is True), None)
        chosen = default or (entries[0] if entries else None)
        return chosen.get("value") if chosen is not None else barcodes[0]
    return variant.get("barcode")  # a flat field, in case an account answers that way


def variant_stock(variant: dict[str, Any], field: str) -> object:
    """``field`` of the variant's stock entries: the value of one entry, the sum of several.

    Non-numeric values are returned as they are, for the planner to report.
    """
    stock = variant.get("stock")
    if isinstance(stock, dict):
        return stock.get(field)
    if not isinstance(stock, list) or not stock:
        return None
    values = [s.get(field) if isinstance(s, dict) else s for s in stock]
    if len(values) == 1:
        return values[0]
    total = Decimal(0)
    for value in values:
        # Each part read as strictly as a single figure: a text "5" beside a 3 is 8,
        # never the "5" alone; any unreadable part makes the whole figure unreadable.
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int):
            total += value
        elif isinstance(value, float):
            total += Decimal(repr(value))
        elif isinstance(value, str) and (parsed := plain_decimal(value)) is not None:
            total += parsed
        else:
            return value
    return total


class Kak2cSource:
    """Every variant of every product (both "many variants" and "one variant per product")."""

    api = API

    def __init__(
        self,
        client: Kak2cClient,
        *,
        key: Kak2cKey = "barcode",
        stock_field: str = "stockTotal",
        page_size: int = DEFAULT_PAGE_SIZE,
        concurrency: int = 1,
    ) -> None:
        self.client = client
        self.key = key
        self.stock_field = stock_field
        self.page_size = page_size
        self.concurrency = concurrency

    async def fetch(self, ctx: RunContext) -> list[SourceItem]:
        """All pages; a page that still fails after retries fails the run.

        Each page becomes items as it arrives: a decoded page is about ten times
        the size of its items, and 300 jobs on an aligned cron read at once.
        """
        return await self.client.products(self.page_size, concurrency=self.concurrency,
                                          each_page=self._items)

    def _items(self, products: list[Any]) -> list[SourceItem]:
        """One item per variant of ``products`` (a page of ``GET /products``)."""
        items: list[SourceItem] = []
        for product in products:
            variants = product.get("variants") if isinstance(product, dict) else None
            name = product.get("shortName") if isinstance(product, dict) else None
            if not isinstance(name, str):
                name = ""
            if not isinstance(variants, list):
                variants = []
            for variant in variants:
                if not isinstance(variant, dict):
                    items.append(SourceItem(key=None, quantity=None, ref=""))
                    continue
                raw_id = variant.get("id")
                ref = "" if raw_id is None else str(raw_id)
                key: object = variant_barcode(variant) if self.key == "barcode" else raw_id
                items.append(SourceItem(
                    key=None if key is None else str(key),
                    quantity=variant_stock(variant, self.stock_field),
                    ref=ref,
                    name=name,
                ))
        return items

    def requests_made(self) -> int:
        """HTTP attempts sent to Kak2c (logins included)."""
        return self.client.requests_made()


def build(name: str, cfg: Kak2cInSalesConfig, config: Config, res: Resources) -> Integration:
    """The ``kak2c-insales`` integration ``name``."""
    limiter = res.limiter(f"{API}:{name}", lambda: kak2c_limiter(
        res.clock, f"{API}:{name}", rate=cfg.requests_per_second, concurrency=cfg.concurrency))
    transport = kak2c_transport(
        res.session(API, limit_per_host=cfg.concurrency), base_url=cfg.base_url,
        limiter=limiter, clock=res.clock, timeout=cfg.timeout, observer=res.observer,
        limits=config.http.limits(API),
    )
    client = Kak2cClient(
        transport, cfg.login, cfg.password.get_secret_value(), res.clock, domain=cfg.domain,
    )
    source = Kak2cSource(
        client, key=cfg.source_key, stock_field=cfg.stock_field, page_size=cfg.page_size,
        concurrency=cfg.concurrency,
    )
    return build_stock_integration(
        name=name, type_=cfg.type, cfg=cfg, shop_name=cfg.shop, shop=config.shops[cfg.shop],
        source=source, res=res, limits=config.http.limits("insales"),
    )
