"""The bounds every request to one upstream lives within (configured per API).

An upstream decides how long it asks us to wait and how much it sends; these
bounds make sure neither can stall a shop or exhaust the daemon's memory.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024

# A few times the largest legitimate answer of each API: an InSales products
# page (250 products with descriptions) or a MoySklad product page (1000 rows)
# is a few MB, a stock report of 100k products about 7 MB.
DEFAULT_MAX_RESPONSE_MIB: dict[str, int] = {
    "insales": 64,
    "moysklad": 64,
    "kak2c": 16,
    "mouser": 8,
    "inventree": 32,
}
FALLBACK_MAX_RESPONSE_MIB = 32


@dataclass(frozen=True)
class Limits:
    """Caps on waits and answers, and when to leave a rate-limiting upstream alone."""

    # The longest Retry-After (or X-Lognex-Retry-After) honoured; a longer one
    # fails the run at once without holding back the shop's other jobs.
    max_wait: float = 300.0
    # Every rate-limit answer holds the upstream's requests back at least this
    # long, even when it says "retry after 0".
    min_429_wait: float = 1.0
    # This many rate-limit answers within ``breaker_window`` seconds open the
    # circuit: nothing is sent to the upstream for ``breaker_pause`` seconds.
    # MoySklad locks an account at 200 refused requests a minute.
    breaker_429s: int = 20
    breaker_window: float = 60.0
    breaker_pause: float = 300.0
    max_response_bytes: int = FALLBACK_MAX_RESPONSE_MIB * MIB


def default_limits(api: str) -> Limits:
    """The defaults for ``api`` (its answer cap from ``DEFAULT_MAX_RESPONSE_MIB``)."""
    mib = DEFAULT_MAX_RESPONSE_MIB.get(api, FALLBACK_MAX_RESPONSE_MIB)
    return Limits(max_response_bytes=mib * MIB)
