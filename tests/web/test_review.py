"""The Mouser review page: rendering per kind, delete, create supplier part."""

from __future__ import annotations

from typing import Any

from stocksyncd.state.api import ReviewEntry

from .conftest import ClientFactory, FakeMouser, FakeState, FakeView, Refused, csrf_from


def hits_entry(part_pk: int = 11, name: str = "LM358DR") -> ReviewEntry:
    return ReviewEntry("parts", part_pk, name, "hits", data={
        "count": 3,
        "hits": [
            {"mouser_pn": "595-LM358DR", "manufacturer": "Texas Instruments", "mpn": "LM358DR",
             "description": "Op Amp dual", "availability": "12000 In Stock",
             "link": "https://www.mouser.com/ProductDetail/595-LM358DR"},
            {"mouser_pn": "N/A", "manufacturer": "TI", "mpn": "LM358DR-OLD",
             "description": "obsolete", "availability": None, "link": None},
        ],
    })


async def seed(state: FakeState) -> dict[str, int]:
    ids = {
        "hits": await state.add_review(hits_entry()),
        "lifecycle": await state.add_review(ReviewEntry(
            "parts", 12, "NE555P", "lifecycle", data={"sku": "595-NE555P", "old": "Active",
                                                      "new": "Obsolete"})),
        "updated": await state.add_review(ReviewEntry(
            "parts", 12, "NE555P", "updated", data={
                "sku": "595-NE555P",
                "fields": {"availability": {"old": "10 In Stock", "new": "0"},
                           "price_breaks": ["1: 0.50 EUR", "1: 0.55 EUR"]}})),
        "unknown": await state.add_review(ReviewEntry(
            "parts", 13, "XYZ-1", "unknown_sku", data={"sku": "999-GONE"})),
        "error": await state.add_review(ReviewEntry(
            "parts", 14, "BAD-1", "error", message="Mouser answered garbage: missing Parts")),
    }
    return ids


async def test_review_page_renders_each_kind(make_client: ClientFactory, view: FakeView) -> None:
    await seed(view.state)
    client = await make_client(view)
    text = await (await client.get("/review")).text()
    for expected in (
        "LM358DR", "595-LM358DR", "Texas Instruments", "Op Amp dual", "12000 In Stock",
        "https://www.mouser.com/ProductDetail/595-LM358DR", "Mouser found <strong>3</strong>",
        "Active", "Obsolete", "lifecycle changed", "availability", "10 In Stock",
        "Mouser no longer knows SKU <code>999-GONE</code>", "Mouser answered garbage",
        'href="https://inv.example/part/12/"', "5 result(s) for 4 part(s)",
    ):
        assert expected in text, expected
    # One create button: the N/A hit is flagged and cannot be created.
    assert text.count("Create supplier part") == 1
    assert 'class="badge na">N/A<' in text
    assert "not creatable" in text
    # NE555P's two entries share one card.
    assert text.count('id="part-parts-12"') == 1


async def test_delete_removes_the_entry(make_client: ClientFactory, view: FakeView) -> None:
    ids = await seed(view.state)
    client = await make_client(view)
    token = await csrf_from(client, "/review")
    resp = await client.post(f"/review/{ids['lifecycle']}/delete", data={"csrf_token": token},
                             allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/review"
    assert ids["lifecycle"] not in view.state.reviews
    page = await (await client.get("/review")).text()
    assert f"Entry {ids['lifecycle']} deleted." in page
    assert f'id="entry-{ids["lifecycle"]}"' not in page

    again = await client.post(f"/review/{ids['lifecycle']}/delete", data={"csrf_token": token})
    assert "was already gone" in await again.text()


async def test_create_calls_the_integration_and_flashes(make_client: ClientFactory,
                                                        view: FakeView) -> None:
    ids = await seed(view.state)
    mouser: FakeMouser = view.live["parts"]
    client = await make_client(view)
    token = await csrf_from(client, "/review")
    resp = await client.post(f"/review/{ids['hits']}/create/0", data={"csrf_token": token},
                             allow_redirects=False)
    assert resp.status == 303
    assert mouser.calls == [(ids["hits"], 0)]
    page = await (await client.get("/review")).text()
    assert "created supplier part 42 (SKU 595-LM358DR)" in page
    assert "Create supplier part" not in page  # the hit is now marked created


async def test_entry_with_a_created_part_offers_no_more_creates(make_client: ClientFactory,
                                                                 view: FakeView) -> None:
    entry = hits_entry()
    entry.data["hits"].append({**entry.data["hits"][0], "mouser_pn": "595-LM358DRG4"})
    entry.data["created"] = {"supplier_part": 42, "sku": "595-LM358DR", "hit": 0}
    entry_id = await view.state.add_review(entry)
    client = await make_client(view)
    assert "Create supplier part" not in await (await client.get("/review")).text()
    token = await csrf_from(client, "/review")
    text = await (await client.post(f"/review/{entry_id}/create/2",
                                    data={"csrf_token": token})).text()
    assert "cannot be created" in text


async def test_create_refuses_na_and_unknown_hits(make_client: ClientFactory,
                                                  view: FakeView) -> None:
    ids = await seed(view.state)
    mouser: FakeMouser = view.live["parts"]
    client = await make_client(view)
    token = await csrf_from(client, "/review")
    for path in (f"/review/{ids['hits']}/create/1", f"/review/{ids['hits']}/create/9",
                 f"/review/{ids['lifecycle']}/create/0"):
        text = await (await client.post(path, data={"csrf_token": token})).text()
        assert "cannot be created" in text, path
    assert "no longer exists" in await (
        await client.post("/review/999/create/0", data={"csrf_token": token})).text()
    assert mouser.calls == []


async def test_create_shows_the_integration_error(make_client: ClientFactory,
                                                  view: FakeView) -> None:
    ids = await seed(view.state)
    mouser: FakeMouser = view.live["parts"]
    mouser.fail_with = Refused("inventree: supplier 3 is not a supplier")
    client = await make_client(view)
    token = await csrf_from(client, "/review")
    text = await (await client.post(f"/review/{ids['hits']}/create/0",
                                    data={"csrf_token": token})).text()
    assert "inventree: supplier 3 is not a supplier" in text
    assert 'class="flash error"' in text

    mouser.fail_with = RuntimeError("connection reset")
    text = await (await client.post(f"/review/{ids['hits']}/create/0",
                                    data={"csrf_token": token})).text()
    assert "Creating the supplier part failed: connection reset" in text


async def test_create_without_a_live_integration(make_client: ClientFactory,
                                                 view: FakeView) -> None:
    ids = await seed(view.state)
    view.live.clear()
    client = await make_client(view)
    token = await csrf_from(client, "/review")
    text = await (await client.post(f"/review/{ids['hits']}/create/0",
                                    data={"csrf_token": token})).text()
    assert "cannot create supplier parts" in text


async def test_forged_flash_cookie_is_ignored(make_client: ClientFactory,
                                              view: FakeView) -> None:
    client = await make_client(view)
    forged: Any = {"stocksyncd_flash": "WyJvayIsIkNhbGwgNTU1Il0.deadbeef"}
    text = await (await client.get("/review", cookies=forged)).text()
    assert "Call 555" not in text
    assert 'class="flash' not in text
