"""Real MoySklad answers (tests/clients/fixtures/moysklad) through the incremental source.

Each fixture is served by the simulator in place of its own answer, read by
the client, and applied to a source index; the figures it must give are
spelled out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from stocksyncd.clients.moysklad import MoySkladClient, moysklad_transport
from stocksyncd.clock import FakeClock
from stocksyncd.errors import InvalidResponseError
from stocksyncd.integrations.moysklad_index import SourceIndex, apply_window, full_index
from stocksyncd.integrations.stock.model import SourceItem
from stocksyncd.integrations.stock.plan import reduce_source
from stocksyncd.simulators.moysklad import MoySkladSimulator

FIXTURES = Path(__file__).resolve().parent.parent / "clients" / "fixtures" / "moysklad"
TOKEN = "ms-fixture-token-0123456789"
SINCE = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
WOOMS_ARTICLES = {"112", "113", "98765", "gt", "hj8766", "00041", "Frosred-Pixel-7-Green",
                  "telSams", "ya-st"}


def fixture(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[MoySkladSimulator]:
    simulator = MoySkladSimulator(token=TOKEN, clock=clock)
    await simulator.start()
    yield simulator
    await simulator.stop()


def client(sim: MoySkladSimulator, session: aiohttp.ClientSession,
           clock: FakeClock) -> MoySkladClient:
    return MoySkladClient(moysklad_transport(session, token=TOKEN, base_url=sim.base_url,
                                             clock=clock))


def serve(sim: MoySkladSimulator, path: str, name: str) -> None:
    sim.inject(status=200, match=path, body=fixture(name))


def picture(index: SourceIndex) -> list[SourceItem]:
    return [SourceItem(key, index.stock.get(ref, 0), ref)
            for ref, key in index.products.items()]


async def test_wooms_product_page_gives_its_nine_articles(
        sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock) -> None:
    serve(sim, "entity/product", "wooms_entity_product_page.json")
    rows = await client(sim, session, clock).products("article", updated_since=SINCE)
    assert len(rows) == 35
    assert all(row["archived"] is False for row in rows)
    index = SourceIndex()
    change = apply_window(index, rows, {}, "article")
    assert change.products == 35 and change.doubt is None
    assert set(index.products.values()) == WOOMS_ARTICLES  # the key is absent on 26 rows
    by_code = full_index(rows, {}, "code")
    assert len(by_code.products) == 35
    assert "00052" in by_code.products.values()  # zero-padded codes stay text


async def test_docs_product_list_is_refused_and_its_shared_article_is_a_doubt(
        sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock) -> None:
    serve(sim, "entity/product", "docs_entity_product_list.json")
    # meta.size says 5, three rows came: incomplete, never used.
    with pytest.raises(InvalidResponseError, match=r"3 distinct products read, meta\.size said 5"):
        await client(sim, session, clock).products("article", updated_since=SINCE)
    rows = fixture("docs_entity_product_list.json")["rows"]
    index = SourceIndex(products={"6b44332f-0000-0000-0000-000000000001": "Ar23"})
    change = apply_window(index, rows, {}, "article")
    assert change.doubt is not None and "Ar23" in change.doubt
    assert full_index(rows, {}, "article").products == {
        "26b36824-2c83-11e6-8a84-bae50000001b": "Ar23",
        "d950551c-2c7f-11e6-8a84-bae50000000b": "Ar23",
        "26b36824-2c83-11e6-8a84-bae50000031b": "kk212k",
    }


async def test_docs_stock_report_as_a_window(
        sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock) -> None:
    serve(sim, "report/stock/all/current", "docs_report_stock_all_current_quantity.json")
    ms = client(sim, session, clock)
    stock = await ms.stock("quantity", changed_since=SINCE)
    assert sim.requests[-1].query["changedSince"] == "2026-11-27 12:00:00"  # Moscow time
    assert stock == {
        "12345678-5838-aaeb-0a80-003a003ef439": 11,
        "12345678-279c-aaeb-0a80-00d6001f1981": 0,
        "12345678-279c-aaeb-0a80-00d6001f847c": 46.5,
        "12345678-279c-aaeb-0a80-00d6001f3215": 0,
    }
    index = SourceIndex(
        products={"12345678-5838-aaeb-0a80-003a003ef439": "A",
                  "12345678-279c-aaeb-0a80-00d6001f847c": "B",
                  "12345678-279c-aaeb-0a80-00d6001f3215": "C",
                  "12345678-0000-0000-0000-000000000000": "UNLISTED"},
        stock={"12345678-5838-aaeb-0a80-003a003ef439": 3,
               "12345678-279c-aaeb-0a80-00d6001f3215": 5,
               "12345678-0000-0000-0000-000000000000": 8})
    change = apply_window(index, [], stock, "article")
    assert (change.stock, change.changed) == (4, 4)  # the unkeyed id's figure is kept too
    # Absent from a changed-since report: unchanged, never zero; 46.5 floors to 46.
    assert reduce_source(picture(index), "clamp").values == {
        "A": 11, "B": 46, "C": 0, "UNLISTED": 8}


def test_wooms_assortment_page_figures() -> None:
    rows = fixture("wooms_entity_assortment_page.json")["rows"]
    items = [SourceItem(r.get("article"), r.get("quantity"), r["id"]) for r in rows
             if r["meta"]["type"] in ("product", "variant")]
    reduced = reduce_source(items, "clamp")
    # Real negative quantities (reserve above stock) are published as 0.
    assert reduced.values == {"gt": 0, "00041": 0, "Frosred-Pixel-7-Green": 1111, "112": 0,
                              "113": 12, "98765": 0, "hj8766": 0, "telSams": 0, "ya-st": 0}
    assert reduced.clamped == 3
    assert reduced.counts.skipped_by_reason == {"no_key": 86}
