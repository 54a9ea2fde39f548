"""The original algorithm as a plain sequential script: the baseline stocksyncd replaces.

What the predecessor MoySklad -> InSales script did, on today's endpoints:
fetch every MoySklad product with an article page by page and the stock
report, fetch every InSales product page by page (``count.json`` first, as
the original did), match article == sku, and send *every* matched variant in
batches of 100, one request at a time. It obeys the same limits it would meet
in production: on 429/503 it sleeps for ``Retry-After`` (InSales, seconds) or
``X-Lognex-Retry-After`` (MoySklad, milliseconds) and repeats the request.

With ``--changes-only`` it is the same algorithm sending only the variants
whose InSales quantity differs: how much of the daemon's lead over the original
comes from writing only changes, and how much from everything else.

``python -m bench.reference SIMS_JSON [--changes-only]`` prints one JSON
object: wall time, CPU seconds, requests by API, 429/503 answers met, variants
sent.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import math
import resource
import sys
import time
import urllib.parse
from typing import Any

from bench import scenario

PAGE_MS = 1000
PAGE_INSALES = 250
BATCH = 100


class Api:
    """One keep-alive connection to one host, requests strictly one at a time."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        url = urllib.parse.urlsplit(base)
        self.prefix = url.path.rstrip("/")
        self.conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=120)
        self.headers = headers
        self.requests = 0
        self.limited = 0
        self.slept = 0.0

    def call(self, method: str, path: str, params: dict[str, Any] | None = None,
             body: Any = None) -> Any:
        target = self.prefix + path
        if params:
            target += "?" + urllib.parse.urlencode(params)
        data = json.dumps(body).encode() if body is not None else None
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        while True:
            self.requests += 1
            self.conn.request(method, target, body=data, headers=headers)
            resp = self.conn.getresponse()
            raw = resp.read()
            if resp.status in (429, 503):
                self.limited += 1
                wait = 1.0
                if resp.getheader("X-Lognex-Retry-After"):
                    wait = int(resp.getheader("X-Lognex-Retry-After") or "1000") / 1000
                elif resp.getheader("Retry-After"):
                    wait = float(resp.getheader("Retry-After") or "1")
                self.slept += wait
                time.sleep(wait)
                continue
            if resp.status != 200:
                raise RuntimeError(f"{method} {target}: HTTP {resp.status}")
            if resp.getheader("Content-Encoding") == "gzip":
                raw = gzip.decompress(raw)
            return json.loads(raw)


def run(sims: dict[str, Any], changes_only: bool = False) -> dict[str, Any]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    ms = Api(sims["moysklad"], {"Authorization": f"Bearer {scenario.MOYSKLAD_TOKEN}",
                                "Accept-Encoding": "gzip"})
    auth = base64.b64encode(
        f"{scenario.INSALES_KEY}:{scenario.INSALES_PASSWORD}".encode()).decode()
    shop = Api(sims["insales"], {"Authorization": f"Basic {auth}"})

    # 1. Every MoySklad product with an article, then the stock of each.
    products: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = ms.call("GET", "/entity/product",
                       {"filter": "article!=", "limit": PAGE_MS, "offset": offset})
        products.extend(page["rows"])
        if len(page["rows"]) < PAGE_MS:
            break
        offset += PAGE_MS
    report = ms.call("GET", "/report/stock/all/current",
                     {"stockType": "quantity", "include": "zeroLines"})
    stock = {row["assortmentId"]: row["quantity"] for row in report}
    by_article = {p["article"]: int(stock.get(p["id"], 0)) for p in products}

    # 2. Every InSales product with its variants.
    total = shop.call("GET", "/admin/products/count.json")["count"]
    variants: list[dict[str, Any]] = []
    for n in range(1, math.ceil(total / PAGE_INSALES) + 1):
        for product in shop.call("GET", "/admin/products.json",
                                 {"page": n, "per_page": PAGE_INSALES}):
            variants.extend(product["variants"])

    # 3. Match; 4. send every matched variant, 100 per request.
    updates = [{"id": v["id"], "quantity": by_article[v["sku"]]}
               for v in variants if v.get("sku") in by_article
               and not (changes_only and v.get("quantity") == by_article[v["sku"]])]
    for i in range(0, len(updates), BATCH):
        shop.call("PUT", "/admin/products/variants_group_update.json",
                  body={"variants": updates[i:i + BATCH]})
    return {
        "wall_s": time.perf_counter() - wall0, "cpu_s": time.process_time() - cpu0,
        "requests": {"insales": shop.requests, "moysklad": ms.requests},
        "limited": {"insales": shop.limited, "moysklad": ms.limited},
        "slept_s": {"insales": shop.slept, "moysklad": ms.slept},
        "sent": len(updates),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    print(json.dumps(run(json.loads(sys.argv[1]), changes_only="--changes-only" in sys.argv)),
          flush=True)


if __name__ == "__main__":
    main()
