"""The simulators for the failover tests, in their own process, with a control endpoint.

``python tests/failover/simhost.py`` builds a small world (an InSales shop and
a Kak2c account sharing ``VARIANTS`` barcodes, every quantity different; an
InvenTree with ``PARTS`` parts whose Mouser supplier parts Mouser knows),
starts the simulators on 127.0.0.1, prints one JSON line with their URLs and
credentials, and serves until stdin closes. The daemons under test and the
simulators then never share a process, so killing a daemon cannot touch them.

Control (on the ``control`` URL):

* ``GET /stats`` what the simulators saw: every InSales stock write that was
  applied (variant id -> quantities written, in order), requests held right now,
  the Kak2c product listings (one per stock run), the Mouser part-number
  searches in order, and the current InSales quantities by barcode;
* ``POST /hold?after=N`` let N more InSales writes through, then hold the next
  one (it never reaches the shop) until the client goes away;
* ``POST /slow?seconds=S`` every InSales write waits S seconds before it is
  applied (``write_arrivals`` and ``writing`` in the stats count them as they come);
* ``POST /busy?seconds=S`` the next InSales write is answered 503 with
  ``Retry-After: S`` (``busy_answers`` counts them), so its sender waits to retry.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from stocksyncd.simulators.insales import InSalesSimulator
from stocksyncd.simulators.inventree import DEFAULT_TOKEN, InvenTreeSimulator
from stocksyncd.simulators.kak2c import Kak2cSimulator
from stocksyncd.simulators.mouser import MouserSimulator, make_part

VARIANTS = 150
PARTS = 6
SUPPLIER_PK = 3
MOUSER_KEY = "00000000-failover-key-0000-00000000"
KAK2C_LOGIN = "fulfil@example.com"
KAK2C_PASSWORD = "kak2c-failover-pass"
INSALES_KEY = "failover-key"
INSALES_PASSWORD = "failover-pass"
WRITE_PATH = "variants_group_update"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def barcode(i: int) -> str:
    """The i-th shared barcode."""
    return f"46000000{i:05d}"


def sku(i: int) -> str:
    """The Mouser part number of the i-th InvenTree part."""
    return f"595-FAIL{i:03d}"


class WriteGate:
    """Holds the InSales write that comes after ``after`` more have passed."""

    def __init__(self) -> None:
        self.after: int | None = None
        self.held = 0
        self.delay = 0.0
        self.arrivals = 0  # write requests that reached the shop's door, applied or not
        self.writing = 0  # of those, being delayed right now
        self._never = asyncio.Event()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "PUT" and WRITE_PATH in request.path:
            self.arrivals += 1
            if self.delay:
                self.writing += 1
                try:
                    await asyncio.sleep(self.delay)
                finally:
                    self.writing -= 1
        if request.method == "PUT" and WRITE_PATH in request.path and self.after is not None:
            if self.after > 0:
                self.after -= 1
            else:
                self.after = None
                self.held += 1
                try:
                    await self._never.wait()  # until the client's connection goes away
                finally:
                    self.held -= 1
        return await handler(request)


def build() -> tuple[InSalesSimulator, Kak2cSimulator, InvenTreeSimulator, MouserSimulator]:
    """The world every failover test starts from."""
    insales = InSalesSimulator(api_key=INSALES_KEY, password=INSALES_PASSWORD)
    kak2c = Kak2cSimulator(login=KAK2C_LOGIN, password=KAK2C_PASSWORD)
    for start in range(0, VARIANTS, 10):
        idx = range(start, min(start + 10, VARIANTS))
        insales.add_product([{"barcode": barcode(i), "quantity": 0} for i in idx])
        kak2c.add_product([kak2c.make_variant(barcode(i), i + 1) for i in idx])

    rng = random.Random(7)
    catalogue = []
    inventree = InvenTreeSimulator(token=DEFAULT_TOKEN)
    inventree.add_category("ICs", pk=1)
    inventree.add_company("Mouser Electronics", pk=SUPPLIER_PK)
    for i in range(PARTS):
        part = make_part(rng, i, f"FAIL{i:03d}", "Texas Instruments")
        part["MouserPartNumber"] = sku(i)
        catalogue.append(part)
        pk = 10 * (i + 1)
        inventree.add_part(f"FAIL{i:03d}", pk=pk, category=1)
        inventree.add_supplier_part(part=pk, supplier=SUPPLIER_PK, SKU=sku(i), pk=i + 1)
    mouser = MouserSimulator(parts=catalogue, api_keys={MOUSER_KEY})
    return insales, kak2c, inventree, mouser


def stats(insales: InSalesSimulator, kak2c: Kak2cSimulator, mouser: MouserSimulator,
          gate: WriteGate) -> dict[str, Any]:
    """What the control endpoint reports."""
    writes: dict[str, list[Any]] = {}
    write_requests = 0
    busy = 0
    for r in insales.requests:
        if r.method == "PUT" and WRITE_PATH in r.path and r.status == 503:
            busy += 1
        if r.method != "PUT" or WRITE_PATH not in r.path or r.status != 200:
            continue
        write_requests += 1
        for entry in (r.body or {}).get("variants", []):
            writes.setdefault(str(entry.get("id")), []).append(entry.get("quantity"))
    searches = []
    for r in mouser.requests:
        if r.path.endswith("/search/partnumber") and r.status == 200:
            searches.append(((r.body or {}).get("SearchByPartRequest") or {})
                            .get("mouserPartNumber"))
    return {
        "writes": writes,
        "write_requests": write_requests,
        "held": gate.held,
        "busy_answers": busy,
        "write_arrivals": gate.arrivals,
        "writing": gate.writing,
        "kak2c_listings": kak2c.count("GET", "/products"),
        "mouser_searches": searches,
        "quantities": {v["barcode"]: v["quantity"] for v in insales.variants()},
        "variant_ids": {v["barcode"]: v["id"] for v in insales.variants()},
    }


async def serve() -> None:
    """Start everything, print the URLs, serve until stdin closes."""
    insales, kak2c, inventree, mouser = build()
    gate = WriteGate()
    insales.app.middlewares.append(gate.middleware)  # inside the request log
    for sim in (insales, kak2c, inventree, mouser):
        await sim.start()

    async def get_stats(_: web.Request) -> web.Response:
        return web.json_response(stats(insales, kak2c, mouser, gate), dumps=_dumps)

    async def hold(request: web.Request) -> web.Response:
        gate.after = int(request.query.get("after", "0"))
        return web.json_response({"after": gate.after})

    async def slow(request: web.Request) -> web.Response:
        gate.delay = float(request.query.get("seconds", "0"))
        return web.json_response({"seconds": gate.delay})

    async def busy(request: web.Request) -> web.Response:
        seconds = request.query.get("seconds", "3")
        insales.inject(status=503, headers={"Retry-After": seconds}, match=WRITE_PATH,
                       method="PUT")
        return web.json_response({"seconds": seconds})

    control = web.Application()
    control.router.add_get("/stats", get_stats)
    control.router.add_post("/hold", hold)
    control.router.add_post("/slow", slow)
    control.router.add_post("/busy", busy)
    runner = web.AppRunner(control, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    print(orjson.dumps({
        "control": f"http://127.0.0.1:{port}",
        "insales": insales.url, "insales_key": INSALES_KEY, "insales_password": INSALES_PASSWORD,
        "kak2c": kak2c.base_url, "kak2c_login": KAK2C_LOGIN, "kak2c_password": KAK2C_PASSWORD,
        "inventree": inventree.url, "inventree_token": DEFAULT_TOKEN,
        "mouser": mouser.base_url, "mouser_key": MOUSER_KEY, "mouser_supplier": SUPPLIER_PK,
        "parts": [sku(i) for i in range(PARTS)], "variants": VARIANTS,
    }).decode(), flush=True)

    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # returns when stdin closes
    await runner.cleanup()
    for sim in (insales, kak2c, inventree, mouser):
        await sim.stop()


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


if __name__ == "__main__":
    asyncio.run(serve())
