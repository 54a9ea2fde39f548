"""The simulator process: InSales + MoySklad with benchmark data, and a control endpoint.

``python -m bench.sims --size 10000 --latency 0.05`` builds the scenario,
starts the simulators on 127.0.0.1 (real clock, real rate limits, a fixed
per-request latency), prints one JSON line with their URLs, and serves until
stdin closes. Keeping the simulators in their own process means the process
under test spends CPU only on its own work.

Control (on ``control`` URL): ``GET /counts`` requests by API and method,
``POST /reset`` clears the request logs, ``POST /mutate?share=&seed=``
changes the stock of ``share`` of the MoySklad products.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from aiohttp import web

from bench import scenario
from stocksyncd.clock import SYSTEM_CLOCK
from stocksyncd.simulators.base import Simulator
from stocksyncd.simulators.insales import InSalesSimulator
from stocksyncd.simulators.moysklad import MoySkladSimulator


class ShiftedClock:
    """The real clock, with wall time moved back by ``offset`` seconds while data is built.

    A real shop's products were last changed hours or days ago, not in the
    second before the benchmark; the incremental InSales scan depends on it.
    """

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def monotonic(self) -> float:
        return SYSTEM_CLOCK.monotonic()

    def time(self) -> float:
        return SYSTEM_CLOCK.time() - self.offset

    def now(self) -> Any:
        return SYSTEM_CLOCK.now()

    async def sleep(self, seconds: float) -> None:
        await SYSTEM_CLOCK.sleep(seconds)


def counts(sim: Simulator) -> dict[str, int]:
    """Requests seen by ``sim``, by method, and how many were refused for the budget."""
    out: dict[str, int] = {"total": len(sim.requests)}
    for r in sim.requests:
        out[r.method] = out.get(r.method, 0) + 1
    out["refused"] = sum(1 for r in sim.requests if r.status in (429, 503))
    return out


async def serve(args: argparse.Namespace) -> None:
    clock = ShiftedClock(offset=86400.0)  # the catalogue was last touched a day ago
    insales = InSalesSimulator(api_key=scenario.INSALES_KEY, password=scenario.INSALES_PASSWORD,
                               latency=args.latency, clock=clock)
    moysklad = MoySkladSimulator(token=scenario.MOYSKLAD_TOKEN, latency=args.source_latency)
    variants = scenario.shop(insales, args.size, args.seed)
    mirror, facts = scenario.moysklad_mirror(moysklad, variants, args.changed, args.seed)
    facts.products = len(insales.products)
    clock.offset = 0.0

    async def get_counts(_: web.Request) -> web.Response:
        return web.json_response({"insales": counts(insales), "moysklad": counts(moysklad)})

    async def reset(_: web.Request) -> web.Response:
        insales.requests.clear()
        moysklad.requests.clear()
        return web.json_response({"ok": True})

    async def mutate(request: web.Request) -> web.Response:
        share = float(request.query.get("share", "0.05"))
        seed = int(request.query.get("seed", "1"))
        return web.json_response({"changed": scenario.mutate_moysklad(moysklad, mirror, share,
                                                                      seed)})

    control = web.Application()
    control.router.add_get("/counts", get_counts)
    control.router.add_post("/reset", reset)
    control.router.add_post("/mutate", mutate)
    runner = web.AppRunner(control, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await insales.start()
    await moysklad.start()
    info: dict[str, Any] = {
        "insales": insales.url, "moysklad": moysklad.base_url,
        "control": f"http://127.0.0.1:{port}",
        "facts": facts.__dict__,
    }
    print(__import__("json").dumps(info), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    await insales.stop()
    await moysklad.stop()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--changed", type=float, default=0.05)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--source-latency", type=float, default=None)
    args = parser.parse_args()
    if args.source_latency is None:
        args.source_latency = args.latency
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
