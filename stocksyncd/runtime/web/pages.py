"""Server-rendered HTML: the layout, the status page, run details and the login form.

Every text a person reads goes through ``_()`` (``stocksyncd.i18n``): the
language is the request's, chosen by ``web.language`` or ``Accept-Language``.

Every value goes through ``esc``: part names, SKUs, descriptions and error texts come
from external APIs and must never be able to inject markup.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import quote

from stocksyncd import __version__
from stocksyncd.i18n import N_, _, current, ngettext
from stocksyncd.i18n.formats import fmt_duration as _fmt_duration
from stocksyncd.i18n.formats import fmt_time
from stocksyncd.i18n.summary import run_summary
from stocksyncd.runtime.view import JobInfo
from stocksyncd.runtime.web.health import HealthReport, JobHealth
from stocksyncd.runtime.web.security import CSRF_FIELD
from stocksyncd.state.api import ChangeHit, ChangeRecord, Lease, ReplicaInfo, RunRecord

TEMPLATES = Path(__file__).parent / "templates"
NAV = (("/", N_("Status")), ("/runs", N_("Runs")), ("/changes", N_("Changes")),
       ("/unmatched", N_("Unmatched")), ("/review", N_("Review")), ("/metrics", N_("Metrics")),
       ("/healthz", N_("Health")))
COUNT_KEYS = ("source", "target", "matched", "changed", "written", "skipped", "unmatched")
COUNT_LABELS = {
    "source": N_("source"), "target": N_("target"), "matched": N_("matched"),
    "changed": N_("changed"), "written": N_("written"), "skipped": N_("skipped"),
    "unmatched": N_("unmatched"),
}
# Why a key was left alone, as the owner reads it.
REASON_LABELS = {
    "null": N_("no stock figure (null)"),
    "non_numeric": N_("stock figure is not a number"),
    "negative": N_("negative stock figure"),
    "invalid": N_("unusable stock figure"),
    "no_key": N_("source item without a key"),
    "ambiguous_source": N_("the source has the key with different figures"),
    "duplicate_target": N_("several InSales variants have the key"),
    "not_in_target": N_("no InSales variant has the key"),
    "not_in_source": N_("the source does not have the variant's key"),
    "target_no_key": N_("InSales variant without a key"),
}
STATUS_LABELS = {"ok": N_("ok"), "aborted": N_("aborted"), "failed": N_("failed"),
                 "running": N_("running")}
HEALTH_LABELS = {"ok": N_("ok"), "disabled": N_("disabled"), "failing": N_("failing"),
                 "overdue": N_("overdue"), "waiting": N_("waiting")}


def reason_label(reason: str) -> str:
    """A skip or unmatched reason in words (unknown reasons as they are)."""
    label = REASON_LABELS.get(reason)
    return _(label) if label else reason


def esc(value: object) -> str:
    """HTML-escape anything; None shows as a dash."""
    return "—" if value is None else html.escape(str(value), quote=True)


def fmt_dt(value: datetime | None) -> str:
    """A timestamp for people, escaped: in the configured zone, to the second."""
    return esc(fmt_time(value))


def fmt_duration(seconds: float | None) -> str:
    """0.021 -> '21 ms', 90 -> '1 min 30 s' (in the current language), escaped."""
    return esc(_fmt_duration(seconds))


def run_href(run_id: str) -> str:
    """The escaped link to a run's detail page."""
    return esc("/runs/" + quote(run_id, safe=""))


def badge(text: str, kind: str | None = None) -> str:
    """A coloured label; ``kind`` picks the colour (defaults to the text)."""
    cls = esc((kind or text).lower().replace(" ", "-"))
    return f'<span class="badge {cls}">{esc(text)}</span>'


def status_badge(status: str) -> str:
    """A run status, coloured by the status and shown in the current language."""
    label = STATUS_LABELS.get(status)
    return badge(_(label) if label else status, status)


