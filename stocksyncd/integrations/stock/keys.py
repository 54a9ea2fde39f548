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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

NegativePolicy = Literal["clamp", "skip"]

SKIP_NULL = "null"
SKIP_NON_NUMERIC = "non_numeric"
SKIP_NEGATIVE = "negative"


def normalize_key(raw: object) -> str | None:
    """The text both sides compare, or None when there is no usable key."""
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
        try:
            value = Decimal(raw.strip())
        except InvalidOperation:
            return None
        return value if value.is_finite() else None
    return None


def judge_quantity(raw: object, negative: NegativePolicy = "clamp") -> Quantity:
    """Decide what a source stock figure means for InSales (see module notes)."""
    if raw is None:
        return Quantity(skip=SKIP_NULL)
    value = _decimal(raw)
    if value is None:
        return Quantity(skip=SKIP_NON_NUMERIC)
    whole = math.floor(value)
    if whole < 0:
        if negative == "clamp":
            return Quantity(value=0, clamped=True)
        return Quantity(skip=SKIP_NEGATIVE)
    return Quantity(value=whole)


def show_quantity(value: float | None) -> str | None:
    """A quantity as the audit trail shows it: ``7`` rather than ``7.0``."""
    if value is None:
        return None
    return str(int(value)) if value.is_integer() else repr(value)
