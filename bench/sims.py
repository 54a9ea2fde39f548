"""The simulator processes: InSales and MoySklad with benchmark data, each in its own process.

``python -m bench.sims --size 10000 --latency 0.05`` starts one child process
per simulator (``--api insales`` and ``--api moysklad``), each building the
same deterministic scenario and serving its API on 127.0.0.1 (real clock,
real rate limits, a fixed per-request latency), plus a control endpoint in
this process that forwards to the children. It prints one JSON line with the
URLs and serves until stdin closes.

Why separate processes: the real InSales and MoySklad are separate servers.
Serving both from one event loop made InSales' answers wait while the loop
built and gzipped 1000-row MoySklad pages, which added simulator time to the
measured runs. And the process under test spends CPU only on its own work.

Control (on ``control`` URL): ``GET /counts`` requests by API and method,
``POST /reset`` clears the request logs, ``POST /mutate?share=&seed=``
changes the stock of ``share`` of the MoySklad products. Each child has the
same endpoints for its own simulator; the control process sums them up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench import scenario
from stocksyncd.clock import SYSTEM_CLOCK
from stocksyncd.simulators.base import Simulator
from stocksyncd.simulators.insales import InSalesSimulator
from stocksyncd.simulators.moysklad import MoySkladSimulator

APIS = ("insales", "moysklad")
ROOT = Path(__file__).resolve().parent.parent


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


async def _start_control(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def _until_stdin_closes() -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin


async def serve_one(args: argparse.Namespace) -> None:
    """One simulator (``args.api``) with the whole scenario's data, and its control endpoint.

    Both children build the same InSales catalogue (deterministic for the
    seed); the MoySklad child derives its mirror from it and serves only
    MoySklad.
    """
    clock = ShiftedClock(offset=86400.0)  # the catalogue was last touched a day ago
    insales = InSalesSimulator(api_key=scenario.INSALES_KEY, password=scenario.INSALES_PASSWORD,
                               latency=args.latency, clock=clock)
    # On the shifted clock too: MoySklad's products and stock were last changed a
    # day ago, not in the second before the first changed-since window.
    moysklad = MoySkladSimulator(token=scenario.MOYSKLAD_TOKEN, latency=args.source_latency,
                                 clock=clock)
    variants = scenario.shop(insales, args.size, args.seed)
    mirror, facts = scenario.moysklad_mirror(moysklad, variants, args.changed, args.seed)
    facts.products = len(insales.products)
    clock.offset = 0.0
    sim: Simulator = insales if args.api == "insales" else moysklad

    async def get_counts(_: web.Request) -> web.Response:
        return web.json_response({args.api: counts(sim)})

    async def reset(_: web.Request) -> web.Response:
        sim.requests.clear()
        return web.json_response({"ok": True})

    async def mutate(request: web.Request) -> web.Response:
        share = float(request.query.get("share", "0.05"))
        seed = int(request.query.get("seed", "1"))
        return web.json_response({"changed": scenario.mutate_moysklad(moysklad, mirror, share,
                                                                      seed)})

    control = web.Application()
    control.router.add_get("/counts", get_counts)
    control.router.add_post("/reset", reset)
    if args.api == "moysklad":
        control.router.add_post("/mutate", mutate)
    runner, control_url = await _start_control(control)
    await sim.start()
    url = insales.url if args.api == "insales" else moysklad.base_url
    print(json.dumps({"url": url, "control": control_url, "facts": facts.__dict__}),
          flush=True)
    await _until_stdin_closes()
    await sim.stop()
    await runner.cleanup()


def start_children(args: argparse.Namespace) -> dict[str, subprocess.Popen[str]]:
    """One child process per simulator, all building the same scenario."""
    common = ["--size", str(args.size), "--seed", str(args.seed), "--changed", str(args.changed),
              "--latency", str(args.latency), "--source-latency", str(args.source_latency)]
    return {api: subprocess.Popen([sys.executable, "-m", "bench.sims", "--api", api, *common],
                                  cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
            for api in APIS}


async def serve(children: dict[str, subprocess.Popen[str]]) -> None:
    """A control endpoint that forwards to the simulator children; stops them at the end."""
    session: aiohttp.ClientSession | None = None
    runner: web.AppRunner | None = None
    try:
        loop = asyncio.get_running_loop()
        started: dict[str, dict[str, Any]] = {}
        for api, child in children.items():
            assert child.stdout is not None
            started[api] = json.loads(await loop.run_in_executor(None, child.stdout.readline))
        if started["insales"]["facts"] != started["moysklad"]["facts"]:
            raise RuntimeError("the simulator processes built different scenarios")
        session = aiohttp.ClientSession()

        async def forward(method: str, api: str, path: str) -> Any:
            assert session is not None
            async with session.request(method, started[api]["control"] + path) as resp:
                resp.raise_for_status()
                return await resp.json()

        async def get_counts(_: web.Request) -> web.Response:
            parts = await asyncio.gather(*(forward("GET", api, "/counts") for api in APIS))
            return web.json_response({k: v for part in parts for k, v in part.items()})

        async def reset(_: web.Request) -> web.Response:
            await asyncio.gather(*(forward("POST", api, "/reset") for api in APIS))
            return web.json_response({"ok": True})

        async def mutate(request: web.Request) -> web.Response:
            return web.json_response(await forward("POST", "moysklad",
                                                   "/mutate?" + request.query_string))

        control = web.Application()
        control.router.add_get("/counts", get_counts)
        control.router.add_post("/reset", reset)
        control.router.add_post("/mutate", mutate)
        runner, control_url = await _start_control(control)
        info: dict[str, Any] = {
            "insales": started["insales"]["url"], "moysklad": started["moysklad"]["url"],
            "control": control_url, "facts": started["insales"]["facts"],
        }
        print(json.dumps(info), flush=True)
        await _until_stdin_closes()
    finally:
        if runner is not None:
            await runner.cleanup()
        if session is not None:
            await session.close()
        for child in children.values():
            if child.stdin is not None:
                child.stdin.close()
        for child in children.values():
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--changed", type=float, default=0.05)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--source-latency", type=float, default=None)
    parser.add_argument("--api", choices=APIS, default=None,
                        help="serve only this simulator (a child of the control process)")
    args = parser.parse_args()
    if args.source_latency is None:
        args.source_latency = args.latency
    asyncio.run(serve_one(args) if args.api else serve(start_children(args)))


if __name__ == "__main__":
    main()