def csrf_input(token: str) -> str:
    """The hidden CSRF field every POST form carries."""
    return f'<input type="hidden" name="{CSRF_FIELD}" value="{esc(token)}">'


def post_button(action: str, label: str, csrf: str, css: str = "") -> str:
    """A one-button form (works without JavaScript)."""
    return (f'<form class="inline" method="post" action="{esc(action)}">{csrf_input(csrf)}'
            f'<button type="submit" class="{esc(css)}">{esc(label)}</button></form>')


def flash_html(flash: tuple[str, str] | None) -> str:
    """The message left by the previous POST, if any."""
    if flash is None:
        return ""
    kind, text = flash
    css = "ok" if kind == "ok" else "error"
    return f'<div class="flash {css}" role="status">{esc(text)}</div>'


@cache
def _layout() -> Template:
    return Template((TEMPLATES / "layout.html").read_text(encoding="utf-8"))


def layout(title: str, body: str, *, active: str, replica: str,
           flash: tuple[str, str] | None = None) -> str:
    """Wrap a page body in the common frame."""
    nav = "".join(
        f'<a href="{href}"{" class=active" if href == active else ""}>{esc(_(label))}</a>'
        for href, label in NAV
    )
    return _layout().substitute(title=esc(title), body=body, nav=nav, flash=flash_html(flash),
                                version=esc(__version__), replica=esc(replica),
                                lang=esc(current()), replica_label=esc(_("replica")))


def schedule_text(job: JobInfo) -> str:
    """'every 1h' or 'cron 0 * * * *'."""
    if job.cron:
        return f"cron <code>{esc(job.cron)}</code>"
    if job.every_s is None:
        return "—"
    return esc(_("every {interval}").format(interval=_fmt_duration(job.every_s)))


def counts_text(counts: dict[str, Any]) -> str:
    """The compact counts cell."""
    parts = []
    for k in COUNT_KEYS:
        if k not in counts:
            continue
        parts.append(f"{esc(_(COUNT_LABELS[k]))} {esc(counts[k])}")
        reasons = counts.get(f"{k}_by_reason") or {}
        if isinstance(reasons, dict) and reasons:
            parts.append("(" + ", ".join(
                f'<span title="{esc(reason_label(r))}">{esc(r)}</span>: {esc(n)}'
                for r, n in reasons.items()) + ")")
    return " · ".join(parts) or "—"


def short_list(items: list[str], limit: int = 5) -> str:
    """The first few items of a list, escaped, with a count of the rest."""
    if not items:
        return "—"
    shown = ", ".join(f"<code>{esc(i)}</code>" for i in items[:limit])
    rest = len(items) - limit
    more = esc(_("and {n} more").format(n=rest))
    return shown + (f' <span class="muted">{more}</span>' if rest > 0 else "")


def errors_list(errors: list[str], limit: int = 3) -> str:
    """Errors as a list, capped."""
    if not errors:
        return ""
    items = "".join(f"<li>{esc(e)}</li>" for e in errors[:limit])
    more = (f"<li>{esc(_('and {n} more').format(n=len(errors) - limit))}</li>"
            if len(errors) > limit else "")
    return f'<ul class="errors">{items}{more}</ul>'


@dataclass
class StatusData:
    """Everything the status page shows."""

    replica: str
    started_at: datetime
    backend: str
    jobs: list[JobInfo]
    health: HealthReport
    runs: list[RunRecord]
    changes: list[tuple[RunRecord, ChangeRecord]]
    leases: list[Lease] = field(default_factory=list)
    replicas: list[ReplicaInfo] = field(default_factory=list)


