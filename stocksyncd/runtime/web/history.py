"""The history pages: all runs (filtered, paged), the change search, CSV downloads,
the keys left alone by a run and the standing "unmatched" view.

Registered on the application by ``install``, together with the middleware
that picks each request's language.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable, Iterable
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote

from aiohttp import web

from stocksyncd.i18n import _, negotiate, set_language
from stocksyncd.i18n.formats import day_start, local, set_timezone
from stocksyncd.runtime.view import DaemonView
from stocksyncd.runtime.web import pages
from stocksyncd.state.api import RunPage, RunRecord, StateStore

RUNS_PER_PAGE = 50
CHANGES_PER_PAGE = 100
CSV_LIMIT = 100_000  # rows in one CSV download
UNMATCHED_LOOKBACK = 20  # runs of an integration searched for the latest listing
STATUSES = ("ok", "aborted", "failed", "running")
SOURCE_ONLY = ("not_in_target",)
TARGET_ONLY = ("not_in_source", "target_no_key")
STOCK_TYPES = ("moysklad-insales", "kak2c-insales")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
VIEW: web.AppKey[DaemonView] = web.AppKey("history_view", DaemonView)


def _view(request: web.Request) -> DaemonView:
    return request.app[VIEW]


@web.middleware
async def language(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request is answered in ``web.language``, or the browser's language."""
    configured = _view(request).config.web.language
    set_language(negotiate(request.headers.get("Accept-Language"), configured))
    response = await handler(request)
    if configured == "auto":
        response.headers.setdefault("Vary", "Accept-Language")
    return response


def _int(value: str | None, default: int) -> int:
    try:
        return max(1, int(value or default))
    except ValueError:
        return default


def _day(text: str, end: bool) -> datetime | None:
    """The start of day ``text`` (YYYY-MM-DD) in the configured zone; ``end``: of the next."""
    if not text:
        return None
    start = day_start(date.fromisoformat(text))
    return day_start(date.fromisoformat(text) + timedelta(days=1)) if end else start


