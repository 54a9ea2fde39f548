"""The lower bound: what no implementation of the MoySklad -> InSales job can beat.

Minimum requests: MoySklad ``ceil(items / 1000)`` product pages plus one stock
report; InSales ``ceil(products / 250)`` listing pages plus
``ceil(changed / 100)`` group updates. Reads of both sides may overlap; writes
need both sides complete (SPEC §2.1), so they come after.

* Latency bound: each phase takes ``ceil(requests / concurrency)`` round
  trips of ``latency``: MoySklad allows 5 parallel requests; InSales documents
  no concurrency limit, so by default the bound takes none (every page of a
  phase in one round trip: its budget binds instead); ``ins_concurrency = 4``
  gives the bound at the daemon's own default per shop.
* Budget bound: MoySklad allows 45 weight units per 3 s (by default the
  announced user-token weight of the day, as the daemon's default
  ``request_weight`` budgets it; 5 per stock report); InSales 500 requests per
  5 minutes.
  Spending U units needs at least ``(ceil(U / 45) - 1) * 3`` seconds between
  the first and the last request, and likewise for InSales.

The bound is the larger of the two.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from stocksyncd.clients.moysklad import user_token_weight

MS_PAGE = 1000
MS_PARALLEL = 5
MS_UNITS = 45.0
MS_WINDOW = 3.0
MS_WEIGHT_TODAY = 2.0  # user token from 12 May 2026: what the simulator charges
# What stocksyncd budgets per request on default settings (``request_weight``
# unset): MoySklad's announced weight of the day (3 units from 1 Sep 2026, 4
# from 1 Dec 2026). The benchmark runs the daemon on defaults.
MS_WEIGHT_DAEMON = user_token_weight(datetime.now(UTC))
MS_REPORT = 5.0
INS_PAGE = 250
INS_CONCURRENCY = 4
INS_LIMIT = 500
INS_WINDOW = 300.0
BATCH = 100


def _span(units: float, limit: float, window: float) -> float:
    return (math.ceil(units / limit) - 1) * window if units > 0 else 0.0


def lower_bound(facts: dict[str, Any], latency: float, ms_weight: float | None = None,
                ins_concurrency: int | None = None) -> dict[str, Any]:
    """The bound and its parts for one scenario (``facts`` from bench.scenario).

    ``ms_weight`` None: the weight of the day; ``ins_concurrency`` None: unlimited.
    """
    if ms_weight is None:
        ms_weight = MS_WEIGHT_DAEMON
    ms_pages = max(1, math.ceil(facts["source_items"] / MS_PAGE))
    ms_requests = ms_pages + 1
    ins_pages = max(1, math.ceil(facts["products"] / INS_PAGE))
    batches = math.ceil(facts["changed"] / BATCH)
    ins_parallel = ins_concurrency or max(ins_pages, batches, 1)
    reads = max(math.ceil(ms_requests / MS_PARALLEL),
                math.ceil(ins_pages / ins_parallel)) * latency
    writes = math.ceil(batches / ins_parallel) * latency
    latency_bound = reads + writes
    ms_span = _span(ms_pages * ms_weight + MS_REPORT, MS_UNITS, MS_WINDOW)
    ins_span = _span(ins_pages + batches, INS_LIMIT, INS_WINDOW)
    budget_bound = max(ms_span + latency + writes, ins_span + latency)
    return {
        "assumptions": {"moysklad_weight": ms_weight,
                        "insales_concurrency": ins_concurrency or "unlimited"},
        "requests": {"moysklad": ms_requests, "insales": ins_pages + batches},
        "latency_bound_s": latency_bound,
        "budget_bound_s": budget_bound,
        "bound_s": max(latency_bound, budget_bound),
        "limited_by": "latency" if latency_bound >= budget_bound else (
            "MoySklad budget" if ms_span >= ins_span else "InSales budget"),
    }
