"""The incremental MoySklad source: every edge of the changed-since window, run by run.

A whole ``moysklad-insales`` job (state store, InSales index, source index)
runs every minute of a fake clock against both simulators; MoySklad's clock
is set 437 s apart from ours so a window taken from the wrong clock shows.
After each run that follows a change, the shop must equal the source.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from stocksyncd.clients.moysklad import msk_text, user_token_weight
from stocksyncd.clock import FakeClock
from stocksyncd.config import Config
from stocksyncd.integrations.base import Integration, RunContext, RunResult
from stocksyncd.integrations.moysklad_index import (
    ITEMS_SUFFIX,
    JOURNAL_SUFFIX,
    SCOPE,
    window_units,
)
from stocksyncd.integrations.registry import build
from stocksyncd.simulators.insales import InSalesSimulator
from stocksyncd.simulators.moysklad import DEFAULT_STORE, MoySkladSimulator
from stocksyncd.state import StateStore, open_store
from tests.sources.test_build import Res

OFFSET = 437.0  # MoySklad's clock runs ahead of ours
OVERLAP = 120.0
OTHER_STORE = "00000000-0000-4000-8000-000000000002"


class Rig:
    """One job, both simulators and the state store on one fake clock."""

    def __init__(self, clock: FakeClock, shop: InSalesSimulator, ms: MoySkladSimulator,
                 state: StateStore, session: aiohttp.ClientSession) -> None:
        self.clock, self.shop, self.ms, self.state, self.session = clock, shop, ms, state, session
        self.options: dict[str, Any] = {}
        self.job: Integration | None = None
        self.runs = 0

    def build(self, **options: Any) -> None:
        """(Re)build the job as the daemon does after a config change."""
        self.options = options
        cfg = Config(
            shops={"main": {"url": self.shop.url, "api_key": self.shop.api_key,
                            "password": self.shop.password}},
            integrations={"job": {"shop": "main", "type": "moysklad-insales",
                                  "token": self.ms.token, "base_url": self.ms.base_url,
                                  "zero_guard": 1.0, **options}},
        )
        self.job = build("job", cfg.integrations["job"], cfg, Res(self.session, self.clock))

    async def run(self, *, after: float = 60.0) -> RunResult:
        """The next scheduled run, ``after`` seconds after the previous one."""
        assert self.job is not None
        self.clock.advance(after)
        self.ms.requests.clear()
        self.runs += 1
        result = await self.job.run(RunContext(run_id=f"r{self.runs}", dry_run=False,
                                               state=self.state, clock=self.clock))
        assert result.status == "ok", (result.message, result.errors)
        return result

    def shop_figures(self) -> dict[str, int]:
        return {v["sku"]: int(v["quantity"]) for v in self.shop.variants() if v["sku"]}

    def source_figures(self, store: str | None = None) -> dict[str, int]:
        """What MoySklad holds per article now: gone products (deleted, archived) hold 0."""
        out: dict[str, int] = {}
        for pid, product in self.ms.products.items():
            article = product.get("article")
            if not article:
                continue
            if product["archived"]:
                out[article] = 0
                continue
            stores = [store] if store else list(self.ms.stock)
            total = sum(self.ms.stock.get(s, {}).get(pid).value("quantity")  # type: ignore[union-attr]
                        for s in stores if pid in self.ms.stock.get(s, {}))
            out[article] = max(0, math.floor(total))
        return out

    def assert_shop_equals_source(self, *, gone: dict[str, int] | None = None,
                                  store: str | None = None) -> None:
        """Every shop SKU MoySklad knows shows MoySklad's figure."""
        expected = {**self.source_figures(store), **(gone or {})}
        shop = self.shop_figures()
        assert {k: shop[k] for k in expected if k in shop} == {
            k: v for k, v in expected.items() if k in shop}

    def ms_query(self, path: str) -> dict[str, str]:
        return next(r.query for r in self.ms.requests if path in r.path)

    def ms_paths(self) -> list[str]:
        return [r.path.rsplit("/1.2/", 1)[1] for r in self.ms.requests]

    async def stored_since(self) -> datetime:
        header = await self.state.get_value(SCOPE, "job")
        return datetime.fromisoformat(header["since"])


