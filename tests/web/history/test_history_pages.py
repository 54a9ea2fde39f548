"""The history pages over a real (SQLite) store: runs, search, CSV, skips, unmatched, Russian."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from stocksyncd.integrations.base import RunCounts, RunResult
from stocksyncd.runtime.metrics import Metrics
from stocksyncd.state import SqlStateStore

from ..conftest import ClientFactory, FakeView, default_jobs, make_config
from .conftest import KEY, T0


async def test_runs_page_pages_and_filters(make_client: ClientFactory,
                                           history_view: FakeView) -> None:
    client = await make_client(history_view)
    first = await (await client.get("/runs")).text()
    assert "page 1 of 3, 120 runs" in first and first.count('href="/runs/run-') == 50
    assert first.index("run-119") < first.index("run-118")  # newest first
    third = await (await client.get("/runs?page=3")).text()
    assert "run-019" in third and "run-000" in third and "next →" not in third
    assert "run-000" in await (await client.get("/runs?page=99")).text()  # the last page
    assert "v5" in await (await client.get(f"/changes?q={KEY}&page=9")).text()
    failed = await (await client.get("/runs?integration=warehouse&status=failed")).text()
    assert "12 runs" in failed and "run-013" in failed and "run-012" not in failed
    assert 'value="failed" selected' in failed
    # One day in web.timezone (Moscow, UTC+3): 2026-03-02 21:00 to 03-03 21:00 UTC.
    day = await (await client.get("/runs?from=2026-03-03&to=2026-03-03")).text()
    assert "24 runs" in day and "2026-03-03 23:00:00 MSK" in day
    assert "2026-03-03 00:00:00 MSK" in day and "2026-03-04 00:00:00 MSK" not in day
    bad = await client.get("/runs?from=yesterday")
    assert bad.status == 200 and "Dates must look like" in await bad.text()


async def test_durations_read_like_people_write_them(make_client: ClientFactory,
                                                     history_view: FakeView) -> None:
    client = await make_client(history_view)
    text = await (await client.get("/runs")).text()
    assert "21 ms" in text and "0.0s" not in text


async def test_search_lists_every_change_of_a_key_and_exports_csv(
    make_client: ClientFactory, history_view: FakeView,
) -> None:
    client = await make_client(history_view)
    text = await (await client.get(f"/changes?q={KEY}")).text()
    assert "3 changes" in text
    assert text.index("run-101") < text.index("run-040") < text.index("run-005")
    none = await (await client.get("/changes?q=NOPE")).text()
    assert "No stored change has this key" in none
    resp = await client.get(f"/changes.csv?q={KEY}")
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    body = await resp.read()
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][:3] == ["started_at", "run_id", "integration"]
    assert [r[1] for r in rows[1:]] == ["run-101", "run-040", "run-005"]
    assert rows[1][5:11] == [KEY, "v101", "quantity", "101", "102", "True"]
    assert (await client.get("/changes.csv")).status == 400


async def test_run_page_names_the_keys_behind_every_reason(make_client: ClientFactory,
                                                           history_view: FakeView) -> None:
    client = await make_client(history_view)
    text = await (await client.get("/runs/run-119")).text()
    assert "Keys left alone (4)" in text
    assert "no InSales variant has the key" in text and "4600000000999" in text
    assert "ms-999" in text and "variants 51, 52" in text and "Футболка красная M" in text
    assert 'href="https://shop.example/admin2/products/5"' in text
    assert "Болт М6 ↗" in text  # the InSales product's title links to it
    assert "=HYPERLINK(&quot;http://evil&quot;)" in text  # escaped, not markup
    resp = await client.get("/runs/run-119/skips.csv")
    rows = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    assert rows[0] == ["reason", "reason_text", "key", "source_ref", "source_name",
                       "variant_id", "product_id", "product_title", "admin_url", "detail"]
    assert rows[[r[2] for r in rows].index("DUP-1")][7] == "Болт М6"
    by_key = {r[2]: r for r in rows[1:]}
    assert by_key["4600000000999"][:5] == ["not_in_target", "no InSales variant has the key",
                                          "4600000000999", "ms-999", "Футболка красная M"]
    # A key that looks like a formula stays text in a spreadsheet.
    assert "'=HYPERLINK(\"http://evil\")" in by_key
    assert (await client.get("/runs/nope/skips.csv")).status == 404


async def test_unmatched_view_shows_the_latest_listing(make_client: ClientFactory,
                                                       history_view: FakeView) -> None:
    client = await make_client(history_view)
    text = await (await client.get("/unmatched")).text()
    assert "<h2>warehouse</h2>" in text and "<h2>fulfilment</h2>" in text
    warehouse = text[text.index("<h2>warehouse</h2>"):]
    assert "run-119" in warehouse and "4600000000999" in warehouse and "OLD-7" in warehouse
    assert "DUP-1" not in warehouse  # a conflict, not an unmatched key
    fulfilment = text[text.index("<h2>fulfilment</h2>"):text.index("<h2>warehouse</h2>")]
    assert "No run has listed its keys yet." in fulfilment
    assert "<h2>parts</h2>" not in text  # Mouser has no such listing


async def test_russian_pages_by_accept_language_or_config(
    make_client: ClientFactory, history_view: FakeView, store: SqlStateStore,
) -> None:
    client = await make_client(history_view)
    ru = {"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.8"}
    text = await (await client.get("/runs", headers=ru)).text()
    assert '<html lang="ru">' in text and "Запуски" in text and "120 запусков" in text
    assert "21 мс" in text and "успех" in text
    assert "Записано 1 изменение" in text  # the summary, from the run's numbers
    assert "Записано 1 из 1" in text  # the failed runs wrote their change, then failed
    assert "insales: 503 after retries" in text  # the upstream's words stay as they were
    for path in ("/", f"/changes?q={KEY}", "/runs/run-119", "/unmatched", "/review"):
        page = await (await client.get(path, headers=ru)).text()
        assert '<html lang="ru">' in page and "Без пары" in page, path
        assert "Project-Id-Version" not in page, path  # _("") is not the catalogue header
    english = await (await client.get("/runs")).text()
    assert '<html lang="en">' in english and "120 runs" in english
    fixed = FakeView(make_config(), store, Metrics(), default_jobs())  # type: ignore[arg-type]
    fixed.config = fixed.config.model_copy(
        update={"web": fixed.config.web.model_copy(update={"language": "en"})})
    pinned = await make_client(fixed)
    assert '<html lang="en">' in await (await pinned.get("/runs", headers=ru)).text()


async def test_a_run_that_left_the_same_keys_alone_shows_the_list_it_points_to(
        make_client: ClientFactory, history_view: FakeView, store: SqlStateStore) -> None:
    """A quiet run stores only the id of the run that stored the same list."""
    for run_id, points_to in (("run-200", "run-119"), ("run-201", "run-gone")):
        at = T0 + timedelta(days=6)
        await store.start_run(run_id=run_id, integration="warehouse", trigger="schedule",
                              dry_run=False, replica="r1", started_at=at)
        await store.finish_run(RunResult(
            integration="warehouse", run_id=run_id, status="ok", counts=RunCounts(),
            details={"index_mode": "incremental", "skips_as_in": points_to}, started_at=at),
            finished_at=at + timedelta(seconds=1))
    client = await make_client(history_view)
    text = await (await client.get("/runs/run-200")).text()
    assert "Keys left alone (4)" in text and "4600000000999" in text and "OLD-7" in text
    assert 'The same keys as run <a href="/runs/run-119">run-119</a>' in text
    rows = list(csv.reader(io.StringIO(
        (await (await client.get("/runs/run-200/skips.csv")).read()).decode("utf-8-sig"))))
    assert len(rows) == 5 and rows[1][2] == "4600000000999"
    gone = await (await client.get("/runs/run-201")).text()
    assert "which is no longer kept" in gone and "Keys left alone" not in gone
    # /unmatched takes the newest listing of a job, pointer or not.
    unmatched = await (await client.get("/unmatched")).text()
    warehouse = unmatched[unmatched.index("<h2>warehouse</h2>"):]
    assert "run-201" in warehouse and "OLD-7" not in warehouse
