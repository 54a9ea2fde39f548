"""The Mouser -> InvenTree job against the Mouser and InvenTree simulators and SQLite state."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from stocksyncd.clock import Clock, FakeClock
from stocksyncd.config import Config, MouserInvenTreeConfig
from stocksyncd.errors import StockSyncError
from stocksyncd.http.ratelimit import RateLimiter
from stocksyncd.http.transport import RequestObserver
from stocksyncd.integrations.base import Integration, ReviewActions, RunContext, RunResult
from stocksyncd.integrations.mouser_inventree import MouserInvenTreeJob, build
from stocksyncd.simulators.base import Fault
from stocksyncd.simulators.inventree import DEFAULT_TOKEN, InvenTreeSimulator
from stocksyncd.simulators.mouser import MouserSimulator, make_part
from stocksyncd.state import SqlStateStore, open_store
from stocksyncd.state.api import StateStore

KEY = "00000000-test-key-0000-000000000000"
NAME = "parts"
EXCLUDE = {"supplier_sync": {"exclude": "True"}}
USD = [(1, Decimal("0.54")), (10, Decimal("0.39")), (100, Decimal("0.27"))]


class Res:
    """The runtime's ``Resources`` for one test: one session, shared limiters."""

    def __init__(self, session: aiohttp.ClientSession, clock: FakeClock,
                 state: StateStore | None = None) -> None:
        self._session = session
        self.clock: Clock = clock
        self.state = state
        self.observer: RequestObserver | None = None
        self.limiters: dict[str, RateLimiter] = {}
        self.sessions: list[tuple[str, str | None]] = []

    def session(self, upstream: str, *, limit_per_host: int = 10,
                proxy: str | None = None) -> aiohttp.ClientSession:
        self.sessions.append((upstream, proxy))
        return self._session

    def limiter(self, key: str, factory: Callable[[], RateLimiter]) -> RateLimiter:
        if key not in self.limiters:
            self.limiters[key] = factory()
        return self.limiters[key]


def mouser_catalogue() -> list[dict[str, Any]]:
    rng = random.Random(1)
    entries = [("595-NE555P", "NE555P"), ("595-LM358DR", "LM358DR"), ("512-BC547A", "BC547A"),
               ("N/A", "BC547B"), ("512-BC547C", "BC547C"), ("595-TL072CP", "TL072CP")]
    parts = []
    for i, (pn, mpn) in enumerate(entries):
        part = make_part(rng, i, mpn, "Texas Instruments")
        part.update({"MouserPartNumber": pn, "LifecycleStatus": None,
                     "AvailabilityInStock": "100", "Availability": "100 In Stock",
                     "ProductAttributes": [{"AttributeName": "Packaging",
                                            "AttributeValue": "Tube"}],
                     "ProductDetailUrl": f"https://www.mouser.com/ProductDetail/TI/{mpn}"})
        part["PriceBreaks"] = [] if pn == "N/A" else [
            {"Quantity": q, "Price": f"${p}", "Currency": "USD"} for q, p in USD]
        parts.append(part)
    return parts


def inventree_catalogue(clock: FakeClock) -> InvenTreeSimulator:
    sim = InvenTreeSimulator(clock=clock)
    sim.add_category("Electronics", pk=1)
    sim.add_category("ICs", parent=1, pk=2)
    sim.add_category("Legacy", parent=1, pk=3, metadata=EXCLUDE)
    sim.add_category("Old ICs", parent=3, pk=4)
    sim.add_company("Mouser Electronics", pk=3)
    sim.add_company("Texas Instruments", pk=5, is_supplier=False, is_manufacturer=True)
    sim.add_part("NE555P", pk=10, category=2)
    sim.add_supplier_part(part=10, supplier=3, SKU="595-NE555P", pk=1, note="drawer 4")
    sim.add_part("LM358DR", pk=20, category=2)
    sim.add_supplier_part(part=20, supplier=3, SKU="595-LM358DR", pk=2)
    sim.add_part("OLD100", pk=30, category=3)  # excluded by its category
    sim.add_part("OLD200", pk=40, category=4)  # excluded by an ancestor
    sim.add_part("TL072CP", pk=50, category=2,
                 metadata={"SupplierSyncPlugin": {"SyncIgnore": True}})
    sim.add_part("BC547", pk=60, category=2)  # no Mouser supplier part: name search
    mp = sim.add_manufacturer_part(60, 5, "BC547C")
    assert mp["pk"]
    sim.add_part("GONE123", pk=70, category=None)
    sim.add_supplier_part(part=70, supplier=3, SKU="595-GONE123", pk=7)
    sim.add_part("INACTIVE", pk=80, category=2, active=False)
    return sim