@pytest.fixture
async def rig(clock: FakeClock, session: aiohttp.ClientSession,
              tmp_path: Path) -> AsyncIterator[Rig]:
    shop = InSalesSimulator(clock=clock)
    ms = MoySkladSimulator(token="ms-window-token", clock=clock, clock_offset=OFFSET)
    state = await open_store(f"sqlite:///{tmp_path}/state.db", clock=clock)
    await shop.start()
    await ms.start()
    skus = [f"SKU-{i}" for i in range(10)]
    for i, sku in enumerate(skus):
        shop.add_product([{"sku": sku, "quantity": 0}], title=sku)
        ms.add_product(sku, stock=float(i + 1))
    clock.advance(3 * 3600.0)  # the catalogue was made hours ago
    r = Rig(clock, shop, ms, state, session)
    r.build()
    await r.run()  # the first run reads everything
    r.assert_shop_equals_source()
    yield r
    await ms.stop()
    await shop.stop()
    await state.close()


def msk(epoch: float) -> str:
    return msk_text(datetime.fromtimestamp(epoch, UTC))


async def test_a_quiet_minute_costs_two_moysklad_requests_from_moysklads_clock(rig: Rig) -> None:
    first_answer = rig.clock.time() + OFFSET  # MoySklad's clock when the first run read
    result = await rig.run()
    assert result.requests["moysklad"] == 2
    assert sorted(rig.ms_paths()) == ["entity/product", "report/stock/all/current"]
    since = msk(first_answer - OVERLAP)
    assert rig.ms_query("report/stock")["changedSince"] == since
    assert rig.ms_query("entity/product")["filter"] == (
        f"updated>={since};archived=true;archived=false")
    assert result.details["source_mode"] == "window"
    assert result.counts.written == 0
    # The next window starts from MoySklad's Date of this run, not from our clock.
    assert await rig.stored_since() == datetime.fromtimestamp(rig.clock.time() + OFFSET, UTC)


async def test_a_change_reaches_the_shop_on_the_next_run(rig: Rig) -> None:
    rig.ms.set_stock(rig.ms.find("SKU-3"), 0.0)
    rig.ms.set_stock(rig.ms.find("SKU-4"), 40.0)
    result = await rig.run()
    assert result.details["source_mode"] == "window"
    assert {c.key: c.new for c in result.changes} == {"SKU-3": "0", "SKU-4": "40"}
    rig.assert_shop_equals_source()


async def test_the_zero_guard_judges_the_whole_picture(rig: Rig) -> None:
    rig.build(zero_guard=0.2)
    for sku in ("SKU-1", "SKU-2", "SKU-3"):
        rig.ms.set_stock(rig.ms.find(sku), 0.0)
    # 3 of 10 matched variants would drop to 0: the window holds 3 items, but the
    # guard counts against the whole index, as a full read would.
    rig.clock.advance(60.0)
    assert rig.job is not None
    result = await rig.job.run(RunContext(run_id="z", dry_run=False, state=rig.state,
                                          clock=rig.clock))
    assert result.status == "aborted" and "3 of 10" in result.message
    assert result.details["source_mode"] == "window"
    assert rig.shop_figures()["SKU-1"] == 2


async def test_an_item_changed_during_the_previous_run_is_read_again(rig: Rig) -> None:
    previous_read = rig.clock.time() + OFFSET
    await rig.run()
    # MoySklad recalculates stock asynchronously: a change dated 30 s before the
    # last read began reaches the report only now. The overlap reads it.
    rig.ms.set_stock(rig.ms.find("SKU-5"), 17.0, at=previous_read + 60.0 - 30.0)
    result = await rig.run()
    assert {c.key: c.new for c in result.changes} == {"SKU-5": "17"}
    rig.assert_shop_equals_source()


