"""Which parts a run looks at: a persistent cursor walking the catalogue in pk order.

The cursor is the pk of the next part to look at. Parts come and go between
runs, so it is not an index: a run starts at the first candidate whose pk is
at least the cursor, and wraps to the smallest pk after the largest.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable

# Where the job keeps its cursor and its other small values in the state store.
STATE_SCOPE = "mouser-inventree"


def rotation(pks: Iterable[int], cursor: int | None) -> list[int]:
    """Every candidate once, starting at the first pk >= ``cursor``, wrapping around."""
    ordered = sorted(set(pks))
    if not ordered:
        return []
    start = 0 if cursor is None else bisect_left(ordered, cursor)
    if start >= len(ordered):
        start = 0
    return ordered[start:] + ordered[:start]


def select(pks: Iterable[int], cursor: int | None, n: int) -> list[int]:
    """The next ``n`` candidates after the cursor (fewer when the catalogue is smaller)."""
    return rotation(pks, cursor)[: max(0, n)]


def cursor_after(pks: Iterable[int], pk: int) -> int | None:
    """The cursor to store once ``pk`` is done: the next candidate, wrapping; None if empty."""
    ordered = sorted(set(pks))
    if not ordered:
        return None
    i = bisect_right(ordered, pk)
    return ordered[i] if i < len(ordered) else ordered[0]
