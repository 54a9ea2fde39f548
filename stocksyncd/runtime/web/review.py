"""The Mouser review page: results of the Mouser -> InvenTree job, grouped per part.

Hit dicts come from Mouser through the integration; field names are read leniently
(the integration's own names first, Mouser's raw names as a fallback).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from stocksyncd.i18n import N_, _
from stocksyncd.runtime.web.pages import badge, csrf_input, esc, fmt_dt, layout, post_button
from stocksyncd.state.api import ReviewEntry

HIT_ROWS = 10  # hit rows one entry draws; the rest is one click away on Mouser
# The kinds the page filters by, in the order of the filter links.
FILTERS: dict[str, str] = {
    "lifecycle": N_("Lifecycle changed"),
    "error": N_("Errors"),
    "hits": N_("Search hits"),
    "unknown_sku": N_("Unknown SKU"),
}

HIT_FIELDS: dict[str, tuple[str, ...]] = {
    "mouser_pn": ("mouser_pn", "sku", "MouserPartNumber"),
    "manufacturer": ("manufacturer", "Manufacturer"),
    "mpn": ("mpn", "ManufacturerPartNumber"),
    "description": ("description", "Description"),
    "availability": ("availability", "Availability"),
    "link": ("link", "url", "ProductDetailUrl"),
}
KIND_LABELS = {
    "lifecycle": N_("lifecycle changed"),
    "updated": N_("updated"),
    "unknown_sku": N_("unknown SKU"),
    "hits": N_("search hits"),
    "error": N_("error"),
}


def hit_value(hit: Mapping[str, Any], name: str) -> Any:
    """The first present, non-empty value among the aliases of ``name``."""
    for key in HIT_FIELDS[name]:
        value = hit.get(key)
        if value not in (None, ""):
            return value
    return None


def is_na(hit: Mapping[str, Any]) -> bool:
    """Mouser lists old parts without a usable part number ("N/A"): not creatable."""
    if hit.get("na") is True:
        return True
    pn = hit_value(hit, "mouser_pn")
    return pn is None or str(pn).strip().upper() in {"N/A", "NA", ""}


def can_create(entry: ReviewEntry, index: int) -> bool:
    """Whether hit ``index`` of ``entry`` may become a supplier part."""
    hits = entry.data.get("hits")
    if entry.kind != "hits" or not isinstance(hits, list) or not 0 <= index < len(hits):
        return False
    created = entry.data.get("created")  # one supplier part per entry
    if isinstance(created, Mapping) and created.get("supplier_part") is not None:
        return False
    hit = hits[index]
    return isinstance(hit, Mapping) and not is_na(hit) and not hit.get("created")


def safe_link(value: Any) -> str | None:
    """Only http(s) links become anchors: a ``javascript:`` URL from upstream must not."""
    if isinstance(value, str) and value.lower().startswith(("https://", "http://")):
        return value
    return None


def _old_new(old: Any, new: Any) -> str:
    return (f'<span class="old">{esc(old)}</span><span class="arrow">→</span>'
            f"<strong>{esc(new)}</strong>")


def _field_changes(data: Mapping[str, Any]) -> str:
    """The 'updated' entry: each field with old -> new when known."""
    fields = data.get("fields", data.get("changes"))
    rows: list[str] = []
    if isinstance(fields, Mapping):
        for name, change in fields.items():
            if isinstance(change, Mapping) and ("old" in change or "new" in change):
                cell = _old_new(change.get("old"), change.get("new"))
            elif isinstance(change, list | tuple) and len(change) == 2:
                cell = _old_new(change[0], change[1])
            else:
                cell = f"<strong>{esc(change)}</strong>"
            rows.append(f"<tr><th>{esc(name)}</th><td>{cell}</td></tr>")
    elif isinstance(fields, list):
        rows = [f"<tr><td>{esc(f)}</td></tr>" for f in fields]
    else:
        rows = [f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>"
                for k, v in data.items() if k not in {"sku", "hits"}]
    return f'<div class="table-wrap"><table>{"".join(rows)}</table></div>' if rows else ""


def _hits_table(entry: ReviewEntry, csrf: str, limit: int = HIT_ROWS) -> str:
    hits = entry.data.get("hits")
    hits = hits if isinstance(hits, list) else []
    total = entry.data.get("count", entry.data.get("total", len(hits)))
    search = safe_link(entry.data.get("search_link"))
    shown = min(len(hits), limit)
    more = ""
    if (isinstance(total, int) and total > shown) or len(hits) > shown:
        more = " " + _("(showing {n})").format(n=shown)
    found = _("Mouser found {n} part(s)").format(n=f"<strong>{esc(total)}</strong>")
    head = f"<p>{found}{esc(more)}"
    head += (f' · <a href="{esc(search)}" rel="noreferrer">{esc(_("search on Mouser"))}</a>'
             if search else "")
    head += "</p>"
    if not hits:
        return head
    rows = []
    for i, hit in enumerate(hits[:limit]):
        if not isinstance(hit, Mapping):
            rows.append(f'<tr><td colspan="7" class="muted">{esc(_("unreadable hit"))} '
                        f"{esc(hit)}</td></tr>")
            continue
        link = safe_link(hit_value(hit, "link")) or search
        pn = hit_value(hit, "mouser_pn")
        pn_html = (badge("N/A", "na") if is_na(hit) else f"<code>{esc(pn)}</code>")
        if link:
            pn_html = f'<a href="{esc(link)}" rel="noreferrer">{pn_html}</a>'
        if hit.get("created"):
            action = badge(_("created"), "ok")
            if isinstance(hit.get("created"), str):
                action += f' <span class="muted">{esc(hit["created"])}</span>'
        elif can_create(entry, i):
            action = post_button(f"/review/{entry.id}/create/{i}", _("Create supplier part"), csrf,
                                 "primary")
        else:
            action = f'<span class="muted">{esc(_("not creatable"))}</span>'
        rows.append(
            "<tr>"
            f'<td data-label="Mouser PN">{pn_html}</td>'
            f'<td data-label="Manufacturer">{esc(hit_value(hit, "manufacturer"))}</td>'
            f'<td data-label="MPN"><code>{esc(hit_value(hit, "mpn"))}</code></td>'
            f'<td data-label="Description">{esc(hit_value(hit, "description"))}</td>'
            f'<td data-label="Availability">{esc(hit_value(hit, "availability"))}</td>'
            f"<td>{action}</td>"
            "</tr>"
        )
    return (
        f'{head}<div class="table-wrap"><table class="stack hits"><thead><tr>'
        f"<th>{esc(_('Mouser PN'))}</th><th>{esc(_('Manufacturer'))}</th><th>MPN</th>"
        f"<th>{esc(_('Description'))}</th><th>{esc(_('Availability'))}</th><th></th>"
        f'</tr></thead><tbody>{"".join(rows)}</tbody>'
        "</table></div>"
    )


def entry_html(entry: ReviewEntry, csrf: str) -> str:
    """One review entry, rendered by kind."""
    data = entry.data
    sku = data.get("sku")
    if entry.kind == "lifecycle":
        content = f"<p>{esc(_('Lifecycle'))}: {_old_new(data.get('old'), data.get('new'))}</p>"
    elif entry.kind == "updated":
        content = _field_changes(data)
    elif entry.kind == "unknown_sku":
        content = "<p>{}</p>".format(_("Mouser no longer knows SKU {sku}.").format(
            sku=f"<code>{esc(sku)}</code>"))
    elif entry.kind == "hits":
        content = _hits_table(entry, csrf)
    elif entry.kind == "error":
        content = ""
    else:
        content = _field_changes(data)
    message = ""
    structured = entry.kind in {"lifecycle", "unknown_sku"} and (sku or "new" in data)
    if entry.message and not structured:
        css = "errors" if entry.kind == "error" else "muted"
        message = f'<p class="{css}">{esc(entry.message)}</p>'
    sku_html = (f' <span class="muted">SKU <code>{esc(sku)}</code></span>'
                if sku and entry.kind != "unknown_sku" else "")
    kind_label = _(KIND_LABELS[entry.kind]) if entry.kind in KIND_LABELS else entry.kind
    delete = post_button(f"/review/{entry.id}/delete", _("Delete"), csrf, "danger")
    pick = (f'<input type="checkbox" name="entry" value="{esc(entry.id)}" form="bulk" '
            f'aria-label="{esc(_("Select for deletion"))}">')
    return (
        f'<div class="entry" id="entry-{esc(entry.id)}" data-kind="{esc(entry.kind)}">'
        f'<div class="entry-head"><div>{pick} {badge(kind_label, entry.kind)}{sku_html} '
        f'<span class="muted">{fmt_dt(entry.created_at)} · {esc(entry.integration)}</span>'
        f"</div>{delete}</div>{message}{content}</div>"
    )


def filter_links(kind: str | None) -> str:
    """"All" plus one link per kind; the current one is marked."""
    links = []
    for value, label in (("", N_("All")), *FILTERS.items()):
        href = f"/review?kind={value}" if value else "/review"
        current = ' aria-current="page"' if (kind or "") == value else ""
        links.append(f'<a href="{esc(href)}"{current}>{esc(_(label))}</a>')
    return f'<nav class="filters">{" · ".join(links)}</nav>'


def quota_html(quota: Mapping[str, tuple[int, int]]) -> str:
    """Mouser calls left today per integration (left, per day)."""
    text = _("{left} of {per_day} Mouser calls left today (resets at 00:00 UTC)")
    rows = [f"<li>{esc(name)}: " + text.format(left=f"<strong>{esc(left)}</strong>",
                                             per_day=esc(per_day)) + "</li>"
            for name, (left, per_day) in sorted(quota.items())]
    return f'<ul class="quota">{"".join(rows)}</ul>' if rows else ""


def bulk_form(entries: list[ReviewEntry], csrf: str) -> str:
    """Delete the ticked entries, or every entry shown (the filter's)."""
    if not entries:
        return ""
    shown = ",".join(str(e.id) for e in entries if e.id is not None)
    return (
        f'<form id="bulk" class="inline" method="post" action="/review/delete">'
        f'{csrf_input(csrf)}<input type="hidden" name="shown" value="{esc(shown)}">'
        f'<button type="submit" name="scope" value="selected" class="danger">'
        f'{esc(_("Delete selected"))}</button> '
        f'<button type="submit" name="scope" value="shown" class="danger">'
        f'{esc(_("Delete all shown"))}</button></form>'
    )


def review_page(entries: list[ReviewEntry], *, csrf: str, flash: tuple[str, str] | None,
                replica: str, part_urls: Mapping[str, str], kind: str | None = None,
                quota: Mapping[str, tuple[int, int]] | None = None) -> str:
    """``GET /review``: entries grouped per part, newest part first.

    ``part_urls`` maps an integration name to its InvenTree base URL, for part links;
    ``kind`` is the filter in force; ``quota`` the Mouser calls left per integration.
    """
    groups: dict[tuple[str, int], list[ReviewEntry]] = {}
    names: dict[tuple[str, int], str] = {}
    for entry in entries:
        key = (entry.integration, entry.part_pk)
        groups.setdefault(key, []).append(entry)
        names.setdefault(key, entry.part_name)
    cards = []
    for key, items in groups.items():
        integration, pk = key
        title = esc(names[key])
        base = safe_link(part_urls.get(integration))
        if base:
            href = f"{base.rstrip('/')}/part/{quote(str(pk), safe='')}/"
            title = f'<a href="{esc(href)}" rel="noreferrer">{title}</a>'
        ignore = post_button(f"/review/part/{quote(integration, safe='')}/{pk}/ignore",
                             _("Ignore this part"), csrf)
        cards.append(
            f'<article class="card part" id="part-{esc(integration)}-{esc(pk)}">'
            f'<div class="part-head"><h2>{title}</h2>'
            f'<span class="muted">{esc(_("part {pk} · {n} result(s)").format(pk=pk, n=len(items)))}'
            f'</span>{ignore}</div>'
            f'{"".join(entry_html(e, csrf) for e in items)}</article>'
        )
    if not cards:
        cards.append(f'<section class="card"><p class="muted">{esc(_("Nothing to review."))}'
                     "</p></section>")
    count = _("{n} result(s) for {parts} part(s).").format(n=len(entries), parts=len(groups))
    body = (f"<h1>{esc(_('Mouser review'))}</h1>{quota_html(quota or {})}{filter_links(kind)}"
            f"<p class=muted>{esc(count)}</p>"
            f"{bulk_form(entries, csrf)}" + "".join(cards))
    return layout(_("Review"), body, active="/review", replica=replica, flash=flash)
