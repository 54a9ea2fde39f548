"""The history pages in a real browser: Debian's chromium driven by Playwright.

Set STOCKSYNCD_SCREENSHOT_DIR=docs to refresh the screenshots in docs/.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

import pytest

from ..test_browser import CHROMIUM, CHROMIUM_ARGS
from .conftest import KEY


def keep(shot: Path) -> None:
    """Copy a screenshot to STOCKSYNCD_SCREENSHOT_DIR when asked to."""
    target = os.environ.get("STOCKSYNCD_SCREENSHOT_DIR")
    if target:
        shutil.copy(shot, Path(target) / shot.name)


@pytest.mark.browser
async def test_runs_search_csv_and_russian_in_chromium(served: str, tmp_path: Path) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"chromium is missing at {CHROMIUM}: install Debian's chromium package")
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=CHROMIUM_ARGS)
        try:
            en = await browser.new_context(viewport={"width": 1280, "height": 900},
                                           locale="en-US", accept_downloads=True)
            page = await en.new_page()

            # The runs page: filter by integration and status with the form, then page on.
            await page.goto(f"{served}/runs")
            await expect(page.locator("h1")).to_have_text("Runs")
            await expect(page.locator(".pager").first).to_contain_text("page 1 of 3, 120 runs")
            await page.select_option("#f-integration", "warehouse")
            await page.select_option("#f-status", "failed")
            await page.click("form.filters button[type=submit]")
            await expect(page.locator(".pager").first).to_contain_text("12 runs")
            assert "status=failed" in page.url and "integration=warehouse" in page.url
            rows = page.locator("table.stack tbody tr")
            await expect(rows).to_have_count(12)
            await expect(rows.first.locator(".badge.failed")).to_have_text("failed")
            await page.goto(f"{served}/runs")
            await page.click("a[rel=next] >> nth=0")
            await expect(page.locator(".pager").first).to_contain_text("page 2 of 3")
            await page.goto(f"{served}/runs?integration=warehouse")
            shot = tmp_path / "history-runs.png"
            await page.screenshot(path=str(shot), full_page=False)
            keep(shot)

            # The search: type a key, get every change newest first, download the CSV.
            await page.goto(f"{served}/changes")
            await page.fill("#f-q", KEY)
            await page.press("#f-q", "Enter")
            await expect(page.locator("h1")).to_contain_text(f"Changes to {KEY}")
            found = page.locator("table.stack tbody tr")
            await expect(found).to_have_count(3)
            await expect(found.first).to_contain_text("102")
            shot = tmp_path / "history-search.png"
            await page.screenshot(path=str(shot), full_page=False)
            keep(shot)
            async with page.expect_download() as download_info:
                await page.click("#csv")
            download = await download_info.value
            assert download.suggested_filename == f"changes-{KEY}.csv"
            saved = tmp_path / "changes.csv"
            await download.save_as(str(saved))
            rows_csv = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8-sig"))))
            assert [r[1] for r in rows_csv[1:]] == ["run-101", "run-040", "run-005"]

            # The run's keys left alone, with their own CSV.
            await page.goto(f"{served}/runs/run-119")
            await expect(page.locator("#skips")).to_contain_text("Keys left alone (4)")
            link = page.locator("a[href='https://shop.example/admin2/products/5']")
            await expect(link).to_have_count(1)
            await page.locator("#skips").scroll_into_view_if_needed()
            shot = tmp_path / "history-run-skips.png"
            await page.screenshot(path=str(shot), full_page=True)
            keep(shot)
            async with page.expect_download() as download_info:
                await page.click("#skips a[download]")
            skips = await download_info.value
            assert skips.suggested_filename == "run-run-119-skips.csv"
            await en.close()

            # Russian: the browser asks for it.
            ru = await browser.new_context(viewport={"width": 1280, "height": 900},
                                           locale="ru-RU")
            page = await ru.new_page()
            await page.goto(f"{served}/runs")
            await expect(page.locator("h1")).to_have_text("Запуски")
            await expect(page.locator("html")).to_have_attribute("lang", "ru")
            await expect(page.locator(".pager").first).to_contain_text(
                "страница 1 из 3, 120 запусков")
            await expect(page.locator("nav")).to_contain_text("Без пары")
            await expect(page.locator("table.stack tbody tr").first).to_contain_text("21 мс")
            shot = tmp_path / "history-ru.png"
            await page.screenshot(path=str(shot), full_page=False)
            keep(shot)
            await page.goto(f"{served}/runs/run-119")
            await expect(page.locator("#skips")).to_contain_text("Необработанные ключи (4)")
            await expect(page.locator("body")).to_contain_text(
                "ни у одного варианта InSales нет такого ключа")
            await ru.close()
        finally:
            await browser.close()
