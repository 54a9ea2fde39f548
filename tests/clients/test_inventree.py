"""InvenTree client against the InvenTree simulator."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import aiohttp
import pytest

from stocksyncd.clients.inventree import (
    InvenTreeClient,
    InvenTreeValidationError,
    fit_link,
    pick_next_pk,
    server_root,
)
from stocksyncd.clients.inventree.models import to_decimal
from stocksyncd.clock import FakeClock
from stocksyncd.errors import AuthError, NotFoundError, TransientError
from stocksyncd.http.retry import RetryPolicy
from stocksyncd.http.transport import Transport
from stocksyncd.simulators.inventree import DEFAULT_TOKEN, InvenTreeSimulator

Make = Callable[..., Awaitable[tuple[InvenTreeSimulator, InvenTreeClient]]]


@pytest.fixture
async def make(session: aiohttp.ClientSession, clock: FakeClock) -> AsyncIterator[Make]:
    started: list[InvenTreeSimulator] = []

    async def build(
        sim: InvenTreeSimulator | None = None, *, token: str = DEFAULT_TOKEN, page_size: int = 7,
        api_version: int = 534,
    ) -> tuple[InvenTreeSimulator, InvenTreeClient]:
        sim = sim or InvenTreeSimulator(api_version=api_version)
        url = await sim.start()
        started.append(sim)
        transport = Transport(
            session, api="inventree", base_url=server_root(url + "/api/"), clock=clock,
            headers=InvenTreeClient.headers(token), retry=RetryPolicy(attempts=3),
        )
        return sim, InvenTreeClient(transport, page_size=page_size)

    yield build
    for sim in started:
        await sim.stop()


async def test_api_version_is_read_once(make: Make) -> None:
    sim, client = await make(api_version=435)
    assert await client.api_version() == 435
    assert await client.api_version() == 435
    assert sim.count("GET", "/api/") == sum(1 for r in sim.requests if r.path == "/api/") == 1


async def test_parts_walk_all_pages_with_filters(make: Make) -> None:
    sim, client = await make(InvenTreeSimulator.small_catalogue(7))
    expected = sorted(
        pk for pk, p in sim.parts.items() if p["active"] and p["purchaseable"]
    )
    assert 10 < len(expected) < len(sim.parts)  # the filters really filter
    assert await client.part_pks() == expected
    pages = [r for r in sim.requests if r.path == "/api/part/"]
    assert len(pages) == -(-len(expected) // 7)
    assert all(r.query["active"] == "true" and r.query["purchaseable"] == "true" for r in pages)
    assert [int(r.query["offset"]) for r in pages] == list(range(0, 7 * len(pages), 7))
    every = [p async for p in client.iter_parts(active=None, purchaseable=None)]
    assert len(every) == len(sim.parts)
    assert all(p.notes is None for p in every)  # list answers carry no notes


async def test_bare_array_answer_is_accepted(make: Make) -> None:
    sim, client = await make()
    sim.add_part("NE555P", pk=5)
    sim.add_part("LM358", pk=9)
    sim.inject(status=200, body=[{"pk": 9, "name": "LM358"}, {"pk": 5, "name": "NE555P"}],
               match="/api/part/", method="GET")
    assert await client.part_pks() == [5, 9]
    assert sim.count("GET", "/api/part/") == 1  # no second page asked for


async def test_next_part_pk_wraps_around(make: Make) -> None:
    sim, client = await make()
    for pk in (4, 10, 17):
        sim.add_part(f"P{pk}", pk=pk)
    sim.add_part("off", pk=12, active=False)
    assert await client.next_part_pk(5) == 10
    assert await client.next_part_pk(11) == 17
    assert await client.next_part_pk(18) == 4
    assert pick_next_pk([], 3) is None


async def test_part_detail_has_notes_and_unknown_part_is_not_found(make: Make) -> None:
    sim, client = await make()
    sim.add_part("NE555P", pk=3, notes="hello", category=None)
    part = await client.get_part(3)
    assert (part.name, part.notes, part.category) == ("NE555P", "hello", None)
    with pytest.raises(NotFoundError):
        await client.get_part(99)


@pytest.mark.parametrize(
    ("version", "good", "bad"),
    [(435, "/api/part/category/2/metadata/", "/api/metadata/partcategory/2/"),
     (436, "/api/metadata/partcategory/2/", "/api/part/category/2/metadata/")],
)
async def test_metadata_url_follows_api_version(
    make: Make, session: aiohttp.ClientSession, version: int, good: str, bad: str
) -> None:
    sim, client = await make(api_version=version)
    sim.add_category("Root", pk=1)
    sim.add_category("Old", pk=2, parent=1, metadata={"supplier_sync": {"exclude": "True"}})
    sim.add_part("X", pk=8, category=2)
    assert await client.category_metadata(2) == {"supplier_sync": {"exclude": "True"}}
    assert await client.category_metadata(1) == {}  # null metadata means no flags
    assert await client.part_metadata(8) == {}
    assert sim.count("GET", good) == 1
    # The other URL form does not exist on this server version.
    headers = InvenTreeClient.headers(DEFAULT_TOKEN)
    async with session.get(sim.url + bad, headers=headers) as resp:
        assert resp.status == 404
    merged = await client.set_metadata("part", 8, {"a": 1})
    assert merged == {"a": 1}
    assert await client.set_metadata("part", 8, {"b": 2}) == {"a": 1, "b": 2}
    assert await client.set_metadata("part", 8, {"c": 3}, replace=True) == {"c": 3}


async def test_category_ancestors_are_cached_per_run(make: Make) -> None:
    sim, client = await make()
    sim.add_category("Electronics", pk=1)
    sim.add_category("ICs", pk=4, parent=1)
    sim.add_category("Timers", pk=9, parent=4)
    chain = await client.category_and_ancestors(9)
    assert [c.pk for c in chain] == [9, 4, 1]
    assert chain[0].pathstring == "Electronics/ICs/Timers"
    await client.category_and_ancestors(4)
    assert sim.count("GET", "/api/part/category/") == 3
    client.clear_cache()
    await client.get_category(4)
    assert sim.count("GET", "/api/part/category/") == 4


async def test_company_and_supplier_parts(make: Make) -> None:
    sim, client = await make()
    mouser = sim.add_company("Mouser Electronics", pk=3)
    other = sim.add_company("DigiKey", pk=4)
    ti = sim.add_company("TI", pk=5, is_supplier=False, is_manufacturer=True)
    part = sim.add_part("NE555P", pk=17)
    mp = sim.add_manufacturer_part(part["pk"], ti["pk"], "NE555P")
    sim.add_supplier_part(part=17, supplier=other["pk"], SKU="296-NE555P-ND")
    company = await client.get_company(3)
    assert (company.name, company.is_supplier) == ("Mouser Electronics", True)
    assert [c.pk for c in await client.companies(is_supplier=True)] == [3, 4]
    assert await client.supplier_parts(part=17, supplier=mouser["pk"]) == []

    [maker_part] = await client.manufacturer_parts(part=17)
    created = await client.create_supplier_part(
        part=17, supplier=3, sku="595-NE555P", manufacturer_part=maker_part.pk,
        link="https://www.mouser.com/ProductDetail/NE555P?qs=" + "x" * 3000,
        note="Active lifecycle " * 20, packaging="Tube",
    )
    assert created.mpn == mp["MPN"] == "NE555P"
    assert created.link == "https://www.mouser.com/ProductDetail/NE555P"  # query dropped
    assert created.note is not None and len(created.note) == 100
    [found] = await client.supplier_parts(part=17, supplier=3)
    assert found == created

    updated = await client.update_supplier_part(
        created.pk, {"note": "End of Life", "available": Decimal(1234)}
    )
    assert (updated.note, updated.packaging, updated.available) == (
        "End of Life", "Tube", Decimal(1234)
    )
    assert updated.availability_updated is not None
    patch = [r for r in sim.requests if r.method == "PATCH"][-1]
    assert patch.body == {"note": "End of Life", "available": 1234}  # only what changed


async def test_duplicate_supplier_part_is_a_clear_validation_error(make: Make) -> None:
    sim, client = await make()
    sim.add_company("Mouser", pk=3)
    sim.add_part("NE555P", pk=17)
    await client.create_supplier_part(part=17, supplier=3, sku="595-NE555P")
    with pytest.raises(InvenTreeValidationError) as info:
        await client.create_supplier_part(part=17, supplier=3, sku="595-NE555P")
    assert info.value.is_duplicate
    assert "must make a unique set" in str(info.value)
    with pytest.raises(InvenTreeValidationError) as info:
        await client.create_supplier_part(part=17, supplier=99, sku="X")
    assert not info.value.is_duplicate
    assert "supplier" in info.value.fields
    assert 'supplier: Invalid pk "99"' in str(info.value)


async def test_price_breaks_replaced_by_delete_and_create(make: Make) -> None:
    sim, client = await make()
    sim.add_company("Mouser", pk=3)
    sim.add_part("NE555P", pk=17)
    sp = sim.add_supplier_part(part=17, supplier=3, SKU="595-NE555P")
    sim.add_price_break(sp["pk"], 10, Decimal("0.80"))
    sim.add_price_break(sp["pk"], 1, Decimal("1.00"), currency="EUR")
    old = await client.price_breaks(sp["pk"])
    assert [(b.quantity, b.price, b.price_currency) for b in old] == [
        (Decimal(1), Decimal("1.00"), "EUR"), (Decimal(10), Decimal("0.80"), "USD"),
    ]
    for b in old:
        await client.delete_price_break(b.pk)
    assert sim.price_breaks == {}
    new = await client.create_price_break(sp["pk"], 100, Decimal("0.27"), "USD")
    assert (new.part, new.quantity, new.price, new.price_currency) == (
        sp["pk"], Decimal(100), Decimal("0.27"), "USD"
    )
    post = [r for r in sim.requests if r.method == "POST"][-1]
    assert post.body == {"part": sp["pk"], "quantity": 100, "price": "0.27",
                         "price_currency": "USD"}
    with pytest.raises(InvenTreeValidationError) as info:
        await client.create_price_break(sp["pk"], 100, Decimal("0.30"), "USD")
    assert info.value.is_duplicate
    with pytest.raises(InvenTreeValidationError) as info:
        await client.create_price_break(sp["pk"], 5, Decimal("0.30"), "XYZ")
    assert "price_currency" in info.value.fields


async def test_accepted_currencies_come_from_the_options_metadata(make: Make) -> None:
    sim, client = await make(InvenTreeSimulator(currencies=("EUR", "USD", "CHF")))
    assert await client.accepted_currencies() == frozenset({"EUR", "USD", "CHF"})
    assert [r.method for r in sim.requests if "price-break" in r.path] == ["OPTIONS"]
    # A token without the add permission sees no POST actions: the server does not say.
    sim.inject(status=200, body={"name": "Supplier Price Break List", "actions": {}})
    assert await client.accepted_currencies() is None
    sim.inject(status=200, body={"actions": {"POST": {"price_currency": {
        "type": "choice", "choices": [{"value": "usd"}, {"value": None}, "EUR"]}}}})
    assert await client.accepted_currencies() == frozenset({"USD"})


async def test_a_price_break_is_rewritten_in_place(make: Make) -> None:
    sim, client = await make()
    sim.add_company("Mouser", pk=3)
    sim.add_part("NE555P", pk=17)
    sp = sim.add_supplier_part(part=17, supplier=3, SKU="595-NE555P")
    row = sim.add_price_break(sp["pk"], 10, Decimal("0.80"))
    new = await client.update_price_break(row["pk"], Decimal("0.75"), "EUR")
    assert (new.pk, new.quantity, new.price, new.price_currency) == (
        row["pk"], Decimal(10), Decimal("0.75"), "EUR")
    patch = [r for r in sim.requests if r.method == "PATCH"][-1]
    assert patch.body == {"price": "0.75", "price_currency": "EUR"}
    back = await client.update_price_break(row["pk"], None, None)
    assert back.price is None and back.price_currency == "EUR"


async def test_missing_or_wrong_token_is_an_auth_error(make: Make) -> None:
    sim, client = await make(token="wrong")
    with pytest.raises(AuthError) as info:
        await client.get_company(1)
    assert info.value.status == 401 and "Invalid token." in str(info.value)
    assert sim.count("GET", "/api/company/") == 1  # not retried
    sim.readonly_tokens.add("wrong")
    with pytest.raises(AuthError) as info:
        await client.get_company(1)
    assert info.value.status == 403 and "permission" in str(info.value)


async def test_server_errors_are_retried(make: Make, clock: FakeClock) -> None:
    sim, client = await make()
    sim.add_company("Mouser", pk=3)
    sim.inject(status=500, body="<html>oops</html>", match="/api/company/", times=2)
    assert (await client.get_company(3)).name == "Mouser"
    assert sim.count("GET", "/api/company/3/") == 3
    assert len(clock.slept) == 2
    sim.inject(status=502, match="/api/company/", times=3)
    with pytest.raises(TransientError):
        await client.get_company(3)


async def test_token_endpoint_follows_version(
    session: aiohttp.ClientSession, make: Make
) -> None:
    sim, _ = await make(api_version=490)
    sim.users["admin"] = "pw"
    auth = {"Authorization": "Basic " + base64.b64encode(b"admin:pw").decode()}
    async with session.get(sim.url + "/api/user/token/", headers=auth) as resp:
        assert resp.status == 404
    async with session.get(sim.url + "/api/user/me/token/", headers=auth) as resp:
        token = (await resp.json())["token"]
    assert token in sim.tokens


async def test_small_catalogue_lines_up_with_mouser_parts() -> None:
    pairs = [("595-NE555P", "NE555P"), ("512-FOO1", "FOO1"), ("N/A", "BAR2")]
    sim = InvenTreeSimulator.small_catalogue(3, mouser_parts=pairs)
    again = InvenTreeSimulator.small_catalogue(3, mouser_parts=pairs)
    assert sim.parts == again.parts  # deterministic
    assert len(sim.parts) == 30
    names = {p["name"] for p in sim.parts.values()}
    assert {"NE555P", "FOO1", "BAR2"} <= names
    skus = {s["SKU"] for s in sim.supplier_parts.values() if s["supplier"] == sim.mouser_supplier}
    assert 8 <= len(skus) <= 15
    assert sim.metadata[("partcategory", 4)] == {"supplier_sync": {"exclude": "True"}}
    assert any(not p["active"] for p in sim.parts.values())


def test_fit_link_never_cuts_a_url() -> None:
    assert fit_link("https://a.b/c?qs=1", 100) == "https://a.b/c?qs=1"
    assert fit_link("https://a.b/c?qs=" + "1" * 300, 200) == "https://a.b/c"
    assert fit_link("https://a.b/" + "c" * 300, 200) is None


async def test_simulator_sends_bare_array_without_limit(
    make: Make, session: aiohttp.ClientSession
) -> None:
    sim, _ = await make()
    sim.add_part("B", pk=2)
    sim.add_part("A", pk=1)
    headers = InvenTreeClient.headers(DEFAULT_TOKEN)
    async with session.get(sim.url + "/api/part/", headers=headers) as resp:
        rows = await resp.json()
    assert [r["pk"] for r in rows] == [1, 2]
    async with session.get(sim.url + "/api/part/?limit=1&offset=1", headers=headers) as resp:
        page = await resp.json()
    assert (page["count"], page["next"], [r["pk"] for r in page["results"]]) == (2, None, [2])
    assert page["previous"] is not None


@pytest.mark.parametrize(("version", "ordering", "link_limit"),
                         [(300, None, 200), (482, "id", 2000)])
async def test_older_servers_get_older_rules(
    make: Make, version: int, ordering: str | None, link_limit: int
) -> None:
    sim, client = await make(api_version=version)
    sim.add_company("Mouser", pk=3)
    sim.add_part("NE555P", pk=17)
    assert await client.part_pks() == [17]
    assert sim.requests[-1].query.get("ordering") == ordering
    link = "https://www.mouser.com/ProductDetail/" + "a" * 250 + "?qs=abc"
    created = await client.create_supplier_part(part=17, supplier=3, sku="595-X", link=link)
    expected = link if len(link) <= link_limit else None
    assert created.link == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("12.50", Decimal("12.50")), (" 7 ", Decimal(7)), (3, Decimal(3)), (0.1, Decimal("0.1")),
    ("1_000", None), ("\u0661\u0662", None), ("1e3", None), ("NaN", None), (1e300, None),
    (10**20, None), (True, None), ([1], None), (None, None),
])
def test_numbers_are_read_strictly_and_bounded(raw: object, expected: Decimal | None) -> None:
    assert to_decimal(raw) == expected