class Env:
    """Simulators, a state store on disk, and helpers to run the job."""

    def __init__(self, tmp_path: Path, clock: FakeClock, session: aiohttp.ClientSession,
                 inv: InvenTreeSimulator, mouser: MouserSimulator) -> None:
        self.tmp_path = tmp_path
        self.clock = clock
        self.session = session
        self.inv = inv
        self.mouser = mouser
        self.store: SqlStateStore | None = None
        self.runs = 0

    @property
    def url(self) -> str:
        return f"sqlite:///{self.tmp_path}/state.db"

    async def open(self) -> SqlStateStore:
        self.store = await open_store(self.url, clock=self.clock)
        return self.store

    async def reopen(self) -> SqlStateStore:
        """A daemon restart: the store is closed and opened again."""
        assert self.store is not None
        await self.store.close()
        return await self.open()

    def cfg(self, **overrides: Any) -> MouserInvenTreeConfig:
        values: dict[str, Any] = {
            "type": "mouser-inventree", "inventree_url": self.inv.url,
            "inventree_token": DEFAULT_TOKEN, "mouser_api_key": KEY, "mouser_supplier": 3,
            "base_url": self.mouser.base_url, "timeout": 5, "parts_per_run": 1,
        }
        values.update(overrides)
        return MouserInvenTreeConfig(**values)

    def job(self, **overrides: Any) -> MouserInvenTreeJob:
        return build(NAME, self.cfg(**overrides), Config(),
                     Res(self.session, self.clock, self.store))

    async def run(self, job: MouserInvenTreeJob, *, dry_run: bool = False) -> RunResult:
        assert self.store is not None
        self.runs += 1
        ctx = RunContext(run_id=f"r{self.runs}", dry_run=dry_run, state=self.store,
                         clock=self.clock)
        return await job.run(ctx)

    async def cursor(self) -> Any:
        assert self.store is not None
        return await self.store.get_value("mouser-inventree", NAME)

    async def set_cursor(self, pk: int) -> None:
        assert self.store is not None
        await self.store.set_value("mouser-inventree", NAME, pk)

    async def reviews(self, kind: str | None = None) -> list[Any]:
        assert self.store is not None
        return await self.store.list_reviews(NAME, kind=kind)

    def searched(self) -> list[str]:
        """Search strings Mouser received, in order."""
        out = []
        for r in self.mouser.requests:
            if isinstance(r.body, dict) and "SearchByPartRequest" in r.body:
                out.append(r.body["SearchByPartRequest"]["mouserPartNumber"])
        return out

    def writes(self, method: str, contains: str) -> int:
        return self.inv.count(method, contains)


@pytest.fixture
async def env(tmp_path: Path, clock: FakeClock,
              session: aiohttp.ClientSession) -> AsyncIterator[Env]:
    inv = inventree_catalogue(clock)
    mouser = MouserSimulator(mouser_catalogue(), api_keys={KEY}, clock=clock)
    await inv.start()
    await mouser.start()
    e = Env(tmp_path, clock, session, inv, mouser)
    await e.open()
    try:
        yield e
    finally:
        assert e.store is not None
        await e.store.close()
        await mouser.stop()
        await inv.stop()