def _job_row(job: JobInfo, verdict: JobHealth | None, csrf: str) -> str:
    flags = [badge(_("enabled"), "ok") if job.enabled else badge(_("disabled"), "disabled")]
    if job.dry_run:
        flags.append(badge(_("dry run"), "dry-run"))
    state = (badge(_("running"), "running") if job.running
             else f'<span class="muted">{esc(_("idle"))}</span>')
    label = HEALTH_LABELS.get(verdict.status) if verdict else None
    health = badge(_(label) if label else verdict.status, verdict.status) if verdict else "—"
    reason = f'<div class="muted">{esc(verdict.reason)}</div>' if verdict and verdict.reason else ""
    action = (post_button(f"/integrations/{quote(job.name, safe='')}/run", _("Run now"), csrf)
              if job.enabled and not job.running else "")
    return (
        "<tr>"
        f'<td data-label="{esc(_("Name"))}"><strong>{esc(job.name)}</strong></td>'
        f'<td data-label="{esc(_("Type"))}"><code>{esc(job.type)}</code></td>'
        f'<td data-label="{esc(_("Schedule"))}">{schedule_text(job)}</td>'
        f'<td data-label="{esc(_("Next run"))}">{fmt_dt(job.next_run)}</td>'
        f'<td data-label="{esc(_("State"))}">{state} {" ".join(flags)}</td>'
        f'<td data-label="{esc(_("Health"))}">{health}{reason}</td>'
        f'<td data-label="{esc(_("Last success"))}">'
        f"{fmt_dt(verdict.last_success if verdict else None)}</td>"
        f'<td data-label="{esc(_("Lease"))}">'
        f"{esc(verdict.lease_holder if verdict else job.lease_holder)}</td>"
        f'<td>{action}</td>'
        "</tr>"
    )


def run_row(run: RunRecord) -> str:
    """One line of a runs table."""
    conflicts = short_list(run.conflicts) if run.conflicts else "—"
    dry = " " + badge(_("dry run"), "dry-run") if run.dry_run else ""
    message = message_html(run)
    return (
        "<tr>"
        f'<td data-label="{esc(_("Started"))}"><a href="{run_href(run.run_id)}">'
        f"{fmt_dt(run.started_at)}</a></td>"
        f'<td data-label="{esc(_("Integration"))}">{esc(run.integration)}</td>'
        f'<td data-label="{esc(_("Status"))}">{status_badge(run.status)}{dry}</td>'
        f'<td data-label="{esc(_("Duration"))}" class="num">{fmt_duration(run.duration_s)}</td>'
        f'<td data-label="{esc(_("Counts"))}">{counts_text(run.counts)}</td>'
        f'<td data-label="{esc(_("Conflicts"))}">{conflicts}</td>'
        f'<td data-label="{esc(_("Errors"))}">{errors_list(run.errors) + message or "—"}</td>'
        f'<td data-label="{esc(_("Trigger"))}">{esc(run.trigger)} · {esc(run.replica)}</td>'
        "</tr>"
    )


def message_html(run: RunRecord) -> str:
    """The run's summary in the reader's language, with the stored message beneath
    when it says more (English, possibly quoting an upstream)."""
    summary = run_summary(run.status, run.dry_run, run.counts, run.details)
    parts = []
    if summary:
        parts.append(f'<div class="summary">{esc(summary)}</div>')
    if run.message and (summary is None or current() != "en" or run.message != summary):
        parts.append(f'<div class="muted">{esc(run.message)}</div>')
    return "".join(parts)


def _head(*labels: str) -> str:
    return "<thead><tr>" + "".join(f"<th>{esc(_(label))}</th>" for label in labels) + (
        "</tr></thead>")


def runs_head() -> str:
    """The header of a runs table, in the current language."""
    return _head(N_("Started"), N_("Integration"), N_("Status"), N_("Duration"), N_("Counts"),
                 N_("Conflicts"), N_("Errors"), N_("Trigger · replica"))


