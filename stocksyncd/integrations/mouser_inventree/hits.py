"""Name-search results kept for review, and whether one may become a supplier part.

Mouser lists catalogue entries it cannot sell with the part number "N/A";
they are shown (the link still helps) but can never be created. Hits whose
manufacturer part number equals the searched name come first, N/A last;
otherwise Mouser's order is kept. Hit numbers on the review page index the
stored list, so the order is fixed when the entry is stored.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote

DESCRIPTION_MAX = 250
_TAG_RE = re.compile(r"<[^>]*>")
NA_NUMBERS = frozenset({"", "N/A"})


@dataclass(frozen=True)
class Hit:
    """One Mouser search result as the review page shows it."""

    mouser_pn: str
    na: bool
    manufacturer: str
    mpn: str
    description: str
    availability: str
    link: str


def is_na(mouser_pn: str | None) -> bool:
    """Mouser's marker for a catalogue entry without an orderable part number."""
    return (mouser_pn or "").strip().upper() in NA_NUMBERS


def plain_text(text: str | None, limit: int = DESCRIPTION_MAX) -> str:
    """Mouser descriptions may carry HTML tags and entities; InvenTree wants plain text."""
    if not text:
        return ""
    return " ".join(html.unescape(_TAG_RE.sub(" ", text)).split())[:limit]


def make_hit(
    *, mouser_pn: str | None, manufacturer: str | None, mpn: str | None,
    description: str | None, availability: str | None, link: str | None, na: bool = False,
) -> Hit:
    """A Hit from loosely typed values; ``na`` forces the N/A flag."""
    pn = (mouser_pn or "").strip()
    return Hit(
        mouser_pn=pn or "N/A",
        na=na or is_na(pn),
        manufacturer=(manufacturer or "").strip(),
        mpn=(mpn or "").strip(),
        description=plain_text(description),
        availability=(availability or "").strip(),
        link=(link or "").strip(),
    )


def order_hits(query: str, hits: Iterable[Hit]) -> list[Hit]:
    """Exact MPN/SKU matches first, N/A last, Mouser's order otherwise."""
    wanted = query.strip().lower()

    def rank(hit: Hit) -> int:
        if hit.na:
            return 2
        return 0 if wanted in (hit.mpn.lower(), hit.mouser_pn.lower()) else 1

    return sorted(hits, key=rank)


def search_url(template: str, query: str) -> str:
    """Mouser's web search for the name, from the configured template."""
    return template.replace("{query}", quote(query.strip(), safe=""))


def summarise_hits(
    query: str, hits: Sequence[Hit], total: int | None, search_template: str
) -> dict[str, Any]:
    """The ``data`` of a ``hits`` review entry."""
    ordered = order_hits(query, hits)
    return {
        "query": query,
        "count": max(total or 0, len(ordered)),
        "shown": len(ordered),
        "creatable": sum(1 for h in ordered if not h.na),
        "na": sum(1 for h in ordered if h.na),
        "search_link": search_url(search_template, query),
        "hits": [asdict(h) for h in ordered],
    }


def hits_message(summary: dict[str, Any]) -> str:
    """One line for the review page."""
    count = int(summary.get("count", 0))
    query = summary.get("query", "")
    if count == 0:
        return f"no Mouser hits for {query!r}"
    noun = "hit" if count == 1 else "hits"
    text = f"{count} Mouser {noun} for {query!r}"
    na = int(summary.get("na", 0))
    if na:
        text += f" ({na} N/A)"
    if count > int(summary.get("shown", count)):
        text += f", {summary.get('shown')} shown"
    return text


def check_creatable(kind: str, data: dict[str, Any], index: int) -> dict[str, Any]:
    """The stored hit ``index`` if it may become a supplier part; ValueError saying why not."""
    if kind != "hits":
        raise ValueError(f"this entry is a {kind!r} entry, not search hits")
    hits = data.get("hits")
    if not isinstance(hits, list) or not 0 <= index < len(hits):
        raise ValueError(f"hit {index} does not exist in this entry")
    hit = hits[index]
    if not isinstance(hit, dict):
        raise ValueError(f"hit {index} is malformed")
    if hit.get("na") or is_na(hit.get("mouser_pn")):
        raise ValueError("Mouser has no orderable part number (N/A) for this hit")
    created = data.get("created")
    if isinstance(created, dict) and created.get("supplier_part") is not None:
        raise ValueError(
            f"supplier part {created['supplier_part']} (SKU {created.get('sku')}) "
            "was already created from this entry"
        )
    if hit.get("created"):
        raise ValueError(f"this hit was already created ({hit['created']})")
    return hit


def mark_created(data: dict[str, Any], index: int, supplier_part: int, sku: str) -> dict[str, Any]:
    """A copy of the entry data recording that hit ``index`` became ``supplier_part``."""
    hits = [dict(h) if isinstance(h, dict) else h for h in data.get("hits", [])]
    hits[index]["created"] = f"supplier part {supplier_part}"
    return {**data, "hits": hits,
            "created": {"supplier_part": supplier_part, "sku": sku, "hit": index}}