def tmr(code: str = "TooManyRequests") -> dict[str, Any]:
    error = {"Id": 0, "Code": code, "Message": None, "ResourceKey": None,
             "ResourceFormatString": None, "ResourceFormatString2": None, "PropertyName": None}
    return {"Errors": [error], "SearchResults": None}


# -- cursor and exclusion -----------------------------------------------------------------


async def test_cursor_walks_skips_excluded_wraps_and_survives_restart(env: Env) -> None:
    job = env.job()
    first = await env.run(job)
    assert first.status == "ok", first.message
    assert env.searched() == ["595-NE555P"]
    assert await env.cursor() == 20

    await env.run(job)
    assert env.searched()[-1] == "595-LM358DR"
    assert await env.cursor() == 30

    before = len(env.mouser.requests)
    third = await env.run(job)
    # 30, 40 and 50 are excluded: walked past without a Mouser call, then 60 is searched.
    assert third.counts.skipped_by_reason == {"excluded_category": 2, "excluded_part": 1}
    assert third.counts.source == 4
    assert len(env.mouser.requests) == before + 1
    assert env.searched()[-1] == "BC547"
    assert await env.cursor() == 70

    await env.run(job)
    assert env.searched()[-1] == "595-GONE123"
    assert await env.cursor() == 10  # wrapped; 80 is inactive and never a candidate

    await env.reopen()
    again = await env.run(env.job())  # a new integration object after the restart
    assert again.status == "ok"
    assert env.searched()[-1] == "595-NE555P"
    assert await env.cursor() == 20


async def test_several_parts_per_run(env: Env) -> None:
    result = await env.run(env.job(parts_per_run=3, calls_per_run=3))
    # Known SKUs share one call; a name search is a call of its own.
    assert env.searched() == ["595-NE555P|595-LM358DR", "BC547"]
    assert result.counts.source == 6
    assert result.counts.matched == 3
    assert await env.cursor() == 70


async def test_cursor_on_a_deleted_part_moves_to_the_next(env: Env) -> None:
    await env.set_cursor(15)
    await env.run(env.job())
    assert env.searched() == ["595-LM358DR"]


async def test_empty_catalogue(env: Env) -> None:
    for part in env.inv.parts.values():
        part["active"] = False
    result = await env.run(env.job())
    assert result.status == "ok"
    assert result.counts.source == 0
    assert env.mouser.requests == []
    assert await env.cursor() is None


async def test_all_excluded_costs_no_mouser_call(env: Env) -> None:
    env.inv.metadata[("partcategory", 1)] = EXCLUDE
    env.inv.parts[70]["category"] = 2
    result = await env.run(env.job())
    assert result.status == "ok"
    assert env.mouser.requests == []
    assert result.counts.skipped == 7  # once around the catalogue, no more
    assert result.counts.skipped_by_reason == {"excluded_category": 6, "excluded_part": 1}


# -- supplier check ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("supplier", "message"),
    [(5, "mouser_supplier 5 is not a supplier company in InvenTree"),
     (99, "mouser_supplier 99 does not exist in InvenTree")],
)
async def test_supplier_must_be_a_supplier(env: Env, supplier: int, message: str) -> None:
    job = env.job(mouser_supplier=supplier)
    result = await env.run(job)
    assert result.status == "failed"
    assert message in result.message
    assert env.mouser.requests == []
    assert await env.cursor() is None


async def test_supplier_is_checked_once_per_object(env: Env) -> None:
    job = env.job()
    await env.run(job)
    await env.run(job)
    assert env.inv.count("GET", "/api/company/3/") == 1


# -- lifecycle, prices, fields -------------------------------------------------------------------