async def test_an_item_changed_exactly_at_the_window_boundary_is_read(rig: Rig) -> None:
    await rig.run()
    boundary = (await rig.stored_since()).timestamp() - OVERLAP
    rig.ms.set_stock(rig.ms.find("SKU-6"), 33.0, at=boundary)
    result = await rig.run()
    assert rig.ms_query("report/stock")["changedSince"] == msk(boundary)
    assert {c.key: c.new for c in result.changes} == {"SKU-6": "33"}
    rig.assert_shop_equals_source()


async def test_a_product_whose_article_changed(rig: Rig) -> None:
    rig.clock.advance(1.0)
    rig.shop.add_product([{"sku": "SKU-NEW", "quantity": 0}], title="renamed")
    pid = rig.ms.find("SKU-2")
    rig.ms.update_product(pid, article="SKU-NEW")
    result = await rig.run()
    assert result.details["source_mode"] == "window"
    assert {c.key: c.new for c in result.changes} == {"SKU-NEW": "3"}
    rig.assert_shop_equals_source()
    # The old article left the source: its variant is not written any more.
    rig.ms.set_stock(pid, 9.0)
    result = await rig.run()
    assert {c.key: c.new for c in result.changes} == {"SKU-NEW": "9"}
    assert rig.shop_figures()["SKU-2"] == 3


async def test_a_product_that_lost_its_article_leaves_the_source(rig: Rig) -> None:
    rig.ms.update_product(rig.ms.find("SKU-8"), article=None)
    result = await rig.run()
    assert result.details["source_mode"] == "window"
    assert result.details["source_products"] == 9
    assert result.changes == []


async def test_a_product_deleted_or_archived_reads_0(rig: Rig) -> None:
    rig.ms.remove_product(rig.ms.find("SKU-4"))
    rig.ms.update_product(rig.ms.find("SKU-5"), archived=True)
    result = await rig.run()
    assert result.details["source_mode"] == "window"
    assert {c.key: c.new for c in result.changes} == {"SKU-4": "0", "SKU-5": "0"}
    rig.assert_shop_equals_source(gone={"SKU-4": 0})
    # The next full read drops both; their variants stay at 0.
    rig.build(source_full_refresh="1m")
    result = await rig.run()
    assert result.details["source_mode"] == "full"
    assert result.details["source_products"] == 8
    assert result.changes == []
    assert rig.shop_figures()["SKU-4"] == 0 and rig.shop_figures()["SKU-5"] == 0


async def test_a_deleted_products_article_taken_by_a_new_one_reads_everything(
        rig: Rig) -> None:
    rig.ms.remove_product(rig.ms.find("SKU-1"))
    rig.ms.add_product("SKU-1", stock=12.0)
    result = await rig.run()
    # The window would leave SKU-1 with two holders (0 and 12): the run reads
    # everything instead, and the deleted product is gone.
    assert result.details["source_mode"] == "full"
    assert "two products" in result.details["source_full_reason"]
    assert {c.key: c.new for c in result.changes} == {"SKU-1": "12"}
    rig.assert_shop_equals_source()


async def test_a_product_back_from_the_archive_reads_everything(rig: Rig) -> None:
    pid = rig.ms.find("SKU-6")
    rig.ms.update_product(pid, archived=True)
    await rig.run()
    assert rig.shop_figures()["SKU-6"] == 0
    rig.ms.update_product(pid, archived=False)
    result = await rig.run()
    assert result.details["source_mode"] == "full"
    assert result.details["source_full_reason"] == "a product came back from the archive"
    rig.assert_shop_equals_source()
    assert rig.shop_figures()["SKU-6"] == 7


