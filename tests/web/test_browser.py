"""The review page in a real browser: Debian's chromium driven by Playwright."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from stocksyncd.runtime.web import create_app

from .conftest import FakeMouser, FakeView
from .test_review import seed

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def served(view: FakeView) -> AsyncIterator[str]:
    """The app on a real socket, as the daemon serves it."""
    runner = web.AppRunner(create_app(view))
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.browser
async def test_review_actions_in_chromium(served: str, view: FakeView, tmp_path: Path) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"chromium is missing at {CHROMIUM}: install Debian's chromium package")
    from playwright.async_api import async_playwright, expect

    ids = await seed(view.state)
    mouser: FakeMouser = view.live["parts"]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 1400})
            await page.goto(f"{served}/review")
            await expect(page.locator("h1")).to_contain_text("Mouser review")

            lifecycle = page.locator(f"#entry-{ids['lifecycle']}")
            await expect(lifecycle).to_be_visible()
            await lifecycle.get_by_role("button", name="Delete").click()
            await expect(page.locator(".flash.ok")).to_contain_text(
                f"Entry {ids['lifecycle']} deleted.")
            await expect(page.locator(f"#entry-{ids['lifecycle']}")).to_have_count(0)
            assert ids["lifecycle"] not in view.state.reviews

            hits = page.locator(f"#entry-{ids['hits']}")
            await hits.get_by_role("button", name="Create supplier part").click()
            await expect(page.locator(".flash.ok")).to_contain_text(
                "created supplier part 42 (SKU 595-LM358DR)")
            assert mouser.calls == [(ids["hits"], 0)]
            await expect(page.get_by_role("button", name="Create supplier part")).to_have_count(0)

            await page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
            mobile = await browser.new_page(viewport={"width": 390, "height": 900})
            await mobile.goto(f"{served}/review")
            await mobile.screenshot(path=str(tmp_path / "review-mobile.png"), full_page=True)
            await page.goto(f"{served}/")
            await page.screenshot(path=str(tmp_path / "status.png"), full_page=True)
        finally:
            await browser.close()