def change_cells(change: ChangeRecord) -> str:
    """Key, field and old -> new of one change."""
    # The write-ahead status: "planned" may have been sent (or was a dry run).
    shown = change.status if change.status != "confirmed" or not change.applied else ""
    planned = shown == "planned"
    applied = (" " + badge(_("planned") if planned else shown, "dry-run" if planned else shown)
               if shown else "")
    if change.reason:
        applied += f' <span class="muted">{esc(change.reason)}</span>'
    return (
        f'<td data-label="{esc(_("Key"))}"><code>{esc(change.key)}</code></td>'
        f'<td data-label="{esc(_("Ref"))}"><code>{esc(change.ref)}</code></td>'
        f'<td data-label="{esc(_("Field"))}">{esc(change.field)}</td>'
        f'<td data-label="{esc(_("Change"))}"><span class="old">{esc(change.old)}</span>'
        f'<span class="arrow">→</span><strong>{esc(change.new)}</strong>{applied}</td>'
    )


def _table(head: str, rows: str) -> str:
    return (f'<div class="table-wrap"><table class="stack">{head}<tbody>{rows}</tbody>'
            "</table></div>")


def _empty(colspan: int, text: str) -> str:
    return f'<tr><td colspan="{colspan}" class="muted">{esc(text)}</td></tr>'


def status_page(data: StatusData, csrf: str, flash: tuple[str, str] | None) -> str:
    """``GET /``."""
    overall = (badge(_("healthy"), "ok") if data.health.healthy
               else badge(_("unhealthy"), "unhealthy"))
    reasons = errors_list(data.health.reasons, limit=10)
    jobs = "".join(_job_row(j, data.health.integrations.get(j.name), csrf) for j in data.jobs)
    if not jobs:
        jobs = _empty(9, _("No integrations configured."))
    runs = "".join(run_row(r) for r in data.runs) or _empty(8, _("No runs yet."))
    changes = "".join(
        f'<tr><td data-label="{esc(_("Run"))}"><a href="{run_href(r.run_id)}">'
        f"{fmt_dt(r.started_at)}</a></td>"
        f'<td data-label="{esc(_("Integration"))}">{esc(r.integration)}</td>{change_cells(c)}</tr>'
        for r, c in data.changes
    ) or _empty(6, _("No changes recorded yet."))
    up_since = esc(_("Replica {replica} up since {time} · state store {backend}")).format(
        replica=f"<strong>{esc(data.replica)}</strong>", time=fmt_dt(data.started_at),
        backend=esc(data.backend))
    body = [
        f"<h1>{esc(_('Status'))} {overall}</h1>",
        f'<p class="muted">{up_since}</p>',
        reasons,
        f"<h2>{esc(_('Integrations'))}</h2>",
        _table(_head(N_("Name"), N_("Type"), N_("Schedule"), N_("Next run"), N_("State"),
                     N_("Health"), N_("Last success"), N_("Lease"), ""), jobs),
        f"<h2>{esc(_('Recent runs'))} "
        f'<a class="small" href="/runs">{esc(_("all runs →"))}</a></h2>',
        _table(runs_head(), runs),
        f"<h2>{esc(_('Recent changes'))} "
        f'<a class="small" href="/changes">{esc(_("search all changes →"))}</a></h2>',
        _table(_head(N_("Run"), N_("Integration"), N_("Key"), N_("Ref"), N_("Field"),
                     N_("Old → new")), changes),
    ]
    if len(data.replicas) > 1:
        rows = "".join(
            f'<tr><td data-label="{esc(_("Replica"))}">{esc(r.replica)}</td>'
            f'<td data-label="{esc(_("Version"))}">{esc(r.version)}</td>'
            f'<td data-label="{esc(_("Started"))}">{fmt_dt(r.started_at)}</td>'
            f'<td data-label="{esc(_("Last seen"))}">{fmt_dt(r.seen_at)}</td></tr>'
            for r in data.replicas
        )
        body.append(f"<h2>{esc(_('Replicas'))}</h2>" + _table(
            _head(N_("Replica"), N_("Version"), N_("Started"), N_("Last seen")), rows))
    if data.leases:
        rows = "".join(
            f'<tr><td data-label="{esc(_("Integration"))}">{esc(lease.name)}</td>'
            f'<td data-label="{esc(_("Holder"))}">{esc(lease.holder)}</td>'
            f'<td data-label="{esc(_("Expires"))}">{fmt_dt(lease.expires_at)}</td></tr>'
            for lease in data.leases
        )
        body.append(f"<h2>{esc(_('Leases'))}</h2>" + _table(
            _head(N_("Integration"), N_("Holder"), N_("Expires")), rows))
    return layout(_("Status"), "\n".join(body), active="/", replica=data.replica, flash=flash)