async def test_a_store_filter_and_its_change(rig: Rig) -> None:
    for sku in ("SKU-0", "SKU-9"):
        rig.ms.set_stock(rig.ms.find(sku), 5.0, store=OTHER_STORE)
    rig.build(store_id=OTHER_STORE, zero_guard=1.0)
    result = await rig.run()
    assert result.details["source_mode"] == "full"
    assert result.details["source_full_reason"] == f"store_id changed (all -> {OTHER_STORE})"
    rig.assert_shop_equals_source(store=OTHER_STORE)
    # A sale in the other store is seen; one in the default store is not this job's.
    rig.ms.set_stock(rig.ms.find("SKU-9"), 2.0, store=OTHER_STORE)
    rig.ms.set_stock(rig.ms.find("SKU-0"), 0.0, store=DEFAULT_STORE)
    result = await rig.run()
    assert result.details["source_mode"] == "window"
    assert rig.ms_query("report/stock")["filter"] == f"storeId={OTHER_STORE}"
    assert {c.key: c.new for c in result.changes} == {"SKU-9": "2"}
    rig.assert_shop_equals_source(store=OTHER_STORE)


async def test_a_changed_stock_type_reads_everything(rig: Rig) -> None:
    rig.ms.set_stock(rig.ms.find("SKU-9"), 12.0, reserve=4.0)  # quantity 8
    rig.build(stock_type="stock")
    result = await rig.run()
    assert result.details["source_full_reason"] == "stock_type changed (quantity -> stock)"
    assert rig.shop_figures()["SKU-9"] == 12


async def test_the_24_hour_limit(rig: Rig) -> None:
    rig.ms.set_stock(rig.ms.find("SKU-2"), 1.0)
    # Down for a day: a window would reach back past what MoySklad allows.
    result = await rig.run(after=24 * 3600.0 - OVERLAP)
    assert result.details["source_mode"] == "full"
    assert "24 h" in result.details["source_full_reason"]
    assert "changedSince" not in rig.ms_query("report/stock")
    rig.assert_shop_equals_source()
    # Just inside the limit, a window still does.
    rig.build(source_full_refresh="24h")
    rig.ms.set_stock(rig.ms.find("SKU-2"), 6.0)
    result = await rig.run(after=23 * 3600.0)
    assert result.details["source_mode"] == "window"
    rig.assert_shop_equals_source()


async def test_the_simulator_refuses_a_window_older_than_24_hours(rig: Rig) -> None:
    old = datetime.fromtimestamp(rig.ms.server_time() - 24 * 3600.0 - 1, UTC)
    async with rig.session.get(
            rig.ms.base_url + "/report/stock/all/current",
            params={"changedSince": msk_text(old)},
            headers={"Authorization": f"Bearer {rig.ms.token}", "Accept-Encoding": "gzip"},
    ) as resp:
        assert resp.status == 400
        assert "24" in (await resp.json())["errors"][0]["error"]


async def test_a_failed_window_fails_the_run_and_the_next_reads_everything(rig: Rig) -> None:
    rig.ms.set_stock(rig.ms.find("SKU-3"), 21.0)
    rig.ms.inject(status=500, match="report/stock", times=10)
    rig.clock.advance(60.0)
    assert rig.job is not None
    failed = await rig.job.run(RunContext(run_id="f", dry_run=False, state=rig.state,
                                          clock=rig.clock))
    assert failed.status == "failed" and failed.counts.written == 0
    assert rig.shop_figures()["SKU-3"] == 4
    rig.ms.faults.clear()
    # Another process (a replica, a restart) learns of the doubt from the store.
    rig.build()
    result = await rig.run()
    assert result.details["source_full_reason"] == "the previous changed-since window failed"
    rig.assert_shop_equals_source()
    result = await rig.run()
    assert result.details["source_mode"] == "window"


