"""The MoySklad every-minute section of docs/benchmarks.md, from bench/results/ms-latency-*.json.

``python -m bench --moysklad-latency`` measures it (``bench/ms_latency.py``)
and puts the section in place between its markers, leaving the rest of the
page as it is; a full ``python -m bench`` regenerates the page with it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench import markers
from bench.ms_latency import WEIGHT_DEC_2026
from stocksyncd.integrations.moysklad_index import window_units

BEGIN = "<!-- moysklad-every-minute -->"
END = "<!-- /moysklad-every-minute -->"
TARGET_S = 90.0
MS_UNITS, MS_WINDOW, MS_REPORT = 45.0, 3.0, 5.0


def _load(results: Path) -> list[dict[str, Any]]:
    return sorted((json.loads(p.read_text()) for p in results.glob("ms-latency-*.json")),
                  key=lambda r: r["size"])


def _run(r: dict[str, Any], label: str) -> dict[str, Any]:
    return next(x for x in r["runs"] if x["run"] == label)


def _k(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 else str(n)


def _req(run: dict[str, Any]) -> str:
    seen = run["requests"]
    return f"{seen['insales']['total']} + {seen['moysklad']['total']}"


def section(results: Path) -> list[str]:
    """The section's lines (empty when there are no results)."""
    rows = _load(results)
    if not rows:
        return []
    quiet_units = window_units(0, WEIGHT_DEC_2026, MS_REPORT)
    out = [BEGIN, "## MoySklad -> InSales every minute: from a change to the shop\n"]
    w = out.append
    w("Reproduce: `python -m bench --moysklad-latency` (1k, 10k and 100k variants, "
      f"{rows[0]['latency'] * 1000:.0f} ms latency; `bench/ms_latency.py`). The job is built "
      "as the daemon builds it, with the default schedule (every "
      f"{rows[0]['every_s']:.0f} s) and the December 2026 user-token weight budgeted "
      f"({WEIGHT_DEC_2026:.0f} units a request, 5 for the stock report). Runs: *cold* (nothing "
      "stored: both sides read in full), then 55 s later a run that reads its writes back "
      "(as the next minute's run would), *quiet* (nothing changed: an ordinary minute), "
      "*one* (one item's stock changed in the MoySklad simulator; the benchmark then reads "
      "the variant back from InSales), *1%* (1% of the stock changed), *hourly* (the source "
      "index an hour old: the full read every `source_full_refresh`). A change waits for "
      "the next run (at most one interval) and then for that run, so the latency from a "
      "change in MoySklad to the figure in InSales is at most *interval + run*; the worst "
      "case counts the slower of an ordinary run and the hourly full read.\n")
    w("| variants | worst latency: interval + slower of run *one* and *hourly* (s) | "
      "average: interval / 2 + run *one* (s) | target <= 90 s "
      "| seen in InSales | run *one* (s) | *quiet*: requests InSales + MoySklad | *quiet*: "
      "CPU (ms) | *quiet* (s) | *1%*: changed, requests | *1%* (s) | *hourly* source read "
      "(s), requests | *cold* (s), requests | peak RSS (MiB) |")
    w("|---:|---:|---:|:---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    verdicts = []
    for r in rows:
        one, quiet, share = _run(r, "one"), _run(r, "quiet"), _run(r, "1%")
        hourly, cold = _run(r, "hourly"), _run(r, "cold")
        # The run after a change may be the hourly full read: the slower one counts.
        worst = r["every_s"] + max(one["wall_s"], hourly["wall_s"])
        ok = worst <= TARGET_S and one.get("visible_in_insales") and all(
            x["status"] == "ok" for x in r["runs"])
        verdicts.append((r["size"], ok, worst))
        w(f"| {_k(r['size'])} | {worst:.1f} | {r['every_s'] / 2 + one['wall_s']:.1f} | "
          f"{'met' if ok else 'missed'} | {'yes' if one.get('visible_in_insales') else 'NO'} | "
          f"{one['wall_s']:.2f} | {_req(quiet)} | {quiet['cpu_s'] * 1000:.0f} | "
          f"{quiet['wall_s']:.2f} | {share['changed_in_source']}, {_req(share)} | "
          f"{share['wall_s']:.2f} | {hourly['wall_s']:.1f}, {_req(hourly)} | "
          f"{cold['wall_s']:.1f}, {_req(cold)} | {r['peak_rss_mib']:.0f} |")
    w("")
    big = rows[-1]
    pages = math.ceil(big["size"] / 1000)
    full_units = window_units(big["size"], WEIGHT_DEC_2026, MS_REPORT)  # same requests
    w(f"**MoySklad's budget.** A quiet minute is 2 MoySklad requests, whatever the catalogue: "
      f"`entity/product?filter=updated>=…` ({WEIGHT_DEC_2026:.0f} units) and "
      f"`report/stock/all/current?changedSince=…` (5 units), {quiet_units:.0f} units a "
      f"minute against {MS_UNITS * 60 / MS_WINDOW:.0f} a minute (45 per 3 s), "
      f"{quiet_units / (MS_UNITS * 60 / MS_WINDOW):.1%} of it. N changed products add "
      "ceil(N/1000) - 1 product pages (the first page is the quiet minute's); stock changes "
      "add nothing (the short report is one answer). The hourly full read at "
      f"{_k(big['size'])} is {pages} product pages and the report, {full_units:.0f} units: at "
      f"most {MS_UNITS:.0f} units per {MS_WINDOW:.0f} s that alone takes "
      f"{full_units / MS_UNITS * MS_WINDOW:.0f} s, which is why the full read is hourly and "
      "not every minute.\n")
    w("**Target.** "
      + "; ".join(f"{_k(n)}: **{'met' if ok else 'missed'}** ({worst:.1f} s)"
                  for n, ok, worst in verdicts) + ".\n")
    w(END)
    return out


def splice(results: Path, page: Path) -> None:
    """Put the section into ``page`` between its markers (or at the end)."""
    lines = section(results)
    if not lines:
        raise SystemExit("no ms-latency results in bench/results")
    text = page.read_text() if page.exists() else "# Benchmarks\n"
    body = "\n".join(lines).removeprefix(BEGIN).removesuffix(END)
    page.write_text(markers.splice(text, BEGIN, END, body))