def pager_html(page: int, pages: int, total_text: str, href: Callable[[int], str]) -> str:
    """Previous/next links around "page X of Y" (empty for a single page)."""
    if pages <= 1:
        return f'<div class="pager"><span class="muted">{esc(total_text)}</span></div>'
    prev = (f'<a rel="prev" href="{esc(href(page - 1))}">{esc(_("← previous"))}</a>'
            if page > 1 else "")
    nxt = (f'<a rel="next" href="{esc(href(page + 1))}">{esc(_("next →"))}</a>'
           if page < pages else "")
    where = _("page {page} of {pages}").format(page=page, pages=pages)
    return (f'<div class="pager">{prev}<span class="muted">{esc(where)}, {esc(total_text)}'
            f"</span>{nxt}</div>")


def skip_entries(run: RunRecord) -> list[dict[str, Any]]:
    """The run's listed skips (``details.skips``), each a dict; [] when none are stored."""
    raw = run.details.get("skips")
    if not isinstance(raw, list):
        return []
    return [s for s in raw if isinstance(s, dict)]


def _variant_cell(entry: dict[str, Any]) -> str:
    variant, product = entry.get("variant_id"), entry.get("product_id")
    if variant is None:
        return "—"
    text = esc(_("variant {variant}").format(variant=variant))
    url = entry.get("admin_url")
    title = entry.get("product_title")
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        label = esc(title if isinstance(title, str) and title
                    else _("product {product}").format(product=product))
        return (f'{text} · <a href="{esc(url)}" target="_blank" rel="noopener noreferrer">'
                f"{label} ↗</a>")
    return text


def _name(value: object) -> str:
    return f'<div class="muted">{esc(value)}</div>' if isinstance(value, str) and value else ""


def skip_rows_html(entries: list[dict[str, Any]], *, with_reason: bool = True) -> str:
    """Rows of key, source id, InSales variant (linked) and detail."""
    rows = []
    for e in entries:
        reason = (f'<td data-label="{esc(_("Reason"))}">{esc(reason_label(str(e.get("reason"))))}'
                  f' <code class="muted">{esc(e.get("reason"))}</code></td>'
                  if with_reason else "")
        rows.append(
            f"<tr>{reason}"
            f'<td data-label="{esc(_("Key"))}"><code>{esc(e.get("key") or None)}</code></td>'
            f'<td data-label="{esc(_("Source id"))}"><code>{esc(e.get("source_ref") or None)}'
            f"</code>{_name(e.get('source_name'))}</td>"
            f'<td data-label="{esc(_("InSales"))}">{_variant_cell(e)}</td>'
            f'<td data-label="{esc(_("Detail"))}">{esc(e.get("detail") or None)}</td></tr>')
    return "".join(rows)


