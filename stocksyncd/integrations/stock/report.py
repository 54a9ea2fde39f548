"""What a stock run reports about the keys it left alone and the writes refused.

Kept apart from the pipeline: the pipeline only copies these into the result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from stocksyncd.integrations.stock.plan import PlannedWrite, Skip

MAX_REFUSALS_IN_MESSAGE = 3
# A list unchanged this long is stored again, so that history retention (days)
# never drops the run the later ones point to.
RESTATE_SKIPS_AFTER = 86400.0


def product_admin_url(shop_url: str, product_id: int | None) -> str:
    """The product's page in the shop's admin, or "" without a product."""
    if product_id is None or not shop_url:
        return ""
    return f"{shop_url.rstrip('/')}/admin2/products/{product_id}"


def skip_rows(skips: Iterable[Skip], shop_url: str,
              titles: Callable[[int], str] | None = None) -> list[dict[str, Any]]:
    """The skips as JSON-able rows (stored with the run, shown on its page), with the
    InSales product's title (``titles``) and a link to it in the shop's admin."""
    rows = []
    for s in skips:
        title = titles(s.product_id) if titles is not None and s.product_id is not None else ""
        rows.append({**s._asdict(), "product_title": title,
                     "admin_url": product_admin_url(shop_url, s.product_id)})
    return rows


class StoredSkips:
    """Which run last stored a job's list of keys left alone.

    A quiet minute leaves the same keys alone as the minute before, and the
    list (up to a thousand rows a reason) stored with every run cost about
    400 KB a minute at 100k variants. A run whose list equals the last one
    stored names that run instead (``skips_as_in``); the web pages show that
    run's list.
    """

    def __init__(self) -> None:
        self._last: tuple[str, float, bytes] | None = None  # run id, when, digest

    def record(self, details: dict[str, Any], rows: list[dict[str, Any]], run_id: str,
               now: float) -> None:
        """Put ``rows`` into ``details``, or the id of the run that stored the same."""
        digest = hashlib.blake2b(orjson.dumps(rows)).digest()
        last = self._last
        if last is not None and last[2] == digest and now - last[1] < RESTATE_SKIPS_AFTER:
            details["skips_as_in"] = last[0]
            return
        details["skips"] = rows
        self._last = (run_id, now, digest)

    def forget(self) -> None:
        """The last stored list may not have been recorded: store the next one in full."""
        self._last = None


def partial_message(written: int, writes: list[PlannedWrite],
                    failed: Mapping[int, str]) -> str:
    """'9 of 10 written; 1 refused: 4600000000228 (variant 5): negative stock'.

    The first words say how much went through, so a failed run with most of its
    writes done does not read as if nothing happened.
    """
    keys = {w.variant_id: w.key for w in writes}
    shown = [f"{keys.get(vid, '?')} (variant {vid}): {why}"
             for vid, why in sorted(failed.items())[:MAX_REFUSALS_IN_MESSAGE]]
    rest = len(failed) - len(shown)
    more = f"; and {rest} more" if rest > 0 else ""
    return (f"{written} of {len(writes)} written; {len(failed)} refused: "
            + "; ".join(shown) + more)
