"""InSales client against the simulator: paging, cursor, batches, budget, garbage."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import orjson
import pytest

from stocksyncd.clients.insales import (
    InSalesClient,
    Product,
    Variant,
    VariantWrite,
    basic_auth,
    parse_group_update,
    parse_product,
    parse_variant,
    products_decoder,
    products_from_wire,
)
from stocksyncd.clock import FakeClock
from stocksyncd.errors import AuthError, RateLimitedError
from stocksyncd.http.ratelimit import WindowLimiter
from stocksyncd.http.retry import RetryPolicy
from stocksyncd.http.transport import Transport
from stocksyncd.simulators.insales import InSalesSimulator


@pytest.fixture
async def shop(clock: FakeClock) -> AsyncIterator[InSalesSimulator]:
    sim = InSalesSimulator(clock=clock)
    await sim.start()
    yield sim
    await sim.stop()


def make_client(sim: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock,
                *, password: str | None = None, limiter: WindowLimiter | None = None,
                retry: RetryPolicy | None = None,
                warehouses: tuple[int, ...] = ()) -> InSalesClient:
    transport = Transport(
        session, api="insales", base_url=sim.url, clock=clock, limiter=limiter,
        headers=basic_auth(sim.api_key, password or sim.password),
        **({"retry": retry} if retry else {}),
    )
    return InSalesClient(transport, warehouses=warehouses)


async def test_full_cursor_scan_reads_every_product_once(
    shop: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    shop.catalogue(1200, seed=3)
    client = make_client(shop, session, clock)
    seen: list[int] = []
    since, from_id = "1970-01-01T00:00:00.000+00:00", None
    while True:
        page = await client.products_page(updated_since=since, from_id=from_id, per_page=250)
        seen.extend(p.id for p in page.products)
        if page.raw_count < 250:
            break
        assert page.last_updated_at and page.last_id
        since, from_id = page.last_updated_at, page.last_id
    assert sorted(seen) == sorted(shop.products)
    assert len(seen) == len(set(seen))
    assert len(shop.products) > 250  # so the cursor really moved
    assert shop.count("GET") == len(shop.products) // 250 + 1


async def test_cursor_skips_items_at_since_up_to_from_id(
    shop: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    # Three products with the same updated_at (the clock does not move).
    ids = [shop.add_product([{"sku": f"S{i}", "quantity": i}]) for i in range(3)]
    client = make_client(shop, session, clock)
    stamp = shop.products[ids[0]]["updated_at"]
    page = await client.products_page(updated_since=stamp, from_id=ids[0])
    assert [p.id for p in page.products] == ids[1:]
    clock.advance(10)
    shop.set_quantity(shop.products[ids[0]]["variants"][0]["id"], 99)
    page = await client.products_page(updated_since=stamp, from_id=ids[2])
    assert [p.id for p in page.products] == [ids[0]]  # moved to the end by its new updated_at
    assert page.products[0].variants[0].quantity == 99


class SlowNetwork(FakeClock):
    """Our side's clock, on which every answer takes 1.5 s to come back."""

    def monotonic(self) -> float:
        self.advance(1.5)  # between any two readings: sending and receiving
        return super().monotonic()