def _skips_section(run: RunRecord) -> str:
    entries = skip_entries(run)
    source = run.details.get("skips_as_in")
    note = ""
    if isinstance(source, str):  # the same list as an earlier run, stored with it
        link = f'<a href="{run_href(source)}">{esc(source)}</a>'
        text = (_("The same keys as run {run}, which stored the list.") if entries
                else _("The list is stored with run {run}, which is no longer kept."))
        note = f'<p class="muted">{esc(text).replace("{run}", link)}</p>'
    if not entries:
        return note
    counted = {**(run.counts.get("skipped_by_reason") or {}),
               **(run.counts.get("unmatched_by_reason") or {})}
    csv_href = run_href(run.run_id) + "/skips.csv"
    parts = [f'<h2 id="skips">{esc(_("Keys left alone ({n})").format(n=len(entries)))} '
             f'<a class="small" href="{csv_href}" download>{esc(_("CSV"))}</a></h2>', note]
    by_reason: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        by_reason.setdefault(str(e.get("reason")), []).append(e)
    for reason, group in by_reason.items():
        total = counted.get(reason, len(group))
        shown = (_("{shown} of {total} listed").format(shown=len(group), total=total)
                 if isinstance(total, int) and total > len(group) else str(len(group)))
        parts.append(f"<h3>{esc(reason_label(reason))} <code class=\"muted\">{esc(reason)}"
                     f'</code> <span class="muted">({esc(shown)})</span></h3>')
        parts.append(_table(_head(N_("Key"), N_("Source id"), N_("InSales"), N_("Detail")),
                            skip_rows_html(group, with_reason=False)))
    return "".join(parts)


def run_page(run: RunRecord, *, page: int, per_page: int, replica: str) -> str:
    """``GET /runs/{run_id}``: the run, one page of its changes, and the keys left alone."""
    total = len(run.changes)
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    chunk = run.changes[(page - 1) * per_page: page * per_page]
    rows = "".join(f"<tr>{change_cells(c)}</tr>" for c in chunk) or _empty(
        4, _("This run changed nothing."))
    pager = pager_html(page, pages, ngettext("{n} change", "{n} changes", total).format(n=total),
                       lambda p: f"?page={p}") if pages > 1 else ""
    note = ""
    if run.changes_total > total:
        kept = _("The store kept {kept} of {total} changes for this run.").format(
            kept=total, total=run.changes_total)
        note = f'<p class="muted">{esc(kept)}</p>'
    details = ""
    shown = {k: v for k, v in run.details.items() if k not in ("skips", "skips_as_in")}
    if shown:
        items = "".join(f"<tr><th>{esc(k)}</th><td><code>{esc(v)}</code></td></tr>"
                        for k, v in shown.items())
        details = (f"<h2>{esc(_('Details'))}</h2><div class=table-wrap><table>{items}</table>"
                   "</div>")
    requests = ", ".join(f"{esc(k)}: {esc(v)}" for k, v in run.requests.items()) or "—"
    dry = " · " + badge(_("dry run"), "dry-run") if run.dry_run else ""

    def row(label: str, value: str) -> str:
        return f"<tr><th>{esc(_(label))}</th><td>{value}</td></tr>"

    body = (
        f"<h1>{esc(_('Run'))} {esc(run.run_id)} {status_badge(run.status)}</h1>"
        '<section class="card"><div class="table-wrap"><table>'
        + row(N_("Message"), message_html(run) or "—")
        + row(N_("Integration"), esc(run.integration))
        + row(N_("Trigger"), esc(run.trigger) + dry)
        + row(N_("Replica"), esc(run.replica))
        + row(N_("Started"), fmt_dt(run.started_at))
        + row(N_("Finished"), fmt_dt(run.finished_at))
        + row(N_("Duration"), fmt_duration(run.duration_s))
        + row(N_("Counts"), counts_text(run.counts))
        + row(N_("HTTP requests"), requests)
        + row(N_("Conflicts"), short_list(run.conflicts, limit=200))
        + row(N_("Errors"), errors_list(run.errors, limit=200) or "—")
        + "</table></div></section>"
        + _skips_section(run)
        + f"<h2>{esc(_('Changes ({n})').format(n=total))}</h2>{note}{pager}"
        + _table(_head(N_("Key"), N_("Ref"), N_("Field"), N_("Old → new")), rows)
        + f"{pager}{details}"
    )
    return layout(_("Run {run_id}").format(run_id=run.run_id), body, active="", replica=replica)


