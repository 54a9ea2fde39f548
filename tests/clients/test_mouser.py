"""MouserClient against the Mouser simulator: parsing, error shapes, garbage, key secrecy."""

from __future__ import annotations

import random
import traceback
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal

import aiohttp
import pytest
from loguru import logger

from stocksyncd.clients.mouser import MouserClient, MouserRateLimited, PriceBreak
from stocksyncd.clock import FakeClock
from stocksyncd.errors import (
    AuthError,
    FatalApiError,
    InvalidResponseError,
    PayloadError,
    QuotaExhaustedError,
    StockSyncError,
    TransientError,
)
from stocksyncd.http.retry import RetryPolicy
from stocksyncd.http.transport import Transport
from stocksyncd.simulators.mouser import GARBAGE_KINDS, MouserSimulator, catalogue, make_part

KEY = "3f2a9c4e-1b7d-4e8a-9c0f-5d6e7f8a9b0c"
START = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
MIDNIGHT = datetime(2026, 3, 11, tzinfo=UTC).timestamp()


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def sim(fake_clock: FakeClock) -> AsyncIterator[MouserSimulator]:
    simulator = MouserSimulator(catalogue(60, seed=1), api_keys={KEY}, clock=fake_clock)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
def logs() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="TRACE")
    yield lines
    logger.remove(sink)


def make_client(sim: MouserSimulator, session: aiohttp.ClientSession, clock: FakeClock,
                key: str = KEY) -> MouserClient:
    transport = Transport(session, api="mouser", base_url=sim.base_url, clock=clock,
                          retry=RetryPolicy(attempts=2, base_delay=1.0), timeout=5.0)
    return MouserClient(transport, key)


@pytest.fixture
def client(sim: MouserSimulator, session: aiohttp.ClientSession,
           fake_clock: FakeClock) -> MouserClient:
    return make_client(sim, session, fake_clock)


def orderable(sim: MouserSimulator, currency: str) -> dict[str, object]:
    return next(p for p in sim.parts if p["MouserPartNumber"] != "N/A"
                and p["PriceBreaks"] and p["PriceBreaks"][0]["Currency"] == currency)


async def test_exact_lookup_parses_every_field(sim: MouserSimulator,
                                               client: MouserClient) -> None:
    raw = orderable(sim, "EUR")
    sku = str(raw["MouserPartNumber"])
    sim.set_prices(sku, [(1, Decimal("1456.34")), (10, Decimal("0.419"))], "EUR")
    sim.set_lifecycle(sku, "End of Life")
    part = await client.lookup(sku)
    assert part is not None
    assert part.mouser_part_number == sku
    assert part.manufacturer_part_number == raw["ManufacturerPartNumber"]
    assert part.lifecycle_status == "End of Life"
    assert part.price_breaks == [PriceBreak(1, Decimal("1456.34"), "EUR"),
                                 PriceBreak(10, Decimal("0.419"), "EUR")]
    assert part.in_stock == int(str(raw["AvailabilityInStock"]))
    assert part.packaging  # German "Verpackung" attributes are recognised
    assert part.product_detail_url.startswith("https://www.mouser.de/")
    assert not part.is_na
    body = sim.requests[-1].body
    assert body == {"SearchByPartRequest": {"mouserPartNumber": sku,
                                            "partSearchOptions": "Exact"}}
    assert sim.requests[-1].query["apiKey"] == KEY


@pytest.mark.parametrize("currency", ["USD", "JPY", "SEK"])
async def test_prices_in_other_currencies(sim: MouserSimulator, client: MouserClient,
                                          currency: str) -> None:
    sku = str(orderable(sim, currency)["MouserPartNumber"])
    value = Decimal("2100") if currency == "JPY" else Decimal("1234.56")
    sim.set_prices(sku, [(1, value)], currency)
    part = await client.lookup(sku)
    assert part is not None
    assert part.price_breaks == [PriceBreak(1, value, currency)]


async def test_unknown_sku_is_none(client: MouserClient) -> None:
    assert await client.lookup("999-NOSUCHPART") is None