async def test_lifecycle_change_is_written_to_the_note_and_recorded(env: Env) -> None:
    job = env.job()
    env.mouser.set_lifecycle("595-NE555P", "End of Life")
    result = await env.run(job)
    assert env.inv.supplier_parts[1]["note"] == "drawer 4 [Mouser: End of Life]"
    (entry,) = await env.reviews("lifecycle")
    assert entry.part_pk == 10
    assert entry.data["old"] is None and entry.data["new"] == "End of Life"
    notes = [c for c in result.changes if c.field == "note"]
    assert [(c.ref, c.old, c.new, c.applied) for c in notes] == [
        ("1", "drawer 4", "drawer 4 [Mouser: End of Life]", True)]

    await env.set_cursor(10)  # unchanged status: no new entry, no note write
    await env.run(job)
    assert len(await env.reviews("lifecycle")) == 1

    env.mouser.set_lifecycle("595-NE555P", "Obsolete")
    env.inv.supplier_parts[1]["note"] = "drawer 5 [Mouser: End of Life]"  # the user edits
    await env.set_cursor(10)
    await env.run(job)
    assert env.inv.supplier_parts[1]["note"] == "drawer 5 [Mouser: Obsolete]"
    newest = (await env.reviews("lifecycle"))[0]
    assert (newest.data["old"], newest.data["new"]) == ("End of Life", "Obsolete")
    assert "End of Life -> Obsolete" in newest.message


async def test_price_breaks_replaced_only_when_different(env: Env) -> None:
    env.inv.add_price_break(1, 1, Decimal("0.60"))
    env.inv.add_price_break(1, 10, Decimal("0.45"))
    job = env.job()
    result = await env.run(job)
    # Kept quantities are rewritten in place, the new one created, nothing deleted.
    assert env.writes("PATCH", "/price-break/") == 2
    assert env.writes("POST", "/price-break/") == 1
    assert env.writes("DELETE", "/price-break/") == 0
    stored = sorted((r["quantity"], r["price"], r["price_currency"])
                    for r in env.inv.price_breaks.values() if r["part"] == 1)
    assert stored == [(Decimal(q), p, "USD") for q, p in USD]
    (updated,) = await env.reviews("updated")
    assert updated.data["fields"]["price_breaks"] == {
        "old": "1 @ 0.6 USD; 10 @ 0.45 USD",
        "new": "1 @ 0.54 USD; 10 @ 0.39 USD; 100 @ 0.27 USD",
    }
    assert result.counts.changed == 1 and result.counts.written == 1

    await env.set_cursor(10)  # the same prices again: nothing is touched
    again = await env.run(job)
    assert env.writes("PATCH", "/price-break/") == 2
    assert env.writes("POST", "/price-break/") == 1
    assert env.writes("PATCH", "/api/company/part/") == 1
    assert again.counts.changed == 0 and again.changes == []

    env.mouser.set_prices("595-NE555P", [(1, Decimal("0.50")), (25, Decimal("0.30"))], "EUR")
    await env.set_cursor(10)
    await env.run(job)
    assert env.writes("POST", "/price-break/") == 2  # 25 is new
    assert env.writes("PATCH", "/price-break/") == 3  # 1 is rewritten
    assert env.writes("DELETE", "/price-break/") == 2  # 10 and 100 go last
    stored = sorted((r["quantity"], r["price"], r["price_currency"])
                    for r in env.inv.price_breaks.values() if r["part"] == 1)
    assert stored == [(Decimal(1), Decimal("0.50"), "EUR"), (Decimal(25), Decimal("0.30"), "EUR")]


async def test_availability_packaging_link_kept_up_to_date(env: Env) -> None:
    job = env.job()
    await env.run(job)
    sp = env.inv.supplier_parts[1]
    assert (Decimal(str(sp["available"])), sp["packaging"], sp["link"]) == (
        Decimal(100), "Tube", "https://www.mouser.com/ProductDetail/TI/NE555P")

    env.mouser.set_stock("595-NE555P", 1234)
    await env.set_cursor(10)
    result = await env.run(job)
    assert Decimal(str(env.inv.supplier_parts[1]["available"])) == 1234
    assert [(c.field, c.old, c.new) for c in result.changes] == [("availability", "100", "1234")]
    assert len(await env.reviews("updated")) == 1  # stock alone is no review entry


