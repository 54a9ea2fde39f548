"""Credentials check: sign in to every API an integration uses and read one page.

Built on the integration itself (``registry.build``), so it uses the very
transports, base URLs and credentials a run would. Only reads: nothing is
written to any API and the state store is not opened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from stocksyncd.integrations.base import Integration
from stocksyncd.redact import redact

# A Mouser part number every Mouser key can look up (Texas Instruments' NE555P).
MOUSER_PROBE_PART = "595-NE555P"


@dataclass(frozen=True)
class AccessResult:
    """What one API said to the integration's credentials."""

    api: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Probe:
    """One read-only call: which API, which request, which keys hold its credentials."""

    api: str
    request: str
    keys: str
    call: Callable[[], Awaitable[str]]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _stock_probes(integration: Integration) -> list[Probe]:
    from stocksyncd.clients.insales import API as INSALES
    from stocksyncd.integrations.kak2c_insales import Kak2cSource
    from stocksyncd.integrations.moysklad_insales import MoySkladSource
    from stocksyncd.integrations.stock.pipeline import StockSyncIntegration

    assert isinstance(integration, StockSyncIntegration)
    source = integration.source
    probes: list[Probe] = []
    if isinstance(source, MoySkladSource):
        moysklad = source.client

        async def read_moysklad() -> str:
            rows = await moysklad.first_products(1)
            return f"signed in, read {_plural(len(rows), 'product')}"

        probes.append(Probe("moysklad", "GET entity/product?limit=1",
                            f"integrations.{integration.name}.token", read_moysklad))
    elif isinstance(source, Kak2cSource):
        kak2c = source.client

        async def read_kak2c() -> str:
            await kak2c.login()
            products, total = await kak2c.products_page(0, 1)
            return (f"signed in, read {_plural(len(products), 'product')} "
                    f"(of {total})")

        probes.append(Probe("kak2c", "POST auth, GET products?page=0&size=1",
                            f"integrations.{integration.name}.login and password", read_kak2c))
    shop = integration.client

    async def read_insales() -> str:
        page = await shop.products_page(page=1, per_page=1)
        return (f"signed in to shop '{integration.shop_name}', "
                f"read {_plural(page.raw_count, 'product')}")

    shop_keys = f"shops.{integration.shop_name}.api_key and password"
    probes.append(Probe(INSALES, "GET /admin/products.json?per_page=1", shop_keys,
                        read_insales))
    return probes


def _mouser_probes(integration: Integration) -> list[Probe]:
    from stocksyncd.integrations.mouser_inventree.job import MouserInvenTreeJob

    assert isinstance(integration, MouserInvenTreeJob)
    job = integration

    async def read_inventree() -> str:
        version = await job.inventree.api_version()
        supplier = await job.inventree.get_company(job.cfg.mouser_supplier)
        if not supplier.is_supplier:
            raise ValueError(f"company {supplier.pk} ({supplier.name!r}) is not a supplier; "
                             "check mouser_supplier")
        return (f"signed in, API version {version}, supplier {supplier.pk} is "
                f"{supplier.name!r}")

    async def read_mouser() -> str:
        result = await job.mouser.search_part_number(MOUSER_PROBE_PART, exact=True)
        return (f"API key accepted, {_plural(len(result.parts), 'part')} found "
                "(1 of the day's calls used)")

    keys = f"integrations.{job.name}"
    return [
        Probe("inventree", f"GET /api/, GET /api/company/{job.cfg.mouser_supplier}/",
              f"{keys}.inventree_url, inventree_token and mouser_supplier", read_inventree),
        Probe("mouser", "POST search/partnumber", f"{keys}.mouser_api_key", read_mouser),
    ]


def probes_for(integration: Integration) -> list[Probe]:
    """The read-only calls that show whether ``integration``'s credentials work."""
    if integration.type in ("moysklad-insales", "kak2c-insales"):
        return _stock_probes(integration)
    if integration.type == "mouser-inventree":
        return _mouser_probes(integration)
    raise ValueError(f"no credentials check for integration type {integration.type!r}")


async def _attempt(probe: Probe, limit_s: float) -> AccessResult:
    try:
        detail = await asyncio.wait_for(probe.call(), limit_s)
    except TimeoutError:
        why = f"no answer within {limit_s:.0f}s"
    except Exception as exc:  # noqa: BLE001 - every failure is the answer, reported
        why = redact(str(exc)).removeprefix(f"{probe.api}: ") or type(exc).__name__
    else:
        return AccessResult(probe.api, True, detail)
    return AccessResult(probe.api, False, f"{probe.request}: {why} (check {probe.keys})")


async def check_access(integration: Integration, limit_s: float) -> list[AccessResult]:
    """Run each API's probe (one after another: a failed sign-in says enough)."""
    return [await _attempt(probe, limit_s) for probe in probes_for(integration)]