async def test_the_hourly_full_read_and_a_restart_keep_the_window(rig: Rig) -> None:
    modes = []
    for minute in range(61):
        if minute % 7 == 0:
            rig.ms.set_stock(rig.ms.find(f"SKU-{minute % 10}"), float(minute))
        result = await rig.run()
        modes.append(result.details["source_mode"])
        rig.assert_shop_equals_source()
    assert modes.count("full") == 1 and modes[59] == "full"  # an hour after the first run
    rig.build()  # a restart: the index comes from the store
    rig.ms.set_stock(rig.ms.find("SKU-1"), 77.0)
    result = await rig.run()
    assert result.details["source_mode"] == "window"
    rig.assert_shop_equals_source()


async def test_a_dry_run_writes_nothing_and_the_next_run_still_sees_the_change(
        rig: Rig) -> None:
    rig.ms.set_stock(rig.ms.find("SKU-3"), 30.0)
    rig.clock.advance(60.0)
    assert rig.job is not None
    dry = await rig.job.run(RunContext(run_id="d", dry_run=True, state=rig.state,
                                       clock=rig.clock))
    assert [(c.key, c.new, c.applied) for c in dry.changes] == [("SKU-3", "30", False)]
    assert rig.shop_figures()["SKU-3"] == 4
    result = await rig.run()
    assert {c.key: c.new for c in result.changes} == {"SKU-3": "30"}


async def test_the_safety_buffer_on_every_figure(rig: Rig) -> None:
    rig.build(safety_buffer=2)
    rig.ms.set_stock(rig.ms.find("SKU-9"), 25.0)
    result = await rig.run()
    shop = rig.shop_figures()
    assert shop["SKU-9"] == 23 and shop["SKU-0"] == 0 and shop["SKU-1"] == 0
    assert shop["SKU-5"] == 4
    assert result.details["safety_buffer"]["figures_before_after"]["SKU-9"] == [25, 23]
    assert result.details["safety_buffer"]["figures_before_after"]["SKU-1"] == [2, 0]



async def test_many_changed_products_cost_a_page_per_thousand(rig: Rig) -> None:
    for i in range(1100):
        rig.ms.add_product(f"NEW-{i}", stock=1.0)
    rig.ms.set_stock(rig.ms.find("SKU-2"), 8.0)
    result = await rig.run()
    assert result.details["source_mode"] == "window"
    assert result.details["source_products_changed"] == 1100
    assert result.requests["moysklad"] == 3  # 2 product pages + the stock report
    assert {c.key: c.new for c in result.changes} == {"SKU-2": "8"}
    rig.assert_shop_equals_source()


def test_a_minutes_cost_against_moysklads_budget() -> None:
    # December 2026: a user token's request weighs 4 units, the stock report 5;
    # MoySklad allows 45 units per 3 s, 900 a minute.
    weight = user_token_weight(datetime(2026, 12, 1, tzinfo=UTC))
    assert weight == 4.0
    assert window_units(0, weight) == 9.0  # a quiet minute: 1% of the budget
    assert window_units(1000, weight) == 9.0
    assert window_units(1001, weight) == 13.0
    assert window_units(0, weight) / (45.0 * 60 / 3) <= 0.01


async def test_a_source_index_that_cannot_be_saved_makes_the_next_run_read_everything(
        rig: Rig) -> None:
    real = rig.state.set_value
    broken = {"on": True}

    async def failing(scope: str, key: str, value: Any) -> None:
        if scope == SCOPE and broken["on"]:
            raise OSError("disk full")
        await real(scope, key, value)

    rig.state.set_value = failing  # type: ignore[method-assign]
    rig.ms.set_stock(rig.ms.find("SKU-3"), 13.0)
    result = await rig.run()  # the figures read are right: the run writes them
    assert {c.key: c.new for c in result.changes} == {"SKU-3": "13"}
    assert "disk full" in result.details["source_index_error"]
    broken["on"] = False
    rig.ms.set_stock(rig.ms.find("SKU-4"), 14.0)
    result = await rig.run()
    assert result.details["source_full_reason"] == "the source index could not be saved"
    rig.assert_shop_equals_source()


