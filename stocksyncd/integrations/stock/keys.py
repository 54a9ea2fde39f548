"""Normalising match keys and judging stock values: pure functions, no I/O.

Decisions (documented in the README):

* Keys are text, compared exactly (case as-is) after stripping whitespace;
  empty means "no key". Integers and integral floats become their digits
  (``4.6e12`` -> ``"4600000000000"``), because InSales stores barcodes as
  strings of digits. A string such as ``"0046000123"`` keeps its leading
  zeros: it is already the text InSales compares. A number cannot carry
  leading zeros, so a source that sends barcodes as numbers loses them; such
  keys simply do not match and show up as ``not_in_target``.
* Quantities: None -> skipped ``null``; booleans, NaN, infinities and text
  that is not a plain decimal number -> skipped ``non_numeric``; fractions
  are floored (2.7 -> 2: never promise stock that is not there); negatives
  clamp to 0 or are skipped ``negative``, as configured.
* Text is a plain decimal number only when it is ASCII digits with an
  optional sign and decimal part (``"12"``, ``"-3.50"``): ``Decimal()`` also
  takes ``"1_000"``, ``"1e3"`` and Arabic-Indic digits, and each of those
  has been a different number from the one the sender meant.
* A figure at or beyond 10^9 in magnitude (``1e300``) is no stock anyone
  holds: skipped ``out_of_range``, never written (and never an integer the
  JSON encoder cannot send).
* A source that knows an item's value is unusable for another reason says
  so with ``Unusable(reason)``; the item is skipped with that reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from stocksyncd.numbers import MAX_STOCK, in_stock_range, plain_decimal

NegativePolicy = Literal["clamp", "skip"]

SKIP_NULL = "null"
SKIP_NON_NUMERIC = "non_numeric"
SKIP_NEGATIVE = "negative"
SKIP_OUT_OF_RANGE = "out_of_range"


@dataclass(frozen=True)
class Unusable:
    """A value a source could not read for an item, with the reason it is skipped."""

    reason: str


def normalize_key(raw: object) -> str | None:
    """The text both sides compare, or None when there is no usable key."""
    if type(raw) is str:  # the common case first: no isinstance chain
        return raw.strip() or None
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, float):
        if not math.isfinite(raw):
            return None
        return str(int(raw)) if raw.is_integer() else repr(raw)
    if isinstance(raw, Decimal):
        if not raw.is_finite():
            return None
        return str(int(raw)) if raw == raw.to_integral_value() else str(raw)
    text = str(raw).strip()
    return text or None


@dataclass(frozen=True)
class Quantity:
    """A judged stock value: ``value`` to write, or ``skip`` naming why not."""

    value: int | None = None
    skip: str | None = None
    clamped: bool = False  # a negative figure was raised to 0


def _decimal(raw: object) -> Decimal | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return Decimal(raw)
    if isinstance(raw, float):
        return Decimal(repr(raw)) if math.isfinite(raw) else None
    if isinstance(raw, Decimal):
        return raw if raw.is_finite() else None
    if isinstance(raw, str):
        return plain_decimal(raw)
    return None


# Judgements of the everyday figures, made once: a plain non-negative whole number
# always means itself, so 100k items need not build 100k identical Quantity objects.
PLAIN_LIMIT = 1024
PLAIN = tuple(Quantity(value=n) for n in range(PLAIN_LIMIT))  # PLAIN[n] judges n
_CLAMPED = Quantity(value=0, clamped=True)
_NEGATIVE = Quantity(skip=SKIP_NEGATIVE)
_NULL = Quantity(skip=SKIP_NULL)
_NON_NUMERIC = Quantity(skip=SKIP_NON_NUMERIC)
_OUT_OF_RANGE = Quantity(skip=SKIP_OUT_OF_RANGE)
_EXACT = float(2**53)  # every float below this in magnitude with no fraction is exact


def _whole(whole: int, negative: NegativePolicy) -> Quantity:
    if not -MAX_STOCK < whole < MAX_STOCK:
        return _OUT_OF_RANGE
    if whole < 0:
        return _CLAMPED if negative == "clamp" else _NEGATIVE
    return PLAIN[whole] if whole < PLAIN_LIMIT else Quantity(value=whole)


def judge_quantity(raw: object, negative: NegativePolicy = "clamp") -> Quantity:
    """Decide what a source stock figure means for InSales (see module notes)."""
    # Fast paths: exact ints (not bool) and floats below 2**53 need no Decimal.
    # Below 2**53 math.floor of the binary value equals the floor of the
    # float's shortest repr, which is what the Decimal path computes (a
    # non-integral float never reprs as a whole number there). Larger floats,
    # NaN and infinities take the general path.
    if type(raw) is int:
        return _whole(raw, negative)
    if type(raw) is float and -_EXACT < raw < _EXACT:
        return _whole(math.floor(raw), negative)
    if raw is None:
        return _NULL
    if isinstance(raw, Unusable):
        return Quantity(skip=raw.reason)
    value = _decimal(raw)
    if value is None:
        return _NON_NUMERIC
    if not in_stock_range(value):
        return _OUT_OF_RANGE  # before flooring: 1e300 never becomes a 300-digit int
    return _whole(math.floor(value), negative)


def show_quantity(value: float | None) -> str | None:
    """A quantity as the audit trail shows it: ``7`` rather than ``7.0``."""
    if value is None:
        return None
    return str(int(value)) if value.is_integer() else repr(value)