async def test_a_page_says_when_insales_can_have_begun_reading_it(
    shop: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """The Date header less the round trip: InSales read the page no earlier than that."""
    shop.add_product([{"sku": "S", "quantity": 1}])
    clock.advance(3600.25)
    client = make_client(shop, session, SlowNetwork())  # type: ignore[arg-type]
    page = await client.products_page()
    # Date says 01:00:00 (whole seconds); the answer took 1.5 s.
    assert page.server_time == "2026-01-01T00:59:58.500+00:00"


async def test_page_mode_and_per_page_cap(
    shop: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    for i in range(300):
        shop.add_product([{"sku": f"S{i}"}])
    client = make_client(shop, session, clock)
    first = await client.products_page(page=1, per_page=1000)
    second = await client.products_page(page=2, per_page=1000)
    assert first.raw_count == 250 and second.raw_count == 50
    assert shop.requests[0].query["per_page"] == "250"


async def test_deleted_products_go_to_the_trash(
    shop: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    kept = shop.add_product([{"sku": "K", "quantity": 1}])
    gone = shop.add_product([{"sku": "G", "quantity": 1}])
    vid = shop.products[gone]["variants"][0]["id"]
    clock.advance(600)
    shop.delete_product(gone)
    client = make_client(shop, session, clock)
    listed = await client.products_page()
    assert [p.id for p in listed.products] == [kept]
    # The trash, with the moment of deletion as updated_at; a window before it finds it.
    trash = await client.products_page(updated_since="2026-01-01T00:09:59.000+00:00",
                                       deleted=True)
    assert trash.deleted == [gone] and trash.products == []
    with_trash = await client.products_page(updated_since="2026-01-01T00:09:59.000+00:00",
                                            with_deleted=True)
    assert with_trash.deleted == [gone] and with_trash.last_id == gone
    assert with_trash.last_updated_at == "2026-01-01T03:10:00.000+03:00"
    later = await client.products_page(updated_since="2026-01-01T00:10:01.000+00:00",
                                       deleted=True)
    assert later.raw_count == 0
    both = await session.get(f"{shop.url}/admin/products.json",
                             params={"with_deleted": "true"},
                             headers=basic_auth(shop.api_key, shop.password))
    body = await both.json()
    assert [(p["id"], p["archived"]) for p in body] == [(kept, False), (gone, True)]
    assert await client.product(gone) is None  # trashed
    assert await client.product(987654) is None  # unknown: 404
    assert [v.sku for v in (await client.product(kept) or Product(0, "", ())).variants] == ["K"]
    # A deleted product's variants are taken by the queue and never applied...
    result = await client.variants_group_update([VariantWrite(vid, "quantity", 3)])
    assert result.ok == [vid] and result.body == []
    # ...unless the account answers per variant, refusing them.
    shop.reject_trashed = True
    result = await client.variants_group_update([VariantWrite(vid, "quantity", 3)])
    assert result.failed == {vid: f"product {gone} is deleted"}
    shop.restore_product(gone)
    assert [p.id for p in (await client.products_page()).products] == [kept, gone]


async def test_parses_variants_and_warehouses(
    shop: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    pid = shop.add_product([
        {"sku": " A-1 ", "barcode": 4601234567890, "quantity": 7,
         "quantity_at_warehouse0": "3.0", "quantity_at_warehouse1": 4.0},
        {"sku": None, "barcode": None, "quantity": None},
    ])
    client = make_client(shop, session, clock, warehouses=(0, 1))
    page = await client.products_page()
    (product,) = page.products
    assert product.id == pid and product.updated_at
    a, b = product.variants
    assert (a.sku, a.barcode, a.quantity) == ("A-1", "4601234567890", 7.0)
    assert a.warehouses == {0: 3.0, 1: 4.0}
    # Warehouses nobody asked for are not read.
    (only,) = (await make_client(shop, session, clock, warehouses=(1,)).products_page()).products
    assert only.variants[0].warehouses == {1: 4.0}
    assert a.stock(1) == 4.0 and a.stock(None) == 7.0 and a.stock(5) is None
    assert (b.sku, b.barcode, b.quantity) == (None, None, None)
    assert page.problems == []


def test_garbage_items_are_reported_not_fatal() -> None:
    problems: list[str] = []
    product = parse_product({"id": 1, "updated_at": "x", "variants": [
        {"id": None, "sku": "A"},
        {"id": 5, "quantity": "lots", "quantity_at_warehouse0": [1]},
        "nonsense",
        {"id": "6", "quantity": 2},
    ]}, problems)
    assert product is not None
    assert [v.id for v in product.variants] == [5, 6]
    assert product.variants[0].quantity is None and product.variants[0].warehouses == {0: None}
    assert len(problems) == 4
    assert parse_product({"title": "no id"}, problems) is None
    assert parse_product(["not", "a", "product"], problems) is None
    empty = parse_product({"id": 2, "variants": None}, problems)
    assert empty is not None and empty.variants == ()
    assert any("without a valid id" in p for p in problems)


def test_variants_of_different_layouts_keep_their_own_warehouses() -> None:
    # Field layouts are remembered per set of names: a variant must never
    # borrow another layout's warehouses.
    problems: list[str] = []
    product = parse_product({"id": 9, "variants": [
        {"id": 1, "quantity": 1, "quantity_at_warehouse2": 5},
        {"id": 2, "quantity": 1},
        {"id": 3, "quantity": 1, "quantity_at_warehouse2": 6},
        {"id": 4, "quantity_at_warehouse7": 8, "quantity": 1.5, "sku": "", "barcode": "  "},
        {"id": True, "quantity": 1},
        {"id": 6, "product_id": 0, "quantity": True, "sku": 12.0},
    ]}, problems)
    assert product is not None
    by_id = {v.id: v for v in product.variants}
    assert by_id[1].warehouses == {2: 5.0} and by_id[3].warehouses == {2: 6.0}
    assert by_id[2].warehouses == {}
    assert by_id[4].warehouses == {7: 8.0} and by_id[4].quantity == 1.5
    assert (by_id[4].sku, by_id[4].barcode) == (None, None)
    assert set(by_id) == {1, 2, 3, 4, 6}  # a boolean is not an id
    assert by_id[6].product_id == 9 and by_id[6].quantity is None and by_id[6].sku == "12"
    assert len(problems) == 2


async def test_garbage_on_the_wire_does_not_crash(
    shop: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    shop.inject(status=200, body=[{"id": 1, "updated_at": "2026-01-01T00:00:00.000+03:00",
                                   "variants": [{"id": 10, "quantity": "abc"}, {"sku": "x"}]},
                                  {"no": "id"}], match="products.json")
    client = make_client(shop, session, clock)
    page = await client.products_page()
    assert page.raw_count == 2 and [p.id for p in page.products] == [1]
    assert len(page.problems) == 3


async def test_group_update_is_queued_and_answers_an_empty_list(
    shop: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    shop.queue_delay = 30.0
    pid = shop.add_product([{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}])
    va, vb = (v["id"] for v in shop.products[pid]["variants"])
    before = shop.products[pid]["updated_at"]
    clock.advance(5)
    client = make_client(shop, session, clock)
    result = await client.variants_group_update([
        VariantWrite(va, "quantity", 10), VariantWrite(999, "quantity", 3),
        VariantWrite(vb, "quantity_at_warehouse0", 4),
    ])
    assert result.body == [] and result.ok == [va, 999, vb] and result.failed == {}
    # Taken, not applied: a read shows the old figures until the queue runs.
    assert shop.variant(va)["quantity"] == 1
    assert [v.quantity for v in (await client.products_page()).products[0].variants] == [1, 2]
    clock.advance(30)
    shop.process_queue()
    assert shop.variant(va)["quantity"] == 10
    assert shop.variant(vb)["quantity_at_warehouse0"] == 4
    assert shop.products[pid]["updated_at"] != before
    assert shop.requests[-2].body == {"variants": [
        {"id": va, "quantity": 10}, {"id": 999, "quantity": 3},
        {"id": vb, "quantity_at_warehouse0": 4}]}


async def test_group_update_limit_is_100(
    shop: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    client = make_client(shop, session, clock)
    with pytest.raises(ValueError, match="at most 100"):
        await client.variants_group_update([VariantWrite(i, "quantity", 1) for i in range(101)])
    assert shop.count("PUT") == 0
    # The simulator refuses oversized batches itself, too.
    async with session.put(shop.url + "/admin/products/variants_group_update.json",
                           json={"variants": [{"id": i, "quantity": 1} for i in range(101)]},
                           headers=basic_auth(shop.api_key, shop.password)) as resp:
        assert resp.status == 422


async def test_the_queue_can_drop_an_item_silently(
    shop: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    pid = shop.add_product([{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}])
    va, vb = (v["id"] for v in shop.products[pid]["variants"])
    shop.drop_queued = 1
    client = make_client(shop, session, clock)
    result = await client.variants_group_update([VariantWrite(va, "quantity", 10),
                                                 VariantWrite(vb, "quantity", 20)])
    assert result.ok == [va, vb]
    assert (shop.variant(va)["quantity"], shop.variant(vb)["quantity"]) == (1, 20)
    assert shop.dropped == [va]


def test_group_update_answer_shapes() -> None:
    assert parse_group_update({"weird": True}, [1, 2]).ok == [1, 2]
    assert parse_group_update(None, [1]).ok == [1]
    res = parse_group_update([{"id": 1, "status": "ok"}, {"id": 2, "status": "error",
                                                          "errors": ["bad"]}], [1, 2, 3])
    assert res.ok == [1, 3] and res.failed == {2: "bad"}


async def test_bad_credentials_are_fatal(
    shop: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    client = make_client(shop, session, clock, password="wrong")
    with pytest.raises(AuthError):
        await client.products_page()
    assert shop.count("GET") == 1  # not retried


async def test_budget_exhaustion_is_survived_by_waiting_retry_after(
    shop: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    shop.limit = 5
    shop.add_product([{"sku": "A"}])
    client = make_client(shop, session, clock)
    for _ in range(5):
        await client.products_page()
    assert shop.requests[-1].status == 200
    await client.products_page()  # 6th: 503 + Retry-After, then waits out the window
    assert shop.refused == 1
    assert clock.slept and clock.slept[0] >= 300 - 1
    assert [r.status for r in shop.requests[-2:]] == [503, 200]


async def test_429_and_503_storm_with_retry_after(
    shop: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    shop.add_product([{"sku": "A"}])
    shop.inject(status=429, headers={"Retry-After": "7"}, times=2)
    shop.inject(status=503, headers={"Retry-After": "11"}, times=1)
    client = make_client(shop, session, clock)
    page = await client.products_page()
    assert len(page.products) == 1
    assert [round(s) for s in clock.slept[:3]] == [7, 7, 11]


async def test_storm_longer_than_the_retries_raises(
    shop: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    shop.inject(status=503, headers={"Retry-After": "1"}, times=50)
    client = make_client(shop, session, clock, retry=RetryPolicy(attempts=3))
    with pytest.raises(RateLimitedError):
        await client.products_page()
    assert shop.count("GET") == 3


async def test_limiter_learns_usage_from_header(
    shop: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    shop.used = 0
    limiter = WindowLimiter(500, 300, clock=clock, usage_header="API-Usage-Limit")
    client = make_client(shop, session, clock, limiter=limiter)
    shop.limit = 500
    await client.products_page()
    shop.used = 120  # another application process spent budget meanwhile
    await client.products_page()
    assert limiter.used >= 121


def test_the_products_decoder_reads_only_what_a_stock_job_needs() -> None:
    body = (b'[{"id": 1, "title": "Bolt", "description": "<p>long</p>", "updated_at": "t",'
            b' "images": [{"url": "x"}], "variants": [{"id": 5, "product_id": 1, "sku": "A",'
            b' "barcode": null, "quantity": 2, "price": "9.5", "quantity_at_warehouse0": 1,'
            b' "quantity_at_warehouse3": 4, "option_values": [{"id": 1}]}]}]')
    typed = products_decoder((3,))(body)
    assert all(isinstance(item, msgspec.Struct) for item in typed)
    # The title is read (reports name the product); descriptions and prices are not.
    assert not hasattr(typed[0], "description") and not hasattr(typed[0].variants[0], "price")
    assert products_from_wire(typed, (3,)) == [
        Product(1, "t", (Variant(5, 1, "A", None, 2.0, {3: 4.0}),), "Bolt")]
    # Any other shape is parsed in full, for the parsers to report item by item.
    odd = b'[{"id": 1, "variants": ["nonsense", {"id": 2, "extra": 1}]}]'
    assert products_decoder()(odd) == [{"id": 1, "variants": ["nonsense", {"id": 2, "extra": 1}]}]
    assert products_decoder()(b'{"errors": "x"}') == {"errors": "x"}
    with pytest.raises(ValueError, match="truncated"):
        products_decoder()(body[:50])


@pytest.mark.parametrize(("variant", "typed"), [
    ({"id": 1, "sku": " A ", "barcode": "", "quantity": "7.0"}, True),
    ({"id": 1, "sku": 123, "barcode": 4.6e12}, True),
    ({"id": "9", "product_id": 0, "quantity": 3}, False),  # strict decoding: no coercion
    ({"id": 1, "quantity_at_warehouse0": 3, "quantity_at_warehouse1": "x"}, True),
    ({"id": 1, "quantity_at_warehouse0": None}, True),
    ({"id": 1}, True),
    ({"id": 1, "sku": True}, False),
    ({"id": 1, "quantity": "nan"}, False),
    ({"id": 1, "quantity": True}, False),
    ({"id": 1, "quantity": 1e300}, False),
    ({"id": 1, "quantity_at_warehouse0": "many"}, False),
    ({"id": None}, False),
    # Text Decimal() reads but no plain decimal is: unreadable, never another number.
    ({"id": 1, "quantity": "1_000"}, False),
    ({"id": 1, "quantity": "\u0661\u0662"}, False),
    ({"id": 1, "quantity": "1e3"}, False),
    ({"id": 1, "quantity_at_warehouse0": "1000000000"}, False),
    ({"id": 1, "quantity": 1e9}, False),
    ({"id": 1, "quantity": "-12.50"}, True),
])
def test_typed_decoding_reads_as_the_parsers_do(variant: dict[str, Any], typed: bool) -> None:
    body = orjson.dumps([{"id": 7, "updated_at": None, "variants": [variant]},
                         {"id": 8, "updated_at": "u", "variants": []}])
    decoded = products_decoder((0,))(body)
    assert isinstance(decoded[0], msgspec.Struct) is typed
    problems: list[str] = []
    # The parsers on the whole answer, with only warehouse 0 in it (as configured).
    whole = orjson.loads(body)
    for v in whole[0]["variants"]:
        v.pop("quantity_at_warehouse1", None)
    expected = [p for raw in whole if (p := parse_product(raw, problems)) is not None]
    if typed:
        assert products_from_wire(decoded, (0,)) == expected and not problems
    else:
        assert [parse_product(raw, []) for raw in decoded] == expected


@pytest.mark.parametrize("raw_id", ["\u0661\u0662", "\u00b2", 0, -5, 2**63, "9" * 30, 12.0])
def test_a_variant_id_is_a_positive_ascii_integer_below_2_63(raw_id: object) -> None:
    # "١٢".isdigit() is True: such an id was read as 12, a write to another variant.
    body = json.dumps([{"id": 7, "updated_at": "u",
                        "variants": [{"id": raw_id, "sku": "A", "quantity": 1}]}]).encode()
    decoded = products_decoder()(body)
    problems: list[str] = []
    products = [p for raw in decoded if (p := parse_product(raw, problems)) is not None]
    assert products[0].variants == () and "variant without a valid id" in problems[0]


async def test_budget_counts_others_use_even_when_ours_is_higher(
    shop: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """3 of 10 already used by other apps: we send 7 more, never an eleventh into a 503."""
    shop.limit, shop.used = 10, 0
    limiter = WindowLimiter(10, 300, concurrency=4, clock=clock, usage_header="API-Usage-Limit")
    client = make_client(shop, session, clock, limiter=limiter)
    await client.products_page()
    shop.used += 3  # other applications, while our count is already 1
    await asyncio.gather(*(client.products_page() for _ in range(9)))
    assert shop.refused == 0
    assert shop.count("GET") == 10  # 6 more in the first window, the rest after it
    assert limiter.waited > 0


async def test_budget_is_the_servers_figure_plus_what_we_sent_since(clock: FakeClock) -> None:
    limiter = WindowLimiter(10, 300, clock=clock, usage_header="API-Usage-Limit")
    async with limiter.slot():
        pass
    limiter.observe({"API-Usage-Limit": "6/10"})
    assert limiter.used == 6  # the server's figure, although we sent 1
    async with limiter.slot(), limiter.slot():
        # Both of ours are unanswered: the server may not have counted them yet.
        limiter.observe({"API-Usage-Limit": "7/10"})
        assert limiter.used == 9
    clock.advance(301)
    assert limiter.used == 0
    limiter.observe({"API-Usage-Limit": "2/10"})
    assert limiter.used == 2


FIXTURES = Path(__file__).parent / "fixtures" / "insales"


def _fixture(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


def test_every_insales_fixture_has_a_parsing_test() -> None:
    tested = {"docs_product_create_201_913.json", "docs_product_options_985.json",
              "docs_variant_update_200_2176487279.json", "docs_variants_group_update_200.json",
              "webhook_products_update_408696716.json"}
    assert {p.name for p in FIXTURES.glob("*.json")} == tested


def test_fixture_product_create_warehouse_figure_as_a_string() -> None:
    problems: list[str] = []
    product = parse_product(_fixture("docs_product_create_201_913.json"), problems)
    assert problems == []
    assert product == Product(913, "", (
        Variant(2176487279, 913, "DOCS-SIMPLE", "4600000000017", 3.0, {0: 3.0}),),
        "docs-api-простой")


def test_fixture_product_options_without_quantity() -> None:
    problems: list[str] = []
    product = parse_product(_fixture("docs_product_options_985.json"), problems)
    assert problems == []
    assert product == Product(985, "", (Variant(2176487289, 985, "DOCS-M2", None, None),))


def test_fixture_variant_update() -> None:
    problems: list[str] = []
    variant = parse_variant(_fixture("docs_variant_update_200_2176487279.json"), 913, problems)
    assert problems == []
    assert variant == Variant(2176487279, 913, "DOCS-SIMPLE-2", "4600000000018", 3.0, {0: 3.0})


def test_fixture_group_update_is_queued() -> None:
    result = parse_group_update(_fixture("docs_variants_group_update_200.json"), [7, 8])
    assert result.ok == [7, 8] and result.failed == {} and result.body == []


def test_fixture_webhook_products_both_parsers_agree() -> None:
    raw = (FIXTURES / "webhook_products_update_408696716.json").read_bytes()
    expected = [Product(408696716, "2023-11-22T14:24:30.000+03:00", (
        Variant(680650527, 408696716, "testArticle", None, None, {0: 0.0}),), "TEST")]
    assert products_from_wire(products_decoder((0,))(raw), (0,)) == expected
    problems: list[str] = []
    assert [parse_product(p, problems) for p in orjson.loads(raw)] == expected
    assert problems == []