async def test_name_search_returns_several_hits_and_flags_na(sim: MouserSimulator,
                                                             client: MouserClient) -> None:
    sim.parts.append(make_part(random.Random(0), 7, "LM358ZZ", "onsemi"))
    result = await client.search_name("LM358")
    assert result.number_of_results == len(result.parts) >= 3
    assert sim.requests[-1].body["SearchByPartRequest"]["partSearchOptions"] == "None"
    assert {p.mouser_part_number for p in result.parts if p.is_na} == {"N/A"}
    na = next(p for p in result.parts if p.is_na)
    assert na.price_breaks == [] and na.in_stock is None and na.lifecycle_status is None


async def test_description_html_is_stripped(sim: MouserSimulator, client: MouserClient) -> None:
    raw = sim.parts[0]
    raw["Description"] = "<b>Op-amp</b> &amp; driver"
    part = await client.lookup(str(raw["MouserPartNumber"]))
    assert part is not None and part.description == "Op-amp & driver"


async def test_repeated_packaging_is_joined(sim: MouserSimulator, client: MouserClient) -> None:
    raw = orderable(sim, "USD")
    raw["ProductAttributes"] = [{"AttributeName": "Packaging", "AttributeValue": v}
                                for v in ("Reel", "Cut Tape", "MouseReel", "Reel")]
    part = await client.lookup(str(raw["MouserPartNumber"]))
    assert part is not None and part.packaging == "Reel, Cut Tape, MouseReel"


async def test_keyword_search_pages(sim: MouserSimulator, client: MouserClient) -> None:
    first = await client.search_keyword("semiconductors", records=2)
    second = await client.search_keyword("semiconductors", records=2, starting_record=2)
    assert first.number_of_results > 4
    assert len(first.parts) == len(second.parts) == 2
    assert first.parts[0].manufacturer_part_number != second.parts[0].manufacturer_part_number


async def test_invalid_key_is_auth_error(sim: MouserSimulator, session: aiohttp.ClientSession,
                                         fake_clock: FakeClock) -> None:
    bad = make_client(sim, session, fake_clock, key="11111111-2222-3333-4444-555555555555")
    with pytest.raises(AuthError, match="Invalid unique identifier"):
        await bad.lookup("595-NE555P")
    empty = make_client(sim, session, fake_clock, key="")
    with pytest.raises(AuthError, match="Required"):
        await empty.lookup("595-NE555P")


async def test_daily_quota_is_quota_error_until_midnight(session: aiohttp.ClientSession,
                                                         fake_clock: FakeClock) -> None:
    async with MouserSimulator(catalogue(12), api_keys={KEY}, per_day=2,
                               clock=fake_clock) as sim:
        assert isinstance(sim, MouserSimulator)
        client = make_client(sim, session, fake_clock)
        await client.search_name("LM358")
        await client.search_name("LM358")
        with pytest.raises(QuotaExhaustedError) as info:
            await client.search_name("LM358")
        assert info.value.resets_at == MIDNIGHT
        assert sim.count("POST") == 3  # no retry into an exhausted quota


@pytest.mark.parametrize("overflow", ["errors", "429"])
async def test_minute_overflow(session: aiohttp.ClientSession, fake_clock: FakeClock,
                               overflow: str) -> None:
    async with MouserSimulator(catalogue(12), api_keys={KEY}, per_minute=1,
                               overflow=overflow, clock=fake_clock) as sim:
        assert isinstance(sim, MouserSimulator)
        client = make_client(sim, session, fake_clock)
        await client.search_name("NE555")
        with pytest.raises(QuotaExhaustedError):
            await client.search_name("NE555")
        fake_clock.advance(60)
        await client.search_name("NE555")
        assert sim.count("POST") == 3


async def test_invalid_characters_is_payload_error(client: MouserClient) -> None:
    with pytest.raises(PayloadError, match="InvalidCharacters"):
        await client.search_name("LM358µ")


async def test_server_error_is_retried_then_transient(sim: MouserSimulator,
                                                      client: MouserClient) -> None:
    sim.inject(status=500, body="oops", times=2)
    with pytest.raises(TransientError):
        await client.search_name("LM358")
    assert sim.count("POST") == 2
    sim.inject(status=500, body="")
    assert (await client.search_name("LM358")).parts


async def test_wrong_method_shape_is_fatal(sim: MouserSimulator, client: MouserClient) -> None:
    sim.inject(status=405, body={"Error": {"Code": "UnsupportedApiVersion",
                                           "Message": "does not support HTTP method 'GET'."}})
    with pytest.raises(FatalApiError, match="does not support"):
        await client.search_name("LM358")