async def test_unknown_sku_recorded_and_replaced_not_duplicated(env: Env) -> None:
    job = env.job()
    await env.set_cursor(70)
    result = await env.run(job)
    assert result.status == "ok"
    (entry,) = await env.reviews("unknown_sku")
    assert entry.part_pk == 70 and entry.data["sku"] == "595-GONE123"
    await env.set_cursor(70)
    await env.run(job)
    assert len(await env.reviews("unknown_sku")) == 1


# -- name search and creating supplier parts -----------------------------------------------------


async def test_name_search_stores_hits_with_na_flagged(env: Env) -> None:
    await env.set_cursor(60)
    result = await env.run(env.job())
    assert result.counts.matched == 1
    (entry,) = await env.reviews("hits")
    assert entry.part_pk == 60 and entry.part_name == "BC547"
    assert entry.data["count"] == 3
    hits = entry.data["hits"]
    assert [(h["mouser_pn"], h["na"]) for h in hits] == [
        ("512-BC547A", False), ("512-BC547C", False), ("N/A", True)]
    assert set(hits[0]) == {"mouser_pn", "na", "manufacturer", "mpn", "description",
                            "availability", "link"}
    assert hits[0]["link"] == "https://www.mouser.com/ProductDetail/TI/BC547A"
    assert entry.data["search_link"] == "https://www.mouser.com/c/?q=BC547"
    assert "1 N/A" in entry.message


async def test_create_supplier_part_from_a_hit(env: Env) -> None:
    job = env.job()
    await env.set_cursor(60)
    await env.run(job)
    (entry,) = await env.reviews("hits")
    assert entry.id is not None

    with pytest.raises(StockSyncError, match="N/A"):
        await job.create_supplier_part(entry.id, 2)

    message = await job.create_supplier_part(entry.id, 1)
    assert "SKU 512-BC547C" in message
    (created,) = [r for r in env.inv.supplier_parts.values() if r["SKU"] == "512-BC547C"]
    assert created["part"] == 60 and created["supplier"] == 3
    assert created["link"] == "https://www.mouser.com/ProductDetail/TI/BC547C"
    assert created["manufacturer_part"] is not None  # linked by MPN
    breaks = [r for r in env.inv.price_breaks.values() if r["part"] == created["pk"]]
    assert len(breaks) == 3  # filled in at once from Mouser

    marked = await env.store.get_review(entry.id) if env.store else None
    assert marked is not None
    assert marked.data["hits"][1]["created"] == f"supplier part {created['pk']}"

    with pytest.raises(StockSyncError, match="already created"):
        await job.create_supplier_part(entry.id, 1)
    with pytest.raises(StockSyncError, match="already created"):
        await job.create_supplier_part(entry.id, 0)
    assert sum(1 for r in env.inv.supplier_parts.values() if r["part"] == 60) == 1

    await env.set_cursor(60)  # the part now syncs as a supplier part; the hits entry goes
    await env.run(job)
    assert await env.reviews("hits") == []


async def test_create_refuses_a_sku_that_exists(env: Env) -> None:
    job = env.job()
    await env.set_cursor(60)
    await env.run(job)
    (entry,) = await env.reviews("hits")
    assert entry.id is not None
    env.inv.add_supplier_part(part=20, supplier=3, SKU="512-BC547A")
    with pytest.raises(StockSyncError, match="512-BC547A already exists as supplier part"):
        await job.create_supplier_part(entry.id, 0)
    with pytest.raises(StockSyncError, match="does not exist"):
        await job.create_supplier_part(entry.id + 100, 0)


async def test_create_works_after_a_restart_before_the_first_run(env: Env) -> None:
    await env.set_cursor(60)
    await env.run(env.job())
    (entry,) = await env.reviews("hits")
    assert entry.id is not None
    # A new job object (the daemon restarted) gets the store from the runtime.
    fresh = env.job()
    assert "512-BC547A" in await fresh.create_supplier_part(entry.id, 0)


async def test_create_without_a_state_store_says_why(env: Env) -> None:
    await env.set_cursor(60)
    await env.run(env.job())
    (entry,) = await env.reviews("hits")
    assert entry.id is not None
    orphan = build(NAME, env.cfg(), Config(), Res(env.session, env.clock))
    with pytest.raises(StockSyncError, match="not run yet"):
        await orphan.create_supplier_part(entry.id, 0)


