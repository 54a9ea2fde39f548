"""Localized Mouser price strings parse to exact Decimals, or fail loudly."""

from __future__ import annotations

from decimal import Decimal

import pytest

from stocksyncd.clients.prices import parse_price

NBSP = "\u00a0"
NNBSP = "\u202f"


@pytest.mark.parametrize(
    ("text", "value", "currency"),
    [
        ("1.456,34 €", "1456.34", "EUR"),
        ("$1,234.56", "1234.56", "USD"),
        ("¥2,100", "2100", "JPY"),
        ("0,123 €", "0.123", "EUR"),
        (f"1{NBSP}234,56 €", "1234.56", "EUR"),
        (f"1{NNBSP}234,56{NNBSP}€", "1234.56", "EUR"),
        (f"1 234 567,5{NBSP}€", "1234567.5", "EUR"),
        ("€0.95", "0.95", "EUR"),
        ("€ 0,141", "0.141", "EUR"),
        ("12,00 $", "12.00", "USD"),
        ("CHF 1'234.50", "1234.50", "CHF"),
        ("CHF 1’234.50", "1234.50", "CHF"),
        ("6.817,20 kr", "6817.20", None),
        ("1,45645 €", "1.45645", "EUR"),
        ("0,54 €", "0.54", "EUR"),
        ("0,419 €", "0.419", "EUR"),
        ("$0.54", "0.54", "USD"),
        ("$227.60", "227.60", "USD"),
        ("1.234.567,89 €", "1234567.89", "EUR"),
        ("$1,234,567.89", "1234567.89", "USD"),
        ("£12.5", "12.5", "GBP"),
        ("12", "12", None),
        ("  7,5  ", "7.5", None),
        ("10.00 USD", "10.00", "USD"),
        ("HUF 12 345", "12345", "HUF"),
        # The ambiguous single separator with three digits after it:
        ("$1,234", "1234", "USD"),  # marker before: English grouping comma
        ("$1.234", "1.234", "USD"),  # marker before: English decimal point
        ("1,234 €", "1.234", "EUR"),  # marker after: continental decimal comma
        ("1.234 €", "1234", "EUR"),  # marker after: continental grouping point
        ("1,234", "1.234", None),  # no marker: decimal
        ("¥1.500", "1500", "JPY"),  # no minor unit: always grouping
        ("0,100 $", "0.100", "USD"),  # leading zero: always decimal
        ("$0,100", "0.100", "USD"),
        ("1234,567 €", "1234.567", "EUR"),  # four digits before: cannot be grouping
    ],
)
def test_parses(text: str, value: str, currency: str | None) -> None:
    parsed, cur = parse_price(text)
    assert parsed == Decimal(value)
    assert str(parsed) == value  # exact digits, no float rounding
    assert cur == currency


@pytest.mark.parametrize(
    ("text", "hint", "value"),
    [
        ("1,234", "JPY", "1234"),  # the Currency field decides a bare number
        ("1,234", "EUR", "1.234"),
        ("6.817,20 kr", "SEK", "6817.20"),
        ("$1,234.56", "usd", "1234.56"),
    ],
)
def test_currency_hint(text: str, hint: str, value: str) -> None:
    parsed, cur = parse_price(text, currency=hint)
    assert parsed == Decimal(value)
    assert cur == hint.upper()


@pytest.mark.parametrize(
    "text",
    ["", "   ", NBSP, "abc", "€", "N/A", "1.2.3", "1,2,3", "1,,2", "12.", ",5", "1 2",
     "$$1", "1.234.5", "1,234.567,8", "12 apples", "-1,00 €", "1e5", "NaN", "Infinity",
     "1 234.567,8", "1,5.25"],
)
def test_garbage_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="price"):
        parse_price(text)


def test_non_string_raises_value_error() -> None:
    with pytest.raises(ValueError, match="not a string"):
        parse_price(1.5)  # type: ignore[arg-type]
