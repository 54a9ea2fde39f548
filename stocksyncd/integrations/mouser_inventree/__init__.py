"""Mouser -> InvenTree supplier data (``type = "mouser-inventree"``).

``build`` wires the two clients to the runtime's shared sessions; the job
itself lives in ``job``, the decisions it takes in the pure modules
(``cursor``, ``exclusion``, ``note``, ``diff``, ``hits``), its Mouser calls
go through ``gate`` (ledger, limits), its InvenTree writes through ``writes``
(write-ahead audit, safe price swaps), and ``outcomes`` names how a step
that did not succeed ended.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stocksyncd.clients.inventree import InvenTreeClient, server_root
from stocksyncd.clients.mouser import MouserClient
from stocksyncd.http.ratelimit import WindowLimiter
from stocksyncd.http.retry import NO_RETRY
from stocksyncd.http.transport import Transport
from stocksyncd.integrations.mouser_inventree.job import MouserInvenTreeJob

if TYPE_CHECKING:
    from stocksyncd.config import Config, MouserInvenTreeConfig
    from stocksyncd.integrations.base import Resources


def build(name: str, cfg: MouserInvenTreeConfig, config: Config,
          res: Resources) -> MouserInvenTreeJob:
    """The integration ``name`` over the runtime's sessions and the shared Mouser limiter."""
    inventree = Transport(
        res.session("inventree:" + name), api="inventree",
        base_url=server_root(cfg.inventree_url), clock=res.clock, timeout=cfg.timeout,
        headers=InvenTreeClient.headers(cfg.inventree_token.get_secret_value()),
        observer=res.observer, limits=config.http.limits("inventree"),
    )
    # Every Mouser integration of the process shares one per-minute budget.
    limiter = res.limiter(
        "mouser",
        lambda: WindowLimiter(cfg.calls_per_minute, 60.0, clock=res.clock, name="mouser"),
    )
    # No transport retries: each attempt costs a call of the daily quota, and a
    # failed part is retried by a later run instead.
    mouser = Transport(
        res.session("mouser", proxy=cfg.proxy), api="mouser", base_url=cfg.base_url,
        limiter=limiter, retry=NO_RETRY, clock=res.clock, timeout=cfg.timeout,
        observer=res.observer, limits=config.http.limits("mouser"),
    )
    return MouserInvenTreeJob(
        name, cfg,
        inventree=InvenTreeClient(inventree),
        mouser=MouserClient(mouser, cfg.mouser_api_key.get_secret_value(),
                            packaging_labels=cfg.packaging_labels),
        clock=res.clock,
        state=res.state,
    )


__all__ = ["MouserInvenTreeJob", "build"]
