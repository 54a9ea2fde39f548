"""Typed views of the InvenTree objects the supplier sync reads and writes.

Parsing is tolerant about what varies across API versions (missing optional
fields, numbers rendered as strings) and strict about what the sync cannot do
without (a pk, the foreign keys): those raise ``PayloadError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from stocksyncd.errors import PayloadError
from stocksyncd.numbers import plain_decimal


def _int(data: Mapping[str, Any], key: str, what: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError(f"InvenTree {what}: {key!r} is not an integer: {value!r}")
    return value


def _opt_int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _bool(data: Mapping[str, Any], key: str, default: bool) -> bool:
    value = data.get(key)
    return value if isinstance(value, bool) else default


# Quantities and prices beyond this in magnitude are broken figures, not data.
MAX_FIGURE = Decimal(10) ** 15


def to_decimal(value: Any) -> Decimal | None:
    """A Decimal from a JSON number or numeric string; None for null or garbage.

    Text must be a plain decimal (``stocksyncd.numbers``): ``"1_000"`` or
    ``"١٢"`` is garbage, not 1000 or 12.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        value = repr(value)  # shortest round-trip text, so 0.1 stays 0.1
        try:
            result = Decimal(value)
        except InvalidOperation:
            return None
    elif isinstance(value, int | Decimal):
        result = Decimal(value)
    elif isinstance(value, str):
        parsed = plain_decimal(value)
        if parsed is None:
            return None
        result = parsed
    else:
        return None
    return result if result.is_finite() and abs(result) < MAX_FIGURE else None


def _metadata(data: Mapping[str, Any]) -> dict[str, Any] | None:
    value = data.get("metadata")
    return dict(value) if isinstance(value, dict) else None


@dataclass(frozen=True)
class Part:
    """``/api/part/`` item. ``notes`` is None in list answers (InvenTree strips it there)."""

    pk: int
    name: str
    ipn: str
    description: str
    active: bool
    purchaseable: bool
    category: int | None
    category_name: str = ""
    locked: bool = False
    notes: str | None = None
    metadata: dict[str, Any] | None = None  # only when the server embeds it

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Part:
        """Parse one part object."""
        return cls(
            pk=_int(data, "pk", "part"),
            name=_str(data, "name"),
            ipn=_str(data, "IPN"),
            description=_str(data, "description"),
            active=_bool(data, "active", True),
            purchaseable=_bool(data, "purchaseable", False),
            category=_opt_int(data, "category"),
            category_name=_str(data, "category_name"),
            locked=_bool(data, "locked", False),
            notes=_opt_str(data, "notes"),
            metadata=_metadata(data),
        )


@dataclass(frozen=True)
class Category:
    """``/api/part/category/`` item."""

    pk: int
    name: str
    parent: int | None
    pathstring: str

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Category:
        """Parse one category object."""
        return cls(
            pk=_int(data, "pk", "category"),
            name=_str(data, "name"),
            parent=_opt_int(data, "parent"),
            pathstring=_str(data, "pathstring"),
        )


@dataclass(frozen=True)
class Company:
    """``/api/company/`` item."""

    pk: int
    name: str
    is_supplier: bool
    is_manufacturer: bool = False
    active: bool = True
    currency: str = ""

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Company:
        """Parse one company object."""
        return cls(
            pk=_int(data, "pk", "company"),
            name=_str(data, "name"),
            is_supplier=_bool(data, "is_supplier", False),
            is_manufacturer=_bool(data, "is_manufacturer", False),
            active=_bool(data, "active", True),
            currency=_str(data, "currency"),
        )


@dataclass(frozen=True)
class ManufacturerPart:
    """``/api/company/part/manufacturer/`` item."""

    pk: int
    part: int
    manufacturer: int
    mpn: str

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> ManufacturerPart:
        """Parse one manufacturer part object."""
        return cls(
            pk=_int(data, "pk", "manufacturer part"),
            part=_int(data, "part", "manufacturer part"),
            manufacturer=_int(data, "manufacturer", "manufacturer part"),
            mpn=_str(data, "MPN"),
        )


@dataclass(frozen=True)
class SupplierPart:
    """``/api/company/part/`` item; ``sku`` is the supplier's (Mouser's) part number."""

    pk: int
    part: int
    supplier: int
    sku: str
    manufacturer_part: int | None = None
    mpn: str | None = None
    description: str | None = None
    link: str | None = None
    note: str | None = None
    packaging: str | None = None
    pack_quantity: str | None = None
    available: Decimal | None = None
    availability_updated: str | None = None
    active: bool = True

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> SupplierPart:
        """Parse one supplier part object."""
        return cls(
            pk=_int(data, "pk", "supplier part"),
            part=_int(data, "part", "supplier part"),
            supplier=_int(data, "supplier", "supplier part"),
            sku=_str(data, "SKU"),
            manufacturer_part=_opt_int(data, "manufacturer_part"),
            mpn=_opt_str(data, "MPN"),
            description=_opt_str(data, "description"),
            link=_opt_str(data, "link") or None,  # "" and null both mean no link
            note=_opt_str(data, "note"),
            packaging=_opt_str(data, "packaging"),
            pack_quantity=_opt_str(data, "pack_quantity"),
            available=to_decimal(data.get("available")),
            availability_updated=_opt_str(data, "availability_updated"),
            active=_bool(data, "active", True),
        )


@dataclass(frozen=True)
class PriceBreak:
    """``/api/company/price-break/`` item; ``part`` is the supplier part pk."""

    pk: int
    part: int
    quantity: Decimal
    price: Decimal | None
    price_currency: str

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> PriceBreak:
        """Parse one price break object."""
        quantity = to_decimal(data.get("quantity"))
        if quantity is None:
            raise PayloadError(f"InvenTree price break: bad quantity {data.get('quantity')!r}")
        return cls(
            pk=_int(data, "pk", "price break"),
            part=_int(data, "part", "price break"),
            quantity=quantity,
            price=to_decimal(data.get("price")),
            price_currency=_str(data, "price_currency"),
        )
