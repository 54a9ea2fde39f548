"""The Mouser review page: rendering per kind, delete, create supplier part."""

from __future__ import annotations

from typing import Any

from stocksyncd.runtime.web import review
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


async def test_review_page_in_russian(make_client: ClientFactory, view: FakeView) -> None:
    await seed(view.state)
    client = await make_client(view)
    text = await (await client.get("/review", headers={"Accept-Language": "ru"})).text()
    for expected in (
        "Проверка результатов Mouser", "Mouser нашёл деталей: <strong>3</strong>",
        "изменился жизненный цикл", "Mouser больше не знает артикул <code>999-GONE</code>",
        "Результатов: 5, деталей: 4.", "Создать деталь поставщика", "создать нельзя",
        "Не синхронизировать эту деталь", "Удалить отмеченные", "Неизвестный артикул",
    ):
        assert expected in text, expected
    for english in ("Mouser found", "Create supplier part", "Ignore this part",
                    "result(s) for"):
        assert english not in text, english
    # Upstream data stays as Mouser wrote it.
    assert "Texas Instruments" in text and "Mouser answered garbage" in text


async def test_review_actions_answer_in_russian(make_client: ClientFactory,
                                                view: FakeView) -> None:
    ids = await seed(view.state)
    client = await make_client(view)
    ru = {"Accept-Language": "ru"}
    token = await csrf_from(client, "/review")
    await client.post(f"/review/{ids['lifecycle']}/delete", data={"csrf_token": token},
                      headers=ru, allow_redirects=False)
    page = await (await client.get("/review", headers=ru)).text()
    assert f"Запись {ids['lifecycle']} удалена." in page


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


class ActingMouser(FakeMouser):
    """The review fake plus the ledger and the "ignore this part" action."""

    def __init__(self, state: FakeState) -> None:
        super().__init__(state)
        self.ignored: list[int] = []

    async def quota_left(self) -> int:
        return 823

    async def ignore_part(self, part_pk: int) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        self.ignored.append(part_pk)
        for entry_id, entry in list(self.state.reviews.items()):
            if entry.part_pk == part_pk:
                await self.state.delete_review(entry_id)
        return f"part {part_pk} is ignored from now on"


async def test_filter_by_kind(make_client: ClientFactory, view: FakeView) -> None:
    await seed(view.state)
    client = await make_client(view)
    text = await (await client.get("/review?kind=error")).text()
    assert "Mouser answered garbage" in text and "999-GONE" not in text
    assert "1 result(s) for 1 part(s)" in text
    assert '<a href="/review?kind=error" aria-current="page">Errors</a>' in text
    for kind, present in (("lifecycle", "Obsolete"), ("hits", "Op Amp dual"),
                          ("unknown_sku", "999-GONE")):
        page = await (await client.get(f"/review?kind={kind}")).text()
        assert present in page and "Mouser answered garbage" not in page, kind
    everything = await (await client.get("/review?kind=nonsense")).text()
    assert "5 result(s) for 4 part(s)" in everything


async def test_bulk_delete_selected_and_shown(make_client: ClientFactory,
                                              view: FakeView) -> None:
    ids = await seed(view.state)
    client = await make_client(view)
    token = await csrf_from(client, "/review")
    data = [("csrf_token", token), ("scope", "selected"), ("entry", str(ids["error"])),
            ("entry", str(ids["unknown"])), ("shown", "")]
    text = await (await client.post("/review/delete", data=data)).text()
    assert "2 entries deleted." in text
    assert set(view.state.reviews) == {ids["hits"], ids["lifecycle"], ids["updated"]}

    page = await (await client.get("/review?kind=lifecycle")).text()
    assert f'name="shown" value="{ids["lifecycle"]}"' in page
    text = await (await client.post("/review/delete", data={
        "csrf_token": token, "scope": "shown", "shown": str(ids["lifecycle"])})).text()
    assert "1 entries deleted." in text
    assert set(view.state.reviews) == {ids["hits"], ids["updated"]}

    nothing = await (await client.post("/review/delete", data={
        "csrf_token": token, "scope": "selected"})).text()
    assert "No entry was selected." in nothing


async def test_bulk_delete_needs_the_csrf_token(make_client: ClientFactory,
                                                view: FakeView) -> None:
    ids = await seed(view.state)
    client = await make_client(view)
    resp = await client.post("/review/delete", data={"scope": "shown",
                                                     "shown": str(ids["error"])})
    assert resp.status == 403
    assert ids["error"] in view.state.reviews


async def test_ignore_this_part(make_client: ClientFactory, view: FakeView) -> None:
    ids = await seed(view.state)
    mouser = ActingMouser(view.state)
    view.live["parts"] = mouser
    client = await make_client(view)
    page = await (await client.get("/review")).text()
    assert page.count("Ignore this part") == 4  # one per part card
    assert "<strong>823</strong> of 1000" in page  # the ledger's calls left today
    token = await csrf_from(client, "/review")
    text = await (await client.post("/review/part/parts/12/ignore",
                                    data={"csrf_token": token})).text()
    assert mouser.ignored == [12]
    assert "part 12 is ignored from now on" in text
    assert ids["lifecycle"] not in view.state.reviews and ids["hits"] in view.state.reviews

    mouser.fail_with = Refused("inventree: part 13 is locked")
    text = await (await client.post("/review/part/parts/13/ignore",
                                     data={"csrf_token": token})).text()
    assert "part 13 is locked" in text and 'class="flash error"' in text
    text = await (await client.post("/review/part/nope/13/ignore",
                                    data={"csrf_token": token})).text()
    assert "cannot ignore parts" in text


async def test_hit_rows_are_capped(make_client: ClientFactory, view: FakeView) -> None:
    entry = hits_entry()
    entry.data["count"] = 348
    entry.data["hits"] = [{**entry.data["hits"][0], "mouser_pn": f"595-LM358D{i:02d}"}
                          for i in range(30)]
    await view.state.add_review(entry)
    client = await make_client(view)
    text = await (await client.get("/review")).text()
    assert text.count("Create supplier part") == review.HIT_ROWS
    assert "595-LM358D09" in text and "595-LM358D10" not in text
    assert "Mouser found <strong>348</strong> part(s) (showing 10)" in text
