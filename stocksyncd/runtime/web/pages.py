"""Server-rendered HTML: the layout, the status page, run details and the login form.

Every value goes through ``esc``: part names, SKUs, descriptions and error texts come
from external APIs and must never be able to inject markup.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import quote

from stocksyncd import __version__
from stocksyncd.runtime.view import JobInfo
from stocksyncd.runtime.web.health import HealthReport, JobHealth
from stocksyncd.runtime.web.security import CSRF_FIELD
from stocksyncd.state.api import ChangeRecord, Lease, ReplicaInfo, RunRecord

TEMPLATES = Path(__file__).parent / "templates"
NAV = (("/", "Status"), ("/review", "Review"), ("/metrics", "Metrics"), ("/healthz", "Health"))
COUNT_KEYS = ("source", "target", "matched", "changed", "written", "skipped")


def esc(value: object) -> str:
    """HTML-escape anything; None shows as a dash."""
    return "—" if value is None else html.escape(str(value), quote=True)


def fmt_dt(value: datetime | None) -> str:
    """A timestamp for people: UTC, to the second."""
    if value is None:
        return "—"
    return esc(value.strftime("%Y-%m-%d %H:%M:%S %Z").strip())


def fmt_duration(seconds: float | None) -> str:
    """90 -> '1m 30s'."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m" if minutes else f"{hours}h"


def run_href(run_id: str) -> str:
    """The escaped link to a run's detail page."""
    return esc("/runs/" + quote(run_id, safe=""))


def badge(text: str, kind: str | None = None) -> str:
    """A coloured label; ``kind`` picks the colour (defaults to the text)."""
    cls = esc((kind or text).lower().replace(" ", "-"))
    return f'<span class="badge {cls}">{esc(text)}</span>'


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
        f'<a href="{href}"{" class=active" if href == active else ""}>{label}</a>'
        for href, label in NAV
    )
    return _layout().substitute(title=esc(title), body=body, nav=nav, flash=flash_html(flash),
                                version=esc(__version__), replica=esc(replica))


def schedule_text(job: JobInfo) -> str:
    """'every 1h' or 'cron 0 * * * *'."""
    if job.cron:
        return f"cron <code>{esc(job.cron)}</code>"
    if job.every_s is None:
        return "—"
    return f"every {esc(fmt_duration(job.every_s))}"


def counts_text(counts: dict[str, Any]) -> str:
    """The compact counts cell."""
    parts = [f"{k} {esc(counts[k])}" for k in COUNT_KEYS if k in counts]
    reasons = counts.get("skipped_by_reason") or {}
    if isinstance(reasons, dict) and reasons:
        parts.append("(" + ", ".join(f"{esc(r)}: {esc(n)}" for r, n in reasons.items()) + ")")
    return " · ".join(parts) or "—"


def short_list(items: list[str], limit: int = 5) -> str:
    """The first few items of a list, escaped, with a count of the rest."""
    if not items:
        return "—"
    shown = ", ".join(f"<code>{esc(i)}</code>" for i in items[:limit])
    rest = len(items) - limit
    return shown + (f' <span class="muted">and {rest} more</span>' if rest > 0 else "")


def errors_list(errors: list[str], limit: int = 3) -> str:
    """Errors as a list, capped."""
    if not errors:
        return ""
    items = "".join(f"<li>{esc(e)}</li>" for e in errors[:limit])
    more = f"<li>and {len(errors) - limit} more</li>" if len(errors) > limit else ""
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
    flags = [badge("enabled", "ok") if job.enabled else badge("disabled")]
    if job.dry_run:
        flags.append(badge("dry-run"))
    state = badge("running") if job.running else '<span class="muted">idle</span>'
    health = badge(verdict.status) if verdict else "—"
    reason = f'<div class="muted">{esc(verdict.reason)}</div>' if verdict and verdict.reason else ""
    action = (post_button(f"/integrations/{quote(job.name, safe='')}/run", "Run now", csrf)
              if job.enabled and not job.running else "")
    return (
        "<tr>"
        f'<td data-label="Name"><strong>{esc(job.name)}</strong></td>'
        f'<td data-label="Type"><code>{esc(job.type)}</code></td>'
        f'<td data-label="Schedule">{schedule_text(job)}</td>'
        f'<td data-label="Next run">{fmt_dt(job.next_run)}</td>'
        f'<td data-label="State">{state} {" ".join(flags)}</td>'
        f'<td data-label="Health">{health}{reason}</td>'
        f'<td data-label="Last success">{fmt_dt(verdict.last_success if verdict else None)}</td>'
        f'<td data-label="Lease">{esc(verdict.lease_holder if verdict else job.lease_holder)}</td>'
        f'<td>{action}</td>'
        "</tr>"
    )