async def test_windows_go_to_a_journal_and_a_restart_replays_it(rig: Rig) -> None:
    items_written = []
    real = rig.state.set_value

    async def counting(scope: str, key: str, value: Any) -> None:
        if scope == SCOPE and key.endswith(ITEMS_SUFFIX):
            items_written.append(key)
        await real(scope, key, value)

    rig.state.set_value = counting  # type: ignore[method-assign]
    rig.clock.advance(1.0)
    rig.shop.add_product([{"sku": "LATE", "quantity": 0}], title="late")
    unkeyed = rig.ms.add_product(None, stock=2.0)
    rig.ms.set_stock(rig.ms.find("SKU-1"), 11.0)
    await rig.run()
    rig.ms.set_stock(unkeyed, 9.0)  # a product without a key: its figure is kept all the same
    rig.ms.update_product(rig.ms.find("SKU-7"), archived=True)
    await rig.run()
    await rig.run()
    await rig.run()  # quiet: the windows have moved past those changes
    header = await rig.state.get_value(SCOPE, "job")
    journal = await rig.state.get_value(SCOPE, "job" + JOURNAL_SUFFIX)
    assert [e["id"] for e in journal["entries"]][-1] == header["tail"]
    assert len(journal["entries"]) == 2 and items_written == []  # quiet runs add none
    rig.build()  # a restart: the stored items plus the journal
    rig.ms.update_product(unkeyed, article="LATE")  # its stock did not move
    result = await rig.run()
    assert result.details["source_mode"] == "window"
    assert {c.key: c.new for c in result.changes} == {"LATE": "9"}
    rig.assert_shop_equals_source()
    assert rig.shop_figures()["SKU-1"] == 11 and rig.shop_figures()["SKU-7"] == 0


async def test_a_long_journal_is_folded_into_the_items(rig: Rig) -> None:
    before = await rig.state.get_value(SCOPE, "job")
    for i in range(1100):  # 1100 keys and 1100 figures: past the journal's 2000
        rig.ms.add_product(f"NEW-{i}", stock=1.0)
    await rig.run()
    header = await rig.state.get_value(SCOPE, "job")
    assert header["tail"] == "" and header["snapshot"] != before["snapshot"]
    items = await rig.state.get_value(SCOPE, "job" + ITEMS_SUFFIX)
    assert items["snapshot"] == header["snapshot"] and len(items["products"]) == 1110
    rig.build()
    rig.ms.set_stock(rig.ms.find("SKU-2"), 8.0)
    result = await rig.run()
    assert result.details["source_mode"] == "window"
    assert result.details["source_products"] == 1110
    rig.assert_shop_equals_source()


async def test_a_journal_written_ahead_of_a_failed_header_is_cut_at_the_header(
        rig: Rig) -> None:
    rig.ms.set_stock(rig.ms.find("SKU-1"), 21.0)
    await rig.run()
    real = rig.state.set_value

    async def header_fails(scope: str, key: str, value: Any) -> None:
        if scope == SCOPE and key == "job":
            raise OSError("connection lost")
        await real(scope, key, value)

    rig.state.set_value = header_fails  # type: ignore[method-assign]
    rig.ms.set_stock(rig.ms.find("SKU-2"), 22.0)
    await rig.run()
    rig.state.set_value = real  # type: ignore[method-assign]
    journal = await rig.state.get_value(SCOPE, "job" + JOURNAL_SUFFIX)
    assert len(journal["entries"]) == 2  # one ahead of the stored header
    rig.build()  # another process: its window starts where the stored header says
    rig.ms.set_stock(rig.ms.find("SKU-3"), 23.0)
    result = await rig.run()
    assert result.details["source_mode"] == "window"
    rig.assert_shop_equals_source()