# -- garbage and quotas -------------------------------------------------------------------------


GARBAGE = ["missing_keys", "nulls", "wrong_types", "no_results_object", "html", "not_json",
           "null_results"]


@pytest.mark.parametrize("kind", GARBAGE)
async def test_garbage_records_an_error_and_moves_on(env: Env, kind: str) -> None:
    job = env.job()
    env.mouser.garble(kind, "595-NE555P")
    result = await env.run(job)
    assert result.status == "ok", result.message
    (entry,) = await env.reviews("error")
    assert entry.part_pk == 10
    assert entry.message
    assert await env.cursor() == 20
    assert env.writes("PATCH", "/api/company/part/") == 0

    await env.run(job)
    assert env.searched()[-1] == "595-LM358DR"
    await env.set_cursor(10)  # a clean pass clears the error entry
    await env.run(job)
    assert await env.reviews("error") == []


async def test_one_bad_break_keeps_every_old_price(env: Env) -> None:
    env.inv.add_price_break(1, 1, Decimal("0.60"))
    env.inv.add_price_break(1, 10, Decimal("0.45"))
    env.mouser.part("595-NE555P")["PriceBreaks"][1]["Price"] = "call us"
    result = await env.run(env.job())
    assert result.status == "ok"
    (entry,) = await env.reviews("error")
    assert "unusable price list" in entry.message and "quantity 10" in entry.message
    assert env.inv.count("POST", "/price-break/") == 0
    assert env.inv.count("PATCH", "/price-break/") == 0
    assert env.inv.count("DELETE", "/price-break/") == 0
    assert await env.cursor() == 20
    # The rest of the part (lifecycle, stock, packaging, link) is still brought in step.
    assert env.writes("PATCH", "/api/company/part/") == 1


async def test_strings_for_numbers_records_an_error_and_writes_nothing(env: Env) -> None:
    env.inv.add_price_break(1, 1, Decimal("0.54"))
    env.mouser.garble("strings_for_numbers", "595-NE555P")
    result = await env.run(env.job())
    assert result.status == "ok"
    (entry,) = await env.reviews("error")
    assert "AvailabilityInStock" in entry.message
    assert env.inv.count("DELETE") == env.inv.count("PATCH") == 0
    assert await env.cursor() == 20


@pytest.mark.parametrize("code", ["InvalidCharacters", "MaxLength", "NotFound"])
async def test_http_200_with_errors_records_an_error(env: Env, code: str) -> None:
    env.mouser.inject(Fault(status=200, body=tmr(code), match="/search/"))
    result = await env.run(env.job())
    assert result.status == "ok"
    (entry,) = await env.reviews("error")
    assert code in entry.message
    assert await env.cursor() == 20


@pytest.mark.parametrize("fault", [
    {"status": 500, "body": ""},
    {"status": 200, "body": {"Message": "An error has occurred."}},
])
async def test_mouser_down_retries_the_part_then_moves_on(env: Env,
                                                          fault: dict[str, Any]) -> None:
    job = env.job()
    env.mouser.inject(Fault(**fault, match="/search/", times=3))
    for _ in range(2):
        result = await env.run(job)
        assert result.status == "failed"
        assert await env.cursor() == 10
    assert await env.reviews("error") == []
    third = await env.run(job)
    assert third.status == "ok"
    (entry,) = await env.reviews("error")
    assert "3 times" in entry.message
    assert await env.cursor() == 20