@dataclass
class RunsQuery:
    """The filters of the runs page, as given (empty = any)."""

    integration: str = ""
    status: str = ""
    since: str = ""  # YYYY-MM-DD, in the configured zone
    until: str = ""  # YYYY-MM-DD, inclusive
    page: int = 1

    def href(self, page: int) -> str:
        """This query at ``page``."""
        params = {"integration": self.integration, "status": self.status,
                  "from": self.since, "to": self.until}
        shown = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items() if v)
        return "/runs?" + shown + ("&" if shown else "") + f"page={page}"


def _select(name: str, label: str, current_value: str, options: list[tuple[str, str]]) -> str:
    opts = "".join(
        f'<option value="{esc(v)}"{" selected" if v == current_value else ""}>{esc(text)}'
        "</option>" for v, text in options)
    return (f'<label>{esc(label)} <select name="{esc(name)}" id="f-{esc(name)}">{opts}</select>'
            "</label>")


def runs_page(runs: list[RunRecord], *, total: int, query: RunsQuery, pages: int,
              integrations: list[str], problem: str, replica: str) -> str:
    """``GET /runs``: every stored run, filtered and paged."""
    statuses = [("", _("any"))] + [(k, _(v)) for k, v in STATUS_LABELS.items()]
    form = (
        '<form class="filters" method="get" action="/runs">'
        + _select("integration", _("Integration"), query.integration,
                  [("", _("all"))] + [(n, n) for n in integrations])
        + _select("status", _("Status"), query.status, statuses)
        + f'<label>{esc(_("From"))} <input type="date" name="from" id="f-from" '
        f'value="{esc(query.since)}"></label>'
        f'<label>{esc(_("To"))} <input type="date" name="to" id="f-to" '
        f'value="{esc(query.until)}"></label>'
        f'<button type="submit" class="primary">{esc(_("Show"))}</button>'
        f' <a href="/runs">{esc(_("reset"))}</a></form>'
    )
    flash = ("error", problem) if problem else None
    rows = "".join(run_row(r) for r in runs) or _empty(8, _("No runs match."))
    count = ngettext("{n} run", "{n} runs", total).format(n=total)
    pager = pager_html(query.page, pages, count, query.href)
    body = (f"<h1>{esc(_('Runs'))}</h1>{form}{pager}" + _table(runs_head(), rows) + pager)
    return layout(_("Runs"), body, active="/runs", replica=replica, flash=flash)


def changes_page(hits: list[ChangeHit], *, term: str, total: int, page: int, pages: int,
                 replica: str) -> str:
    """``GET /changes?q=``: every stored change of one key (or ref), newest first."""
    form = (
        '<form class="filters" method="get" action="/changes" role="search">'
        f'<label>{esc(_("SKU, barcode, part or InSales id"))} '
        f'<input type="search" name="q" id="f-q" value="{esc(term)}" required autofocus '
        'size="28"></label>'
        f'<button type="submit" class="primary">{esc(_("Search"))}</button></form>'
    )
    if not term:
        hint = esc(_("Type a key exactly as stored (e.g. 4600000000228) to see every change "
                     "to it, newest first."))
        body = f"<h1>{esc(_('Changes'))}</h1>{form}<p class=\"muted\">{hint}</p>"
        return layout(_("Changes"), body, active="/changes", replica=replica)
    q = quote(term, safe="")
    rows = "".join(
        f'<tr><td data-label="{esc(_("Run"))}"><a href="{run_href(h.run_id)}">'
        f"{fmt_dt(h.started_at)}</a></td>"
        f'<td data-label="{esc(_("Integration"))}">{esc(h.integration)}</td>'
        f'<td data-label="{esc(_("Status"))}">{status_badge(h.status)}'
        f"{' ' + badge(_('dry run'), 'dry-run') if h.dry_run else ''}</td>"
        f"{change_cells(h.change)}</tr>"
        for h in hits) or _empty(7, _("No stored change has this key or id."))
    count = ngettext("{n} change", "{n} changes", total).format(n=total)
    pager = pager_html(page, pages, count, lambda p: f"/changes?q={q}&page={p}")
    csv_link = (f'<a class="small" id="csv" href="/changes.csv?q={esc(q)}" download>'
                f'{esc(_("Download CSV"))}</a>' if total else "")
    title = _("Changes to {key}").format(key=term)
    body = (f"<h1>{esc(title)} {csv_link}</h1>{form}{pager}"
            + _table(_head(N_("Run"), N_("Integration"), N_("Status"), N_("Key"), N_("Ref"),
                           N_("Field"), N_("Old → new")), rows) + pager)
    return layout(title, body, active="/changes", replica=replica)


