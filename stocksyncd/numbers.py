"""Reading numbers from upstream answers strictly: the one rule every client shares.

A figure sent as text counts only when it is ASCII digits with an optional
sign and decimal part. ``Decimal()`` and ``float()`` also take ``"1_000"``,
``"1e3"``, ``"nan"`` and digits of other scripts (``"١٢"``); each has been
read as a number its sender never meant, so none of them is one here.
"""

from __future__ import annotations

import re
from decimal import Decimal

# Stock held by a shop is below this in magnitude; a larger figure is a broken one.
MAX_STOCK = 10**9

PLAIN_NUMBER = r"[+-]?[0-9]+(?:\.[0-9]+)?"
_PLAIN = re.compile(PLAIN_NUMBER, re.ASCII)
_BLANKS = " \t\r\n"


def plain_decimal(text: str) -> Decimal | None:
    """``text`` as a number when it is a plain decimal (ASCII digits, sign, point), else None."""
    text = text.strip(_BLANKS)
    if _PLAIN.fullmatch(text) is None:
        return None
    return Decimal(text)


def in_stock_range(value: float | Decimal) -> bool:
    """Whether ``value`` can be a stock figure at all (finite, below 10^9 in magnitude)."""
    return -MAX_STOCK < value < MAX_STOCK