async def test_refusals_for_a_quarter_hour_stop_calls_until_the_reset(env: Env) -> None:
    job = env.job(parts_per_run=3, calls_per_run=3)
    await env.run(job)  # 10, 20, 60
    assert await env.cursor() == 70
    # Mouser's daily refusal says nothing; with the day's calls left by our ledger it
    # is taken for the minute (another user of the key may share that budget): the
    # run waits a minute, and a second refusal only ends the run.
    env.mouser.inject(Fault(status=200, body=tmr(), match="/search/", times=100))
    calls = len(env.mouser.requests)
    result = await env.run(job)
    assert result.status == "aborted" and "the next run tries again" in result.message
    assert len(env.mouser.requests) == calls + 2
    assert env.clock.slept == [60.0]
    assert result.details["mouser_quota_left"] > 900
    assert await env.cursor() == 70
    # Refused on and on for a quarter of an hour: that is the day.
    for _ in range(10):
        env.clock.advance(90)
        result = await env.run(job)
        if "daily" in result.message:
            break
    assert "2026-01-02 00:00 UTC" in result.message
    assert result.details["mouser_quota_left"] == 0
    assert await env.cursor() == 70
    assert await env.reviews("error") == []

    calls = len(env.mouser.requests)
    walked = len(env.inv.requests)
    again = await env.run(job)  # the store knows the day is gone: no call at all
    assert again.status == "aborted"
    assert "2026-01-02 00:00 UTC" in again.message
    assert len(env.mouser.requests) == calls
    assert len(env.inv.requests) == walked

    env.mouser.faults.clear()
    env.clock.advance(86400)
    after = await env.run(job)
    assert after.status == "ok"
    assert env.searched()[-1] == "595-GONE123|595-NE555P|595-LM358DR"


async def test_a_refusal_then_an_answer_forgets_the_refusals(env: Env) -> None:
    job = env.job()
    env.mouser.inject(Fault(status=200, body=tmr(), match="/search/", times=2))
    assert (await env.run(job)).status == "aborted"
    assert env.store is not None
    assert await env.store.get_value("mouser-inventree", f"{NAME}:refused_since") is not None
    env.clock.advance(90)
    assert (await env.run(job)).status == "ok"
    assert await env.store.get_value("mouser-inventree", f"{NAME}:refused_since") is None


@pytest.mark.parametrize("fault", [
    {"status": 429, "body": ""},
    {"status": 200, "body": tmr()},
    {"status": 200, "body": {"Errors": [{"Code": "TooManyRequests",
                                         "Message": "Too many requests per minute"}],
                             "SearchResults": None}},
])
async def test_a_per_minute_refusal_waits_a_minute_and_goes_on(env: Env,
                                                               fault: dict[str, Any]) -> None:
    env.mouser.inject(Fault(**fault, match="/search/"))
    result = await env.run(env.job())
    assert result.status == "ok", result.message
    assert env.clock.slept == [60.0]
    assert env.searched() == ["595-NE555P", "595-NE555P"]
    assert await env.cursor() == 20
    assert result.details["mouser_quota_left"] == 998  # both calls are in the ledger


async def test_a_daily_refusal_by_name_stops_at_once(env: Env) -> None:
    body = {"Errors": [{"Code": "TooManyRequests", "Message": "Daily limit exceeded"}],
            "SearchResults": None}
    env.mouser.inject(Fault(status=200, body=body, match="/search/"))
    result = await env.run(env.job())
    assert result.status == "aborted" and env.clock.slept == []
    assert "2026-01-02 00:00 UTC" in result.message
    assert result.details["mouser_quota_left"] == 0


async def test_a_minute_refusal_repeated_after_the_wait_does_not_end_the_day(env: Env) -> None:
    body = {"Errors": [{"Code": "TooManyRequests", "Message": "per minute"}],
            "SearchResults": None}
    env.mouser.inject(Fault(status=200, body=body, match="/search/", times=2))
    result = await env.run(env.job())
    assert result.status == "aborted" and "per-minute" in result.message
    assert result.details["mouser_quota_left"] == 998
    assert await env.cursor() == 10


async def test_daily_quota_survives_a_restart(env: Env) -> None:
    job = env.job(calls_per_day=3)
    for _ in range(3):
        assert (await env.run(job)).status == "ok"
    assert len(env.mouser.requests) == 3
    await env.reopen()
    job = env.job(calls_per_day=3)
    result = await env.run(job)
    assert result.status == "aborted"
    assert "reset at 2026-01-02 00:00 UTC" in result.message
    assert len(env.mouser.requests) == 3
    assert await env.cursor() == 70
    assert result.details["mouser_quota_left"] == 0