async def runs_list(request: web.Request) -> web.Response:
    """``GET /runs?integration=&status=&from=&to=&page=``."""
    view = _view(request)
    q = request.query
    query = pages.RunsQuery(integration=q.get("integration", ""), status=q.get("status", ""),
                            since=q.get("from", ""), until=q.get("to", ""),
                            page=_int(q.get("page"), 1))
    problem = ""
    try:
        since = _day(query.since, end=False)
        until = _day(query.until, end=True)
    except ValueError:
        problem = _("Dates must look like 2026-11-27.")
        since = until = None
        query.since = query.until = ""
    if query.status and query.status not in STATUSES:
        query.status = ""
    async def fetch(number: int) -> RunPage:
        return await view.state.list_runs(
            integration=query.integration or None, status=query.status or None, since=since,
            until=until, offset=(number - 1) * RUNS_PER_PAGE, limit=RUNS_PER_PAGE)

    page = await fetch(query.page)
    pages_total = max(1, -(-page.total // RUNS_PER_PAGE))
    if query.page > pages_total:  # past the end (an old link): show the last page
        query.page = pages_total
        page = await fetch(query.page)
    names = sorted(set(view.config.integrations) | ({query.integration} - {""}))
    return _html(pages.runs_page(page.runs, total=page.total, query=query, pages=pages_total,
                                 integrations=names, problem=problem, replica=view.replica))


async def changes_search(request: web.Request) -> web.Response:
    """``GET /changes?q=&page=``."""
    view = _view(request)
    term = request.query.get("q", "").strip()
    page_no = _int(request.query.get("page"), 1)
    if not term:
        return _html(pages.changes_page([], term="", total=0, page=1, pages=1,
                                        replica=view.replica))
    found = await view.state.search_changes(term, offset=(page_no - 1) * CHANGES_PER_PAGE,
                                            limit=CHANGES_PER_PAGE)
    pages_total = max(1, -(-found.total // CHANGES_PER_PAGE))
    if page_no > pages_total:  # past the end: show the last page
        page_no = pages_total
        found = await view.state.search_changes(
            term, offset=(page_no - 1) * CHANGES_PER_PAGE, limit=CHANGES_PER_PAGE)
    return _html(pages.changes_page(found.hits, term=term, total=found.total, page=page_no,
                                    pages=pages_total, replica=view.replica))


async def changes_csv(request: web.Request) -> web.Response:
    """``GET /changes.csv?q=``: every change of the key, newest first."""
    view = _view(request)
    term = request.query.get("q", "").strip()
    if not term:
        raise web.HTTPBadRequest(text="q is required: the key or id to search for\n")
    found = await view.state.search_changes(term, limit=CSV_LIMIT)
    rows = ([local(h.started_at).isoformat(), h.run_id, h.integration, h.status,
             h.dry_run, h.change.key, h.change.ref, h.change.field, h.change.old,
             h.change.new, h.change.applied] for h in found.hits)
    head = ["started_at", "run_id", "integration", "status", "dry_run", "key", "ref", "field",
            "old", "new", "applied"]
    return csv_response(f"changes-{term}.csv", head, rows)


async def run_skips_csv(request: web.Request) -> web.Response:
    """``GET /runs/{run_id}/skips.csv``: the keys the run left alone, and why."""
    view = _view(request)
    run = await view.state.get_run(request.match_info["run_id"])
    if run is None:
        raise web.HTTPNotFound(text="no run with this id is stored\n")
    run = await with_skip_list(view.state, run)
    head = ["reason", "reason_text", "key", "source_ref", "source_name", "variant_id",
            "product_id", "product_title", "admin_url", "detail"]
    rows = ([e.get("reason"), pages.reason_label(str(e.get("reason"))), e.get("key"),
             e.get("source_ref"), e.get("source_name"), e.get("variant_id"),
             e.get("product_id"), e.get("product_title"), e.get("admin_url"), e.get("detail")]
            for e in pages.skip_entries(run))
    return csv_response(f"run-{run.run_id}-skips.csv", head, rows)


async def unmatched(request: web.Request) -> web.Response:
    """``GET /unmatched``: per stock integration, the latest listing of one-sided keys."""
    view = _view(request)
    views = []
    for name, cfg in sorted(view.config.integrations.items()):
        if getattr(cfg, "type", "") not in STOCK_TYPES:
            continue
        latest = await _latest_listing(view, name)
        entry = pages.UnmatchedView(integration=name, run=latest)
        if latest is not None:
            for e in pages.skip_entries(latest):
                reason = e.get("reason")
                if reason in SOURCE_ONLY:
                    entry.source_only.append(e)
                elif reason in TARGET_ONLY:
                    entry.target_only.append(e)
        views.append(entry)
    return _html(pages.unmatched_page(views, replica=view.replica))


async def _latest_listing(view: DaemonView, name: str) -> RunRecord | None:
    """The newest run of ``name`` with a skip list (a run that read both sides)."""
    runs = await view.state.recent_runs(name, limit=UNMATCHED_LOOKBACK)
    for brief in runs:
        if "skips" in brief.details or "skips_as_in" in brief.details:
            return await with_skip_list(view.state, brief)
    return None


async def with_skip_list(state: StateStore, run: RunRecord) -> RunRecord:
    """``run`` with its skip list, taken from the run that stored it when ``run`` only
    names that run (``skips_as_in``: the same list as before, not stored again)."""
    source = run.details.get("skips_as_in")
    if "skips" in run.details or not isinstance(source, str):
        return run
    stored = await state.get_run(source)
    if stored is not None and isinstance(stored.details.get("skips"), list):
        run.details["skips"] = stored.details["skips"]
    return run


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet shows as text, never runs as a formula.

    Keys and names come from external systems; "=HYPERLINK(...)" in a SKU must
    not become a live formula in the owner's spreadsheet (numbers such as
    "-3" stay numbers).
    """
    if value is None:
        return ""
    text = str(value)
    if text and text[0] in "=+-@\t\r" and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_response(filename: str, head: list[str], rows: Iterable[list[Any]]) -> web.Response:
    """A UTF-8 CSV download (with a BOM, so spreadsheets read Cyrillic right)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(head)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in filename)
    return web.Response(
        body=("\ufeff" + out.getvalue()).encode("utf-8"),
        headers={"Content-Type": "text/csv; charset=utf-8",
                 "Content-Disposition": f"attachment; filename=\"{safe}\"; "
                                        f"filename*=UTF-8''{quote(filename, safe='')}"})


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def install(app: web.Application, view: DaemonView) -> None:
    """Add the history routes and the language middleware to ``app``."""
    app[VIEW] = view
    set_timezone(view.config.web.timezone)
    app.middlewares.append(language)
    app.router.add_get("/runs", runs_list)
    app.router.add_get("/runs/{run_id}/skips.csv", run_skips_csv)
    app.router.add_get("/changes", changes_search)
    app.router.add_get("/changes.csv", changes_csv)
    app.router.add_get("/unmatched", unmatched)