async def test_internal_error_in_body_is_transient(sim: MouserSimulator,
                                                   client: MouserClient) -> None:
    body = {"Errors": [{"Code": "InternalError", "Message": None, "PropertyName": None}],
            "SearchResults": None}
    sim.inject(status=200, body=body, times=2)
    with pytest.raises(TransientError, match="InternalError"):
        await client.search_name("LM358")


async def test_errors_with_nulls_do_not_crash(sim: MouserSimulator,
                                              client: MouserClient) -> None:
    sim.inject(status=200, body={"Errors": [None, {"Code": None}], "SearchResults": None},
               times=2)
    with pytest.raises(TransientError, match="no code"):
        await client.search_name("LM358")


@pytest.mark.parametrize("kind", ["html", "not_json"])
async def test_unparseable_body_is_invalid_response(sim: MouserSimulator, client: MouserClient,
                                                    kind: str) -> None:
    sim.garble(kind)
    sim.garble(kind)
    with pytest.raises(InvalidResponseError):
        await client.search_name("LM358")


@pytest.mark.parametrize("kind", ["no_results_object", "message_only"])
async def test_wrong_envelope_is_a_clear_error(sim: MouserSimulator, client: MouserClient,
                                               kind: str) -> None:
    sim.garble(kind)
    with pytest.raises((PayloadError, FatalApiError)) as info:
        await client.search_name("LM358")
    assert "SearchResults" in str(info.value) or "An error has occurred" in str(info.value)


@pytest.mark.parametrize("kind", ["missing_keys", "nulls"])
async def test_malformed_parts_are_rejected_not_crashing(sim: MouserSimulator,
                                                         client: MouserClient,
                                                         kind: str) -> None:
    sku = str(orderable(sim, "USD")["MouserPartNumber"])
    sim.garble(kind, query=sku)
    with pytest.raises(PayloadError, match="no MouserPartNumber"):
        await client.lookup(sku)
    sim.garble(kind)
    result = await client.search_name("LM358")
    assert result.parts == [] and len(result.rejected) == result.number_of_results > 0


async def test_strings_for_numbers_are_an_error_of_the_part(sim: MouserSimulator,
                                                            client: MouserClient) -> None:
    sku = str(orderable(sim, "USD")["MouserPartNumber"])
    sim.garble("strings_for_numbers")
    with pytest.raises(PayloadError, match="AvailabilityInStock is the text 'lots'"):
        await client.lookup(sku)


async def test_one_bad_break_voids_the_whole_price_list(sim: MouserSimulator,
                                                        client: MouserClient) -> None:
    raw = orderable(sim, "USD")
    raw["PriceBreaks"] = [{"Quantity": 1, "Price": "$0.54", "Currency": "USD"},
                          {"Quantity": 10, "Price": "call us", "Currency": "USD"},
                          {"Quantity": 100, "Price": "$0.27", "Currency": "USD"}]
    part = await client.lookup(str(raw["MouserPartNumber"]))
    assert part is not None
    assert part.price_breaks == []
    assert part.price_error is not None and "quantity 10" in part.price_error


@pytest.mark.parametrize(
    ("value", "why"),
    [("1e300", "not a count"), (1e300, "not a count"), ("99999999999999", "not a count"),
     (10**15, "out of range"),
     ("-5", "not a count"), (True, "not a count"), ([], "not a count"), ("12.5", "not a count")],
)
async def test_stock_is_strictly_bounded(sim: MouserSimulator, client: MouserClient,
                                         value: object, why: str) -> None:
    raw = orderable(sim, "USD")
    raw["AvailabilityInStock"] = value
    with pytest.raises(PayloadError, match=why):
        await client.lookup(str(raw["MouserPartNumber"]))


@pytest.mark.parametrize(
    "envelope",
    [{"Errors": None, "SearchResults": {"NumberOfResult": None, "Parts": None}},
     {"Errors": [], "SearchResults": {"NumberOfResult": 0}},
     {"Errors": [], "SearchResults": {"Parts": []}},
     {"Errors": [], "SearchResults": {"NumberOfResult": "0", "Parts": {}}},
     {"Errors": [], "SearchResults": {"NumberOfResult": 0, "Parts": [None]}}],
)
async def test_nulls_are_an_error_never_an_unknown_sku(sim: MouserSimulator,
                                                       client: MouserClient,
                                                       envelope: dict[str, object]) -> None:
    sim.inject(status=200, body=envelope)
    with pytest.raises(PayloadError):
        await client.lookup("595-NE555P")


