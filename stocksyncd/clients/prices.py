"""Localized price strings ("1.456,34 €", "$1,234.56", "0.089 CHF") to Decimal.

Mouser formats ``PriceBreaks[].Price`` for display in the account's locale, so
the decimal mark cannot be known up front. The rules, in order:

1. Whitespace of any kind (space, NBSP, narrow NBSP, thin space) and
   apostrophes between digit groups are thousands separators.
2. If both ``.`` and ``,`` occur, the last one is the decimal mark.
3. A separator that occurs more than once is a thousands separator.
4. A single separator followed by other than exactly three digits, or after a
   lone ``0`` ("0,123 €"), is the decimal mark.
5. The ambiguous rest (one separator, three digits after it: "1,234") is
   decided by the currency (Mouser's ``Currency`` field first): without a
   minor unit (JPY, HUF, KRW, ...) it is grouping; for a currency whose
   accounts show one decimal mark (CHF and USD a point, EUR and SEK a comma)
   that mark decides. A currency *symbol* placed before the number marks
   English formatting ("$1,234" = 1234), one after it continental
   ("1,234 €" = 1.234); an ISO code says nothing about the locale ("0.089 CHF"
   is a Swiss account's point). When the currency's mark and the symbol's
   style disagree the price is refused: a price read 1000 times too high is
   worse than none. With no clue at all the separator is the decimal mark.

The returned currency is the ``currency`` hint when given (Mouser's
``Currency`` field is authoritative; a text naming another currency is
refused), else the one the text names, else None.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# Symbols and words that may surround a price; None means "a currency, but
# which one is ambiguous" (kr is SEK, DKK or NOK).
SYMBOLS: dict[str, str | None] = {
    "€": "EUR",
    "$": "USD",
    "US$": "USD",
    "£": "GBP",
    "¥": "JPY",
    "円": "JPY",
    "₹": "INR",
    "₩": "KRW",
    "R$": "BRL",
    "zł": "PLN",
    "Kč": "CZK",
    "Ft": "HUF",
    "kr": None,
    "Fr.": "CHF",
}

# ISO 4217 currencies displayed without decimals.
ZERO_DECIMAL = frozenset({"JPY", "KRW", "HUF", "CLP", "ISK", "VND", "TWD", "UGX", "PYG"})

# The decimal mark Mouser accounts of a currency use (real answers: "$1,234.56",
# "0.089 CHF", "1.234,56 €", "6.817,20 kr").
DECIMAL_MARK: dict[str, str] = {
    "USD": ".", "GBP": ".", "CHF": ".", "CAD": ".", "AUD": ".", "NZD": ".", "SGD": ".",
    "HKD": ".", "CNY": ".", "INR": ".", "MXN": ".", "ILS": ".", "THB": ".", "MYR": ".",
    "EUR": ",", "SEK": ",", "DKK": ",", "NOK": ",", "PLN": ",", "CZK": ",", "BRL": ",",
    "RON": ",", "BGN": ",", "TRY": ",", "ZAR": ",",
}
# Currencies a bare "$" may stand for; "kr" for one of the Nordic crowns.
DOLLARS = frozenset({"USD", "CAD", "AUD", "NZD", "SGD", "HKD", "MXN", "TWD"})
CROWNS = frozenset({"SEK", "DKK", "NOK", "ISK"})
MAX_DIGITS = 18  # no Mouser price has more; longer text is not a price

_SPACES = re.compile(r"[\s\u00a0\u202f\u2009\u2007]+")
_SHAPE = re.compile(
    r"^(?P<pre>[^\d.,'’ -]*) ?(?P<num>\d(?:[\d.,'’ ]*\d)?) ?(?P<post>[^\d,'’ -]*)$"
)
_ISO = re.compile(r"^[A-Z]{3}$")
_GROUPED = re.compile(r"^\d{1,3}(?:[ '’]\d{3})+(?:[.,]\d+)?$")


def _marker(token: str, text: str) -> tuple[bool, str | None]:
    """(is a currency marker, ISO code or None) for a prefix/suffix token."""
    if token in SYMBOLS:
        return True, SYMBOLS[token]
    if _ISO.match(token):
        return True, token
    raise ValueError(f"price {text!r}: {token!r} is not a currency marker")


def _grouped(digits: str, sep: str) -> bool:
    """True when ``digits`` is ``1-3 digits`` followed by ``sep`` + 3-digit groups."""
    return re.fullmatch(r"\d{1,3}(?:" + re.escape(sep) + r"\d{3})+", digits) is not None


def parse_price(text: str, currency: str | None = None) -> tuple[Decimal, str | None]:
    """Parse a localized price; raise ``ValueError`` naming the text when it is not one."""
    if not isinstance(text, str):
        raise ValueError(f"price {text!r} is not a string")
    cleaned = _SPACES.sub(" ", text).strip()
    if not cleaned:
        raise ValueError("price is empty")
    match = _SHAPE.match(cleaned)
    if match is None:
        raise ValueError(f"price {text!r} is not a number with an optional currency")
    pre, num, post = match.group("pre"), match.group("num"), match.group("post")
    if sum(c.isdigit() for c in num) > MAX_DIGITS:
        raise ValueError(f"price {text!r} has too many digits")
    found: str | None = None
    style: str | None = None
    if post:
        _, found = _marker(post, text)
        style = None if _ISO.match(post) else "suffix"
    if pre:
        # A leading marker wins: "$1.00 USD" is English formatting.
        _, code = _marker(pre, text)
        found = code or found
        style = None if _ISO.match(pre) else "prefix"
    hint = currency.strip().upper() if currency else None
    if hint:
        _check_marker(hint, pre or post, found, text)
    code = hint or found
    value = _number(num, text, style=style, zero_decimal=code in ZERO_DECIMAL,
                    mark=DECIMAL_MARK.get(code or ""))
    return value, (hint or found)


def _check_marker(hint: str, token: str, found: str | None, text: str) -> None:
    """The text's currency must be the one Mouser's ``Currency`` field names."""
    if not token:
        return
    if token == "$":
        ok = hint in DOLLARS
    elif token == "kr":
        ok = hint in CROWNS
    else:
        ok = found == hint
    if not ok:
        raise ValueError(f"price {text!r} is not in {hint}, the answer's Currency")


def _number(num: str, text: str, *, style: str | None, zero_decimal: bool,
            mark: str | None) -> Decimal:
    if any(c in num for c in " '’"):
        if not _GROUPED.match(num):
            raise ValueError(f"price {text!r}: misplaced thousands separators")
        num = re.sub(r"[ '’]", "", num)
        if "." in num and "," in num:
            raise ValueError(f"price {text!r}: too many separators")
        return _decimal(num.replace(",", "."), text)
    dots, commas = num.count("."), num.count(",")
    if dots and commas:
        dec = "." if num.rfind(".") > num.rfind(",") else ","
        grp = "," if dec == "." else "."
        whole, _, frac = num.rpartition(dec)
        if dec in whole or not frac or (not _grouped(whole, grp) and grp in whole):
            raise ValueError(f"price {text!r}: cannot tell decimal mark from grouping")
        return _decimal(whole.replace(grp, "") + "." + frac, text)
    if dots + commas == 0:
        return _decimal(num, text)
    sep = "." if dots else ","
    if dots + commas > 1:
        if not _grouped(num, sep):
            raise ValueError(f"price {text!r}: misplaced thousands separators")
        return _decimal(num.replace(sep, ""), text)
    whole, _, frac = num.partition(sep)
    grouping = False
    if len(frac) == 3 and whole != "0" and len(whole) <= 3:
        by_style = {"prefix": sep == ",", "suffix": sep == "."}.get(style or "")
        by_mark = None if mark is None else sep != mark
        if zero_decimal:
            grouping = True
        elif by_mark is not None and by_style is not None and by_mark != by_style:
            raise ValueError(f"price {text!r}: the currency's decimal mark and the "
                             "symbol's place disagree")
        elif by_mark is not None:
            grouping = by_mark
        elif by_style is not None:
            grouping = by_style
    if grouping:
        return _decimal(whole + frac, text)
    return _decimal(whole + "." + frac, text)


def _decimal(digits: str, text: str) -> Decimal:
    try:
        value = Decimal(digits)
    except InvalidOperation as exc:
        raise ValueError(f"price {text!r} is not a number") from exc
    if not value.is_finite():
        raise ValueError(f"price {text!r} is not a number")
    return value


__all__ = ["DECIMAL_MARK", "SYMBOLS", "ZERO_DECIMAL", "parse_price"]