def run_row(run: RunRecord) -> str:
    """One line of a runs table."""
    conflicts = short_list(run.conflicts) if run.conflicts else "—"
    dry = " " + badge("dry-run") if run.dry_run else ""
    message = f'<div class="muted">{esc(run.message)}</div>' if run.message else ""
    return (
        "<tr>"
        f'<td data-label="Started"><a href="{run_href(run.run_id)}">'
        f"{fmt_dt(run.started_at)}</a></td>"
        f'<td data-label="Integration">{esc(run.integration)}</td>'
        f'<td data-label="Status">{badge(run.status)}{dry}</td>'
        f'<td data-label="Duration" class="num">{fmt_duration(run.duration_s)}</td>'
        f'<td data-label="Counts">{counts_text(run.counts)}</td>'
        f'<td data-label="Conflicts">{conflicts}</td>'
        f'<td data-label="Errors">{errors_list(run.errors) or "—"}{message}</td>'
        f'<td data-label="Trigger">{esc(run.trigger)} · {esc(run.replica)}</td>'
        "</tr>"
    )


RUNS_HEAD = ("<thead><tr><th>Started</th><th>Integration</th><th>Status</th><th>Duration</th>"
             "<th>Counts</th><th>Conflicts</th><th>Errors</th><th>Trigger · replica</th>"
             "</tr></thead>")


def change_cells(change: ChangeRecord) -> str:
    """Key, field and old -> new of one change."""
    # The write-ahead status: "planned" may have been sent (or was a dry run).
    shown = change.status if change.status != "confirmed" or not change.applied else ""
    applied = " " + badge(shown, "dry-run" if shown == "planned" else shown) if shown else ""
    if change.reason:
        applied += f' <span class="muted">{esc(change.reason)}</span>'
    return (
        f'<td data-label="Key"><code>{esc(change.key)}</code></td>'
        f'<td data-label="Ref"><code>{esc(change.ref)}</code></td>'
        f'<td data-label="Field">{esc(change.field)}</td>'
        f'<td data-label="Change"><span class="old">{esc(change.old)}</span>'
        f'<span class="arrow">→</span><strong>{esc(change.new)}</strong>{applied}</td>'
    )


def status_page(data: StatusData, csrf: str, flash: tuple[str, str] | None) -> str:
    """``GET /``."""
    overall = badge("healthy", "ok") if data.health.healthy else badge("unhealthy")
    reasons = errors_list(data.health.reasons, limit=10)
    jobs = "".join(_job_row(j, data.health.integrations.get(j.name), csrf) for j in data.jobs)
    if not jobs:
        jobs = '<tr><td colspan="9" class="muted">No integrations configured.</td></tr>'
    runs = "".join(run_row(r) for r in data.runs) or (
        '<tr><td colspan="8" class="muted">No runs yet.</td></tr>')
    changes = "".join(
        f'<tr><td data-label="Run"><a href="{run_href(r.run_id)}">{fmt_dt(r.started_at)}</a>'
        f'</td><td data-label="Integration">{esc(r.integration)}</td>{change_cells(c)}</tr>'
        for r, c in data.changes
    ) or '<tr><td colspan="6" class="muted">No changes recorded yet.</td></tr>'
    body = [
        f"<h1>Status {overall}</h1>",
        f'<p class="muted">Replica <strong>{esc(data.replica)}</strong> up since '
        f"{fmt_dt(data.started_at)} · state store {esc(data.backend)}</p>",
        reasons,
        "<h2>Integrations</h2>",
        '<div class="table-wrap"><table class="stack"><thead><tr><th>Name</th><th>Type</th>'
        "<th>Schedule</th><th>Next run</th><th>State</th><th>Health</th><th>Last success</th>"
        f"<th>Lease</th><th></th></tr></thead><tbody>{jobs}</tbody></table></div>",
        "<h2>Recent runs</h2>",
        f'<div class="table-wrap"><table class="stack">{RUNS_HEAD}<tbody>{runs}</tbody>'
        "</table></div>",
        "<h2>Recent changes</h2>",
        '<div class="table-wrap"><table class="stack"><thead><tr><th>Run</th><th>Integration'
        "</th><th>Key</th><th>Ref</th><th>Field</th><th>Old → new</th></tr></thead>"
        f"<tbody>{changes}</tbody></table></div>",
    ]
    if len(data.replicas) > 1:
        rows = "".join(
            f'<tr><td data-label="Replica">{esc(r.replica)}</td>'
            f'<td data-label="Version">{esc(r.version)}</td>'
            f'<td data-label="Started">{fmt_dt(r.started_at)}</td>'
            f'<td data-label="Seen">{fmt_dt(r.seen_at)}</td></tr>'
            for r in data.replicas
        )
        body.append(
            "<h2>Replicas</h2>"
            '<div class="table-wrap"><table class="stack"><thead><tr><th>Replica</th>'
            f"<th>Version</th><th>Started</th><th>Last seen</th></tr></thead><tbody>{rows}"
            "</tbody></table></div>"
        )
    if data.leases:
        rows = "".join(
            f'<tr><td data-label="Integration">{esc(lease.name)}</td>'
            f'<td data-label="Holder">{esc(lease.holder)}</td>'
            f'<td data-label="Expires">{fmt_dt(lease.expires_at)}</td></tr>'
            for lease in data.leases
        )
        body.append(
            "<h2>Leases</h2>"
            '<div class="table-wrap"><table class="stack"><thead><tr><th>Integration</th>'
            f"<th>Holder</th><th>Expires</th></tr></thead><tbody>{rows}</tbody></table></div>"
        )
    return layout("Status", "\n".join(body), active="/", replica=data.replica, flash=flash)


