"""What a stock run reports about the keys it left alone and the writes refused.

Kept apart from the pipeline: the pipeline only copies these into the result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from stocksyncd.integrations.stock.plan import PlannedWrite, Skip

MAX_REFUSALS_IN_MESSAGE = 3


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
