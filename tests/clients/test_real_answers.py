"""Real Mouser and InvenTree answers (tests/fixtures/real, each with its .source.txt) parse."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from stocksyncd.clients.inventree.models import Part
from stocksyncd.clients.mouser import MouserClient, MouserRateLimited, PriceBreak
from stocksyncd.clients.prices import parse_price
from stocksyncd.clock import FakeClock
from stocksyncd.errors import AuthError, PayloadError
from stocksyncd.http.retry import NO_RETRY
from stocksyncd.http.transport import Transport
from stocksyncd.simulators.mouser import MouserSimulator, catalogue

REAL = Path(__file__).parent.parent / "fixtures" / "real"
KEY = "3f2a9c4e-1b7d-4e8a-9c0f-5d6e7f8a9b0c"


def load(api: str, name: str) -> Any:
    return orjson.loads((REAL / api / f"{name}.json").read_bytes())


@pytest.fixture
async def answer(session: aiohttp.ClientSession):  # type: ignore[no-untyped-def]
    """A client whose next call gets a given real body from the simulator."""
    clock = FakeClock(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    sim = MouserSimulator(catalogue(12), api_keys={KEY}, clock=clock)
    await sim.start()
    client = MouserClient(Transport(session, api="mouser", base_url=sim.base_url,
                                    clock=clock, retry=NO_RETRY, timeout=5.0), KEY)

    def serve(name: str) -> MouserClient:
        sim.inject(status=200, body=load("mouser", name))
        return client

    yield serve
    await sim.stop()


def test_every_fixture_has_its_source() -> None:
    for path in REAL.glob("*/*.json"):
        assert path.with_suffix(".source.txt").exists(), path


async def test_chf_account_answer(answer: Any) -> None:
    part = await answer("partnumber_chf_account_resistor").lookup("71-CRCW0603-42.2K-E3")
    assert part.price_breaks == [PriceBreak(1, Decimal("0.089"), "CHF"),
                                 PriceBreak(10, Decimal("0.017"), "CHF")]
    assert part.packaging == "Reel, Cut Tape"
    assert part.in_stock is None and part.price_error is None


async def test_na_part_of_a_german_account(answer: Any) -> None:
    result = await answer("partnumber_na_part_de_account").search_name("LTC7806IUFDM#WPBF")
    (part,) = result.parts
    assert part.is_na and part.price_breaks == [] and part.in_stock is None
    assert part.min_order == 0 and part.lifecycle_status is None


async def test_daily_refusal_names_no_window(answer: Any) -> None:
    with pytest.raises(MouserRateLimited) as info:
        await answer("error_too_many_requests").lookup("595-NE555P")
    assert info.value.window == "unknown"


@pytest.mark.parametrize("name", ["error_invalid_api_key", "error_required_api_key"])
async def test_key_refusals(answer: Any, name: str) -> None:
    with pytest.raises(AuthError):
        await answer(name).lookup("595-NE555P")


async def test_invalid_characters(answer: Any) -> None:
    with pytest.raises(PayloadError, match="InvalidCharacters"):
        await answer("error_invalid_characters").search_name("LM358µ")


def test_german_price_break_excerpt() -> None:
    raw = {"MouserPartNumber": "511-STM32F103C8T6", **load("mouser",
                                                            "pricebreaks_eur_de_account_excerpt")}
    part = MouserClient.parse_part(MouserClient.__new__(MouserClient), raw)
    assert part.price_breaks == [PriceBreak(1, Decimal("6.85"), "EUR")]


def test_german_availability_excerpt() -> None:
    raw = {"MouserPartNumber": "187-CL31A106MBHNNNE", **load("mouser",
                                                              "availability_de_account_excerpt")}
    part = MouserClient.parse_part(MouserClient.__new__(MouserClient), raw)
    assert part.in_stock == 385316 and part.availability == "385316 Auf Lager"


@pytest.mark.parametrize(
    ("text", "currency", "value"),
    [("$1,234.56", "USD", "1234.56"), ("1.234,56 €", "EUR", "1234.56"),
     ("0,141 €", "EUR", "0.141"), ("0.089 CHF", "CHF", "0.089"), ("1.185 CHF", "CHF", "1.185"),
     ("1,185.50 CHF", "CHF", "1185.50"), ("6.817,20 kr", "SEK", "6817.20"),
     ("¥2,100", "JPY", "2100"), ("$1,234", "USD", "1234"), ("1.234 €", "EUR", "1234"),
     ("1,234 €", "EUR", "1.234")],
)
def test_account_conventions_with_the_currency_field(text: str, currency: str,
                                                      value: str) -> None:
    assert parse_price(text, currency) == (Decimal(value), currency)


@pytest.mark.parametrize(
    ("text", "currency"),
    [("€1.234", "EUR"),  # English symbol place, continental currency: which is it?
     ("1,234 $", "USD"), ("0.089 CHF", "EUR"), ("6,85 €", "USD"), ("$1.00", "EUR"),
     ("1 kr", "USD"), ("1" * 19, "USD")],
)
def test_contradictions_are_refused(text: str, currency: str) -> None:
    with pytest.raises(ValueError):
        parse_price(text, currency)


def test_inventree_part_list_item() -> None:
    part = Part.from_api(load("inventree", "part_list_item_issue231_trimmed"))
    assert (part.pk, part.name, part.active, part.purchaseable, part.category) == (
        25, "FS24", True, True, 29)
    assert part.notes is None and part.ipn == "FS24_Good-Ark-Semiconductor"