def run_page(run: RunRecord, *, page: int, per_page: int, replica: str) -> str:
    """``GET /runs/{run_id}``: the run and one page of its changes."""
    total = len(run.changes)
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    chunk = run.changes[(page - 1) * per_page: page * per_page]
    rows = "".join(f"<tr>{change_cells(c)}</tr>" for c in chunk) or (
        '<tr><td colspan="4" class="muted">This run changed nothing.</td></tr>')
    pager = ""
    if pages > 1:
        prev = f'<a href="?page={page - 1}">← previous</a>' if page > 1 else ""
        nxt = f'<a href="?page={page + 1}">next →</a>' if page < pages else ""
        pager = (f'<div class="pager">{prev}<span class="muted">page {page} of {pages}, '
                 f"{total} changes</span>{nxt}</div>")
    note = ""
    if run.changes_total > total:
        note = (f'<p class="muted">The store kept {total} of {run.changes_total} '
                "changes for this run.</p>")
    details = ""
    if run.details:
        items = "".join(f"<tr><th>{esc(k)}</th><td><code>{esc(v)}</code></td></tr>"
                        for k, v in run.details.items())
        details = f"<h2>Details</h2><div class=table-wrap><table>{items}</table></div>"
    requests = ", ".join(f"{esc(k)}: {esc(v)}" for k, v in run.requests.items()) or "—"
    body = (
        f"<h1>Run {esc(run.run_id)} {badge(run.status)}</h1>"
        f'<section class="card"><div class="table-wrap"><table>'
        f"<tr><th>Integration</th><td>{esc(run.integration)}</td></tr>"
        f"<tr><th>Trigger</th><td>{esc(run.trigger)}"
        f"{' · ' + badge('dry-run') if run.dry_run else ''}</td></tr>"
        f"<tr><th>Replica</th><td>{esc(run.replica)}</td></tr>"
        f"<tr><th>Started</th><td>{fmt_dt(run.started_at)}</td></tr>"
        f"<tr><th>Finished</th><td>{fmt_dt(run.finished_at)}</td></tr>"
        f"<tr><th>Duration</th><td>{fmt_duration(run.duration_s)}</td></tr>"
        f"<tr><th>Counts</th><td>{counts_text(run.counts)}</td></tr>"
        f"<tr><th>HTTP requests</th><td>{requests}</td></tr>"
        f"<tr><th>Conflicts</th><td>{short_list(run.conflicts, limit=200)}</td></tr>"
        f"<tr><th>Errors</th><td>{errors_list(run.errors, limit=200) or '—'}</td></tr>"
        f"<tr><th>Message</th><td>{esc(run.message or None)}</td></tr>"
        "</table></div></section>"
        f"<h2>Changes ({total})</h2>{note}{pager}"
        '<div class="table-wrap"><table class="stack"><thead><tr><th>Key</th><th>Ref</th>'
        f"<th>Field</th><th>Old → new</th></tr></thead><tbody>{rows}</tbody></table></div>"
        f"{pager}{details}"
    )
    return layout(f"Run {run.run_id}", body, active="", replica=replica)


def login_page(csrf: str, *, next_path: str, error: str | None, replica: str) -> str:
    """``GET /login``."""
    problem = f'<div class="flash error">{esc(error)}</div>' if error else ""
    body = (
        '<section class="card login"><h1>Sign in</h1>'
        f"{problem}"
        '<form method="post" action="/login">'
        f'{csrf_input(csrf)}<input type="hidden" name="next" value="{esc(next_path)}">'
        '<label for="token">Access token (<code>web.token</code>)</label>'
        '<input id="token" type="password" name="token" autocomplete="current-password" '
        "required autofocus>"
        '<button type="submit" class="primary">Sign in</button></form></section>'
    )
    return layout("Sign in", body, active="", replica=replica)


def error_page(title: str, text: str, *, replica: str) -> str:
    """A small page for 404s and refused requests."""
    body = f'<section class="card"><h1>{esc(title)}</h1><p>{esc(text)}</p></section>'
    return layout(title, body, active="", replica=replica)