@dataclass
class UnmatchedView:
    """One stock integration's keys found on one side only, from its latest run."""

    integration: str
    run: RunRecord | None
    source_only: list[dict[str, Any]] = field(default_factory=list)
    target_only: list[dict[str, Any]] = field(default_factory=list)


def unmatched_page(views: list[UnmatchedView], *, replica: str) -> str:
    """``GET /unmatched``: what to link, per stock integration."""
    intro = _("Keys found on one side only, as the latest run of each stock integration saw "
              "them. Give the InSales variant the source key (or the other way round) to link "
              "them.")
    parts = [f"<h1>{esc(_('Unmatched'))}</h1>", f'<p class="muted">{esc(intro)}</p>']
    if not views:
        parts.append(f'<p class="muted">{esc(_("No stock integration is configured."))}</p>')
    for view in views:
        parts.append(f"<h2>{esc(view.integration)}</h2>")
        if view.run is None:
            parts.append(f'<p class="muted">{esc(_("No run has listed its keys yet."))}</p>')
            continue
        counts = view.run.counts.get("unmatched_by_reason") or {}
        seen = esc(_("From the run of {time}")).format(
            time=f'<a href="{run_href(view.run.run_id)}">{fmt_dt(view.run.started_at)}</a>')
        parts.append(f'<p class="muted">{seen} · <a href="{run_href(view.run.run_id)}/skips.csv"'
                     f' download>{esc(_("CSV"))}</a></p>')
        source_total = int(counts.get("not_in_target", 0))
        target_total = int(counts.get("not_in_source", 0)) + int(counts.get("target_no_key", 0))
        parts.append(f"<h3>{esc(_('In the source, no InSales variant'))} "
                     f'<span class="muted">({source_total})</span></h3>')
        parts.append(_table(_head(N_("Key"), N_("Source id"), N_("InSales"), N_("Detail")),
                            skip_rows_html(view.source_only, with_reason=False)
                            or _empty(4, _("None."))))
        parts.append(f"<h3>{esc(_('In InSales, not in the source'))} "
                     f'<span class="muted">({target_total})</span></h3>')
        parts.append(_table(_head(N_("Reason"), N_("Key"), N_("Source id"), N_("InSales"),
                                  N_("Detail")),
                            skip_rows_html(view.target_only) or _empty(5, _("None."))))
    return layout(_("Unmatched"), "".join(parts), active="/unmatched", replica=replica)


def login_page(csrf: str, *, next_path: str, error: str | None, replica: str) -> str:
    """``GET /login``."""
    problem = f'<div class="flash error">{esc(error)}</div>' if error else ""
    body = (
        f'<section class="card login"><h1>{esc(_("Sign in"))}</h1>'
        f"{problem}"
        '<form method="post" action="/login">'
        f'{csrf_input(csrf)}<input type="hidden" name="next" value="{esc(next_path)}">'
        f'<label for="token">{esc(_("Access token"))} (<code>web.token</code>)</label>'
        '<input id="token" type="password" name="token" autocomplete="current-password" '
        "required autofocus>"
        f'<button type="submit" class="primary">{esc(_("Sign in"))}</button></form></section>'
    )
    return layout(_("Sign in"), body, active="", replica=replica)


def error_page(title: str, text: str, *, replica: str) -> str:
    """A small page for 404s and refused requests."""
    body = f'<section class="card"><h1>{esc(title)}</h1><p>{esc(text)}</p></section>'
    return layout(title, body, active="", replica=replica)
