"""The review page end to end: the real daemon, the real Mouser job, the simulators, chromium.

A person opens the review page the daemon serves, deletes an entry, creates an
InvenTree supplier part from a Mouser search hit with one click, filters by kind,
ignores a part and bulk-deletes the rest; the test then looks in InvenTree (the
simulator) for what the clicks did.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from stocksyncd.simulators.inventree import DEFAULT_TOKEN, InvenTreeSimulator
from stocksyncd.simulators.mouser import MouserSimulator, make_part

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
MOUSER_KEY = "00000000-test-key-0000-000000000000"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Shop:
    """InvenTree with two parts (one with a Mouser supplier part, one without) and Mouser."""

    def __init__(self) -> None:
        rng = random.Random(7)
        parts = [make_part(rng, 1, "LM358DR", "Texas Instruments"),
                 make_part(rng, 2, "NE555P", "Texas Instruments")]
        parts[0]["LifecycleStatus"] = "Obsolete"
        self.known_sku = parts[0]["MouserPartNumber"]
        self.hit_sku = parts[1]["MouserPartNumber"]
        self.mouser = MouserSimulator(parts, api_keys={MOUSER_KEY})
        self.inventree = InvenTreeSimulator()
        category = self.inventree.add_category("ICs")
        self.supplier = self.inventree.add_company("Mouser Electronics")["pk"]
        known = self.inventree.add_part("LM358DR", category=category["pk"])
        self.inventree.add_supplier_part(part=known["pk"], supplier=self.supplier,
                                         SKU=self.known_sku)
        self.searched = self.inventree.add_part("NE555P", category=category["pk"])["pk"]

    def created_for(self, part: int) -> list[str]:
        return [sp["SKU"] for sp in self.inventree.supplier_parts.values()
                if sp["part"] == part and sp["supplier"] == self.supplier]


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    s = Shop()
    await s.mouser.start()
    await s.inventree.start()
    try:
        yield s
    finally:
        await s.inventree.stop()
        await s.mouser.stop()


@pytest.fixture
async def daemon(shop: Shop, tmp_path: Path) -> AsyncIterator[str]:
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(f"""
[daemon]
state_url = "sqlite:///{tmp_path}/state.db"
log_format = "text"

[web]
listen = "127.0.0.1:{port}"

[integrations.parts]
type = "mouser-inventree"
every = "1h"
parts_per_run = 2
calls_per_run = 2
inventree_url = "{shop.inventree.url}"
inventree_token = "{DEFAULT_TOKEN}"
mouser_api_key = "{MOUSER_KEY}"
mouser_supplier = {shop.supplier}
base_url = "{shop.mouser.base_url}"
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOCKSYNCD_", "NOTIFY_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "stocksyncd", "--config", str(config), "run", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        yield base
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode == 0, err.decode()[-2000:]


async def wait_for_results(base: str) -> None:
    """Until the first run has stored both kinds of entries (bounded)."""
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            try:
                async with http.get(f"{base}/review") as resp:
                    page = await resp.text()
                    if "Create supplier part" in page and "Obsolete" in page:
                        return
            except aiohttp.ClientConnectionError:
                pass  # not listening yet
            await asyncio.sleep(0.1)
    raise AssertionError("the first run's review entries never appeared")


@pytest.mark.browser
async def test_delete_and_create_from_a_hit_in_chromium(
    shop: Shop, daemon: str, tmp_path: Path
) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"chromium is missing at {CHROMIUM}: install Debian's chromium package")
    from playwright.async_api import async_playwright, expect

    await wait_for_results(daemon)
    assert shop.created_for(shop.searched) == []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 1400})
            await page.goto(f"{daemon}/review")

            # The lifecycle change of the known SKU: read it, then delete it.
            lifecycle = page.locator("article, section, div").filter(
                has_text="lifecycle changed").filter(has_text="Obsolete").last
            await expect(lifecycle).to_be_visible()
            entries_before = await page.get_by_role("button", name="Delete").count()
            await lifecycle.get_by_role("button", name="Delete").click()
            await expect(page.get_by_role("button", name="Delete")).to_have_count(
                entries_before - 1)
            await expect(page.locator(".entry").get_by_text("lifecycle changed")).to_have_count(0)

            # The search hit for the part without a Mouser supplier part: create it.
            await page.get_by_role("button", name="Create supplier part").first.click()
            await expect(page.locator(".flash.ok")).to_contain_text(
                f"created supplier part 2 (SKU {shop.hit_sku})")
            await expect(page.get_by_role("button", name="Create supplier part")).to_have_count(0)

            # The filter: only search hits, then everything again.
            await page.get_by_role("link", name="Search hits").click()
            await expect(page.get_by_text("updated", exact=True)).to_have_count(0)
            await page.get_by_role("link", name="All", exact=True).click()

            # Ignore the known part: its flag is set in InvenTree, its entries go.
            known = page.locator("article.part").filter(has_text="LM358DR")
            await known.get_by_role("button", name="Ignore this part").click()
            await expect(page.locator(".flash.ok")).to_contain_text("ignored from now on")
            await expect(page.locator("article.part").filter(has_text="LM358DR")).to_have_count(0)

            # Bulk delete: tick what is left and delete it in one go.
            for box in await page.locator('input[name="entry"]').all():
                await box.check()
            await page.get_by_role("button", name="Delete selected").click()
            await expect(page.locator(".flash.ok")).to_contain_text("entries deleted")
            await expect(page.get_by_text("Nothing to review.")).to_be_visible()
            await page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
        finally:
            await browser.close()
    assert shop.created_for(shop.searched) == [shop.hit_sku]
    known_pk = next(pk for pk, p in shop.inventree.parts.items() if p["name"] == "LM358DR")
    assert shop.inventree.metadata[("part", known_pk)] == {"supplier_sync": {"exclude": "True"}}