async def test_unknown_sku_only_from_a_well_formed_empty_answer(sim: MouserSimulator,
                                                                client: MouserClient) -> None:
    sim.inject(status=200, body={"Errors": [], "SearchResults": {"NumberOfResult": 0,
                                                                  "Parts": []}})
    assert await client.lookup("595-NE555P") is None


async def test_wrong_types_are_payload_errors(sim: MouserSimulator,
                                              client: MouserClient) -> None:
    sku = str(orderable(sim, "USD")["MouserPartNumber"])
    sim.garble("wrong_types")
    with pytest.raises(PayloadError, match="NumberOfResult"):
        await client.lookup(sku)
    raw = orderable(sim, "USD")
    raw["PriceBreaks"] = "none"
    part = await client.lookup(str(raw["MouserPartNumber"]))
    assert part is not None and part.price_breaks == []
    assert part.price_error == "PriceBreaks is the text 'none', not a list"


async def test_quantity_as_string_is_accepted(sim: MouserSimulator, client: MouserClient) -> None:
    raw = orderable(sim, "USD")
    raw["PriceBreaks"] = [{"Quantity": "1,000", "Price": "$0.27", "Currency": "USD"}]
    raw["AvailabilityInStock"] = None
    raw["Availability"] = "1,234 In Stock"
    part = await client.lookup(str(raw["MouserPartNumber"]))
    assert part is not None
    assert part.price_breaks == [PriceBreak(1000, Decimal("0.27"), "USD")]
    assert part.in_stock == 1234


@pytest.mark.parametrize("kind", GARBAGE_KINDS)
async def test_every_garbage_kind_is_a_stocksyncd_error_or_a_result(
    sim: MouserSimulator, client: MouserClient, kind: str
) -> None:
    for _ in range(2):
        sim.garble(kind)
    try:
        result = await client.search_name("LM358")
    except StockSyncError as exc:
        assert str(exc)
    else:
        assert result.parts or result.rejected


ERROR_PATHS = [
    ("status", {"status": 500, "body": "boom"}),
    ("status", {"status": 404, "body": "not here"}),
    ("status", {"status": 405, "body": {"Message": "no"}}),
    ("status", {"status": 429, "body": ""}),
    ("reset", {}),
    ("truncate", {}),
    ("garbage", {"kind": "html"}),
    ("garbage", {"kind": "no_results_object"}),
    ("garbage", {"kind": "wrong_types"}),
    ("garbage", {"kind": "missing_keys"}),
]


@pytest.mark.parametrize(("how", "args"), ERROR_PATHS)
async def test_api_key_never_leaks(sim: MouserSimulator, client: MouserClient, logs: list[str],
                                   how: str, args: dict[str, object]) -> None:
    sku = str(orderable(sim, "USD")["MouserPartNumber"])
    for _ in range(2):  # every attempt fails
        if how == "garbage":
            sim.garble(str(args["kind"]))
        else:
            sim.inject(kind=how, **args)  # type: ignore[arg-type]
    with pytest.raises(StockSyncError) as info:
        await client.lookup(sku)
    text = "".join(traceback.format_exception(info.value)) + repr(info.value) + "".join(logs)
    assert KEY not in text
    assert str(info.value)


async def test_api_key_never_leaks_on_refusals(sim: MouserSimulator,
                                               session: aiohttp.ClientSession,
                                               fake_clock: FakeClock, logs: list[str]) -> None:
    errors: list[BaseException] = []
    other = "99999999-8888-7777-6666-555555555555"
    for key, query in ((other, "LM358"), (KEY, "LM358µ")):
        try:
            await make_client(sim, session, fake_clock, key=key).search_name(query)
        except StockSyncError as exc:
            errors.append(exc)
    sim.per_day = 0
    try:
        await make_client(sim, session, fake_clock).search_name("LM358")
    except StockSyncError as exc:
        errors.append(exc)
    assert [type(e) for e in errors] == [AuthError, PayloadError, MouserRateLimited]
    text = "".join("".join(traceback.format_exception(e)) for e in errors) + "".join(logs)
    assert KEY not in text and other not in text
