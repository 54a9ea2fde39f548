"""Which parts the job leaves alone, decided before any Mouser call is spent.

A part is skipped when it is inactive, not purchasable, or flagged in its own
metadata or in the metadata of its category or any ancestor category. Two
flag spellings are honoured: the original plugin's
``{"supplier_sync": {"exclude": "True"}}`` and the current plugin's
``{"SupplierSyncPlugin": {"SyncIgnore": true}}``, so a migrated database keeps
its exclusions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

REASON_INACTIVE = "inactive"
REASON_NOT_PURCHASABLE = "not_purchasable"
REASON_PART_EXCLUDED = "excluded_part"
REASON_CATEGORY_EXCLUDED = "excluded_category"

_TRUE_STRINGS = frozenset({"true", "1", "yes"})


@dataclass(frozen=True)
class PartInfo:
    """The part fields exclusion and the search need."""

    pk: int
    name: str
    active: bool = True
    purchaseable: bool = True
    category: int | None = None


def flag_set(value: Any) -> bool:
    """True for true, 1, and the strings "true"/"True"/"1"/"yes" (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value == 1
    if isinstance(value, str):
        return value.strip().lower() in _TRUE_STRINGS
    return False


def metadata_excludes(metadata: Any) -> bool:
    """Whether a metadata object (possibly None, {} or garbage) carries an exclude flag."""
    if not isinstance(metadata, dict):
        return False
    old = metadata.get("supplier_sync")
    if isinstance(old, dict) and flag_set(old.get("exclude")):
        return True
    new = metadata.get("SupplierSyncPlugin")
    return isinstance(new, dict) and flag_set(new.get("SyncIgnore"))


def status_reason(part: PartInfo) -> str | None:
    """Why the part's own fields exclude it (no metadata needed), or None."""
    if not part.active:
        return REASON_INACTIVE
    if not part.purchaseable:
        return REASON_NOT_PURCHASABLE
    return None


def metadata_reason(part_metadata: Any, category_metadata: Iterable[Any]) -> str | None:
    """Why metadata excludes the part; ``category_metadata`` is its category and ancestors."""
    if metadata_excludes(part_metadata):
        return REASON_PART_EXCLUDED
    if any(metadata_excludes(m) for m in category_metadata):
        return REASON_CATEGORY_EXCLUDED
    return None


def exclusion_reason(
    part: PartInfo, part_metadata: Any = None, category_metadata: Iterable[Any] = ()
) -> str | None:
    """The first reason that excludes the part, or None when it takes part."""
    return status_reason(part) or metadata_reason(part_metadata, category_metadata)