async def test_quota_left_is_reported(env: Env) -> None:
    result = await env.run(env.job(calls_per_day=50))
    assert result.details["mouser_quota_left"] == 49


async def test_wrong_api_key_fails_the_run_without_error_entries(env: Env) -> None:
    result = await env.run(env.job(mouser_api_key="ffffffff-wrong-key-0000-000000000000"))
    assert result.status == "failed"
    assert "API key" in result.message
    assert "ffffffff-wrong" not in result.message
    assert await env.cursor() is None
    assert await env.reviews() == []


# -- InvenTree failures and dry runs ---------------------------------------------------------------


async def test_inventree_unreachable_fails_and_keeps_the_cursor(env: Env) -> None:
    await env.set_cursor(20)
    await env.inv.stop()
    result = await env.run(env.job())
    assert result.status == "failed"
    assert "InvenTree" in result.message
    assert await env.cursor() == 20
    assert env.mouser.requests == []


async def test_inventree_refusing_a_write_records_an_error(env: Env) -> None:
    env.inv.inject(Fault(status=400, body={"note": ["bad note"]}, match="/api/company/part/1/",
                         method="PATCH"))
    env.mouser.set_lifecycle("595-NE555P", "Obsolete")
    result = await env.run(env.job())
    assert result.status == "ok"
    (entry,) = await env.reviews("error")
    assert "bad note" in entry.message
    assert await env.cursor() == 20


async def test_unreadable_metadata_skips_the_part_with_an_error(env: Env) -> None:
    env.inv.inject(Fault(status=400, body={"detail": "broken"}, match="/metadata/part/10/"))
    result = await env.run(env.job())
    assert result.status == "ok"
    assert result.counts.skipped_by_reason == {"error": 1}
    (entry,) = await env.reviews("error")
    assert entry.part_pk == 10 and "broken" in entry.message
    assert env.searched() == ["595-LM358DR"]  # the budget went to the next part
    assert await env.cursor() == 30


async def test_dry_run_plans_but_writes_nothing(env: Env) -> None:
    env.mouser.set_lifecycle("595-NE555P", "Obsolete")
    env.inv.add_price_break(1, 1, Decimal("0.60"))
    result = await env.run(env.job(), dry_run=True)
    assert result.status == "ok"
    assert {c.field for c in result.changes} == {
        "note", "availability", "packaging", "link", "price_breaks"}
    assert all(not c.applied for c in result.changes)
    for method in ("PATCH", "POST", "DELETE", "PUT"):
        assert env.inv.count(method) == 0
    assert await env.reviews() == []
    assert [e["kind"] for e in result.details["review"]] == ["lifecycle", "updated"]
    assert await env.cursor() is None
    assert result.counts.changed == 1 and result.counts.written == 0


async def test_build_shares_the_mouser_limiter_and_uses_the_proxy(env: Env) -> None:
    res = Res(env.session, env.clock)
    cfg = env.cfg(proxy="http://proxy.example:3128")
    job: Integration = build("a", cfg, Config(), res)
    actions: ReviewActions = build("b", cfg, Config(), res)
    assert (job.name, job.type) == ("a", "mouser-inventree")
    assert callable(actions.create_supplier_part)
    assert list(res.limiters) == ["mouser"]
    assert ("mouser", "http://proxy.example:3128") in res.sessions
    assert ("inventree:a", None) in res.sessions and ("inventree:b", None) in res.sessions


async def test_quota_left_reaches_the_metric(env: Env) -> None:
    from stocksyncd.runtime.metrics import Metrics

    result = await env.run(env.job(calls_per_day=50))
    metrics = Metrics()
    metrics.record_run(result)
    value = metrics.registry.get_sample_value("stocksyncd_mouser_quota_left",
                                              {"integration": NAME})
    assert value == 49
