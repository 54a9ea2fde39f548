"""Kak2c paging: how long reading every product takes by page size and pages in flight.

    python -m bench.kak2c_paging [--size 100000] [--latency 0.05]

The Kak2c simulator runs in its own process (``--serve``) with ``--size``
variants (half the products with one variant, half with 2-5) and a fixed
per-request latency; this process reads the whole list with ``Kak2cClient``
for each page size and concurrency of the grid, through the client's own
limiter (10 requests a second). Kak2c documents no page-size cap and no rate or
concurrency limit, so the client's defaults are an assumption chosen from this
grid. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from stocksyncd.clients.kak2c import Kak2cClient, kak2c_limiter, kak2c_transport
from stocksyncd.clock import SYSTEM_CLOCK
from stocksyncd.simulators.kak2c import Kak2cSimulator

ROOT = Path(__file__).resolve().parent.parent
LOGIN, PASSWORD = "bench@example.com", "bench-password"
PAGE_SIZES = (100, 250, 500, 1000)
CONCURRENCY = (1, 2, 4, 8)


async def serve(size: int, latency: float) -> None:
    """Serve a Kak2c simulator with ``size`` variants until stdin closes."""
    sim = Kak2cSimulator(login=LOGIN, password=PASSWORD, latency=latency)
    sim.catalogue(size, seed=1)
    await sim.start()
    print(json.dumps({"url": sim.base_url, "products": len(sim.products)}), flush=True)
    await asyncio.to_thread(sys.stdin.read)
    await sim.stop()


async def read_all(url: str, page_size: int, concurrency: int) -> dict[str, Any]:
    """One full read; wall and CPU seconds of this process, requests sent."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        limiter = kak2c_limiter(SYSTEM_CLOCK, concurrency=concurrency)
        transport = kak2c_transport(session, base_url=url, limiter=limiter)
        client = Kak2cClient(transport, LOGIN, PASSWORD, SYSTEM_CLOCK)
        await client.login()
        wall, cpu = time.perf_counter(), time.process_time()
        products = await client.products(page_size, concurrency=concurrency)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    variants = sum(len(p["variants"]) for p in products)
    return {"page_size": page_size, "concurrency": concurrency, "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2), "requests": client.requests_made() - 1,
            "variants": variants}


def measure(size: int, latency: float, grid: list[tuple[int, int]]) -> dict[str, Any]:
    """Start the simulator process, read the list once per grid point, stop it."""
    sim = subprocess.Popen(
        [sys.executable, "-m", "bench.kak2c_paging", "--serve", "--size", str(size),
         "--latency", str(latency)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert sim.stdout is not None
        info = json.loads(sim.stdout.readline())
        rows = [asyncio.run(read_all(info["url"], ps, c)) for ps, c in grid]
    finally:
        if sim.stdin is not None:
            sim.stdin.close()
        sim.wait(timeout=30)
    return {"size": size, "latency": latency, "products": info["products"], "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--page-sizes", default=",".join(map(str, PAGE_SIZES)))
    parser.add_argument("--concurrency", default=",".join(map(str, CONCURRENCY)))
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.size, args.latency))
        return 0
    grid = [(int(ps), int(c)) for ps in args.page_sizes.split(",")
            for c in args.concurrency.split(",")]
    result = measure(args.size, args.latency, grid)
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    name = f"kak2c-paging-{args.size // 1000}k-{args.latency * 1000:.0f}ms.json"
    (results / name).write_text(json.dumps(result, indent=1))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
