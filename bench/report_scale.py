"""The scale sections of docs/benchmarks.md, from bench/results/*.json.

They sit between two markers in the file, so ``python -m bench --report-only``
(which rewrites the rest) and ``python -m bench.report_scale`` keep each other's
parts. Sources: ``kak2c-paging-*.json`` (bench/kak2c_paging.py),
``references-*.json`` (bench/references.py), ``scale-*.json`` (bench/scale.py),
``heartbeat.json`` (bench/heartbeat_bytes.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import markers

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- scale sections: python -m bench.report_scale -->"
END = "<!-- end of scale sections -->"


def _load(results: Path, pattern: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(results.glob(pattern))]


def _paging(results: Path, w: Any) -> None:
    runs = _load(results, "kak2c-paging-*.json")
    if not runs:
        return
    w("## Kak2c paging: page size and pages in flight\n")
    w("Kak2c documents no page-size cap, no rate limit and no concurrency limit, so the "
      "client's defaults are an assumption, chosen here: a full read of the product list "
      "(`python -m bench.kak2c_paging`, simulator in its own process, half the products "
      "with one variant and half with 2-5) through the client's own limiter of 10 "
      "requests a second per account.\n")
    for run in runs:
        w(f"{run['size'] // 1000}k variants ({run['products']} products), "
          f"{run['latency'] * 1000:.0f} ms a request:\n")
        w("| page size | pages in flight | requests | wall s | CPU s |")
        w("|---|---|---|---|---|")
        for row in run["rows"]:
            w(f"| {row['page_size']} | {row['concurrency']} | {row['requests']} | "
              f"{row['wall_s']:.2f} | {row['cpu_s']:.2f} |")
        w("")
    w("At 50 ms the 10 requests a second bind whatever the concurrency: the read takes "
      "requests / 10 seconds, so the page size decides (100 products a page, the old "
      "default, spends 45 s of the minute at 100k). The defaults are `page_size = 500` "
      "(9 s at 100k, 0.2 s at 10k) and `concurrency = 4`, which keeps the 10 a second "
      "up to 400 ms a page; 1000 would halve the read again but makes each answer a "
      "megabyte-sized risk for a service with no documented cap. A server that answers "
      "fewer products than asked is paged in its own size (no product skipped).\n")


def _references(results: Path, w: Any) -> None:
    runs = _load(results, "references-*.json")
    if not runs:
        return
    w("## The three references, and `sync` with its start-up\n")
    w("`python -m bench.references`: MoySklad -> InSales, 5% of the stock differs, each "
      "reference in front of fresh simulator processes. stocksyncd on default settings "
      "(`request_weight` unset: the MoySklad weight of the day), timed as `stocksyncd sync` "
      "processes from spawn to exit.\n")
    w("| variants | original (sends all) | same, sends only changes | bound | bound, InSales 4 "
      "in flight | `sync` cold | `sync` warm | `stocksyncd --version` |")
    w("|---|---|---|---|---|---|---|---|")
    for r in runs:
        w(f"| {r['size'] // 1000}k | {r['original']['wall_s']:.2f} s "
          f"({r['original']['sent']} sent) | {r['changes_only']['wall_s']:.2f} s "
          f"({r['changes_only']['sent']} sent) | {r['bound']['bound_s']:.2f} s | "
          f"{r['bound_insales_4']['bound_s']:.2f} s | {r['sync']['cold']['wall_s']:.2f} s | "
          f"{r['sync']['warm']['wall_s']:.2f} s | {r['sync']['start_up_only']['wall_s']:.2f} s |")
    r = runs[-1]
    a = r["bound"]["assumptions"]
    w(f"\nThe bound assumes MoySklad's weight of the day ({a['moysklad_weight']:g} units a "
      "request, what the daemon budgets by default) and no InSales concurrency limit (it "
      "documents none); the next column takes the daemon's own 4 per shop instead. The "
      f"fair comparison is with the changes-only reference: at {r['size'] // 1000}k "
      f"`sync` (cold, start-up included) is "
      f"{r['changes_only']['wall_s'] / r['sync']['cold']['wall_s']:.1f}x faster than it and "
      f"{r['original']['wall_s'] / r['sync']['cold']['wall_s']:.1f}x faster than the "
      "original.\n")


def _scale_row(r: dict[str, Any]) -> str:
    replicas = [p for name, p in r["processes"].items() if not name.startswith("sim-")]
    cpu = " + ".join(f"{p.get('cpu_share_of_a_core', 0) * 100:.0f}%" for p in replicas)
    rss = " / ".join(f"{p['rss_mib']['max']:.0f}" for p in replicas if p)
    share = " / ".join(str(v) for _, v in sorted(r["per_replica"].items()))
    return (f"| {r['jobs']} x {r['variants'] // 1000}k | `{r['schedule']}` | {r['replicas']} | "
            f"{r['runs']} of {r['expected']} ({share}) | {r['lag_s']['p50']:.2f} / "
            f"{r['lag_s']['max']:.2f} | {r['started_over_5s']} | "
            f"{r['duration_s']['p50']:.1f} / {r['duration_s']['max']:.1f} | "
            f"{r['ended_after_the_minute']} | {cpu} | {rss} | {r['last_first_run_s']} |")


def _scale(results: Path, w: Any) -> None:
    runs = [r for r in _load(results, "scale-*.json") if "rss_series" not in r]
    if not runs:
        return
    w("## Many shops in one daemon, and two daemons\n")
    w("`python -m bench.scale --jobs N --schedule every|cron [--replicas 2]`: real "
      "`stocksyncd run` processes with N `kak2c-insales` jobs of 10k variants each, every "
      "minute, default settings, against simulator processes (one Kak2c account; one "
      "InSales catalogue served to N shops' credentials, each with its own budget of 500 "
      "requests per 5 minutes); quiet minutes (no stock changes). One replica keeps its "
      "state in SQLite; two share a PostgreSQL schema and are both configured with all N "
      "jobs. Measured after a 2-minute warm-up, for 3 minutes, on a 2-core machine that "
      "other work shared. Lag: a run's start behind its tick (for `every` the tick "
      "includes the default jitter of up to 3 s, so the lag does too).\n")
    w("| jobs | schedule | replicas | runs (per replica) | lag p50 / max s | started > 5 s "
      "late | run p50 / max s | ended after its minute | CPU of a core | RSS max MiB | last "
      "first run s |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(runs, key=lambda r: (r["replicas"], r["jobs"], r["schedule"])):
        w(_scale_row(r))
    w("")
    _limits(runs, w)


def _heartbeat(results: Path, w: Any) -> None:
    found = _load(results, "heartbeat.json")
    if not found:
        return
    r = found[0]
    w("## Heartbeat writes\n")
    w(f"`python -m bench.heartbeat_bytes`: an hour of 15-second beats of a replica with "
      f"{r['jobs']} integrations into SQLite, bytes appended to the write-ahead log: "
      f"{r['whole_row_bytes_per_hour'] / 1e6:.2f} MB when every beat rewrites the whole row "
      f"(as before), {r['now_bytes_per_hour'] / 1e6:.2f} MB now. A beat whose version, start "
      "time and job list are unchanged updates `seen_at` alone; SQLite, which has no "
      "replicas to fail over to, takes one beat a minute (each commit is at least one "
      "4 KiB page there). On PostgreSQL every 15-second beat is kept (the fair share and "
      "the failover read it) and carries only the new `seen_at`.\n")


def _limits(runs: list[dict[str, Any]], w: Any) -> None:
    """Where one daemon ends, extrapolated from the single-replica rows."""
    single = {r["schedule"]: r for r in runs if r["replicas"] == 1}
    every, cron = single.get("every"), single.get("cron")
    if every is None and cron is None:
        return
    w("**Where one daemon ends.** Everything a daemon does runs on one event loop, so one "
      "core is its ceiling.")
    if every is not None:
        share = every["processes"]["replica-1"]["cpu_share_of_a_core"]
        w(f" With `every`, {every['jobs']} jobs took {share * 100:.0f}% of a core: about "
          f"{every['jobs'] / share:.0f} such jobs fill it, and the runs, spread over the "
          "minute, stay short until close to that.")
    if cron is not None:
        slowest = cron["duration_s"]["max"]
        peak = cron["processes"]["replica-1"]["rss_mib"]["max"]
        w(f" With an aligned `cron` all {cron['jobs']} runs start in the same second and "
          f"share the loop: the slowest took {slowest:.0f} s, so at about "
          f"{cron['jobs'] * 60 / slowest:.0f} jobs the last would end after its minute; "
          f"they also hold their data at once ({peak:.0f} MiB at the peak). Beyond that, "
          "add a replica "
          "(below) or spread the jobs with `every`.")
    w("\n")


def _slope(series: list[list[float]], since: float) -> tuple[float, float, float]:
    """RSS at ``since`` and at the end, and the least-squares slope in MiB an hour."""
    points = [(t, rss) for t, rss in series if t >= since]
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_r = sum(r for _, r in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points) or 1.0
    per_minute = sum((t - mean_t) * (r - mean_r) for t, r in points) / var
    return points[0][1], points[-1][1], per_minute * 60


IDLE_SINCE = 5.0  # minutes: start-up and the first runs are done


def _idle(results: Path, w: Any) -> None:
    found: dict[str, list[list[float]]] = {}
    length = ""
    for path in sorted(results.glob("scale-*.json")):
        r = json.loads(path.read_text())
        if "rss_series" in r:
            tag = str(r.get("tag") or path.stem.split("-every", 1)[-1]).strip("-")
            [points] = r["rss_series"].values()
            found[tag] = [p for p in points if p[0] >= 0.5]  # once started
            if not tag.endswith("baseline"):
                length = f"--minutes {r['minutes']:g} --warmup {r['warmup']:g}"
    # A run tagged "...baseline" is an earlier build measured for comparison.
    now = {t: s for t, s in found.items() if not t.endswith("baseline")}
    before = {t: s for t, s in found.items() if t.endswith("baseline")}
    if not now:
        return
    series = max(now.values(), key=lambda s: s[-1][0])
    minutes = series[-1][0]
    start, end, slope = _slope(series, IDLE_SINCE)
    w("## Idle memory\n")
    w(f"`python -m bench.scale --jobs 1 --variants 1000 --series {length} "
      "--sample 30`: one daemon with one quiet one-minute Kak2c job, RSS sampled every 30 s "
      f"for {minutes:.0f} minutes in real time (not compressed).\n")
    verdict = "Flat" if abs(end - start) < 1.0 and abs(slope) < 0.5 else "Not flat"
    para = (f"**{verdict}:** from minute {IDLE_SINCE:.0f} to {minutes:.0f} RSS went from "
            f"{start:.1f} to {end:.1f} MiB (least-squares slope {slope:+.2f} MiB an hour).")
    old = max(before.values(), key=lambda s: s[-1][0]) if before else None
    if old is not None:
        o_start, o_end, o_slope = _slope(old, IDLE_SINCE)
        para += (f" The build before the last fix, measured the same way on the same machine "
                 f"at the same time, went from {o_start:.1f} to {o_end:.1f} MiB by minute "
                 f"{old[-1][0]:.0f} ({o_slope:+.2f} MiB an hour).")
    w(para + " The growth was cyclic garbage, which only Python's cycle collector frees, and "
      "it runs rarely here (`runtime/heap.py`). Fixed first: the standard-library log "
      "interception held its own frame (about 420 frames a run, from aiosqlite's debug "
      "records), and every upsert built a new `excluded` alias of its table "
      "(`tests/runtime/test_quiet_run_cycles.py` and `tests/state/test_cycles.py` count the "
      "cyclic garbage quiet runs and upserts leave: none). Fixed last: in Python 3.11 a closed "
      "asyncio socket transport is a cycle (it keeps a bound method of itself); an "
      "every-minute job closes its idle connections between runs, about two a run, and by "
      "then the transport is old, so only a full collection frees it. Now the moment the "
      "last run in progress ends collects everything, at most every 10 minutes "
      "(`tests/runtime/test_heap.py` closes a real connection).\n")
    w("| minute | RSS MiB" + (" | before the last fix" if old is not None else "") + " |")
    w("|---|---" + ("|---" if old is not None else "") + "|")
    step = max(1, len(series) // 12)
    for t, rss in series[::step] + ([series[-1]] if (len(series) - 1) % step else []):
        row = f"| {t:.0f} | {rss:.1f}"
        if old is not None:
            match = min(old, key=lambda p: abs(p[0] - t))
            row += f" | {match[1]:.1f}" if abs(match[0] - t) <= 1.0 else " | "
        w(row + " |")
    w("")


def _old_sections(block: str) -> dict[str, str]:
    """The ``## `` sections of an earlier block, by their heading line."""
    found: dict[str, str] = {}
    for part in ("\n" + block).split("\n## ")[1:]:
        heading = "## " + part.split("\n", 1)[0]
        found[heading] = ("## " + part).strip() + "\n"
    return found


def sections(results: Path, earlier: str = "") -> str:
    """The scale sections; one whose results are not in ``results`` keeps its ``earlier`` text.

    Each is measured by its own command, so rerunning one does not drop the others.
    """
    old = _old_sections(earlier)
    out: list[str] = []
    for make in (_references, _paging, _scale, _idle, _heartbeat):
        made: list[str] = []
        make(results, made.append)
        if made:
            out += made
        else:
            heading = next((h for h in old if h.startswith(_HEADINGS[make.__name__])), None)
            if heading is not None:
                out.append(old[heading])
    return "\n".join(out).rstrip() + "\n"


_HEADINGS = {
    "_references": "## The three references",
    "_paging": "## Kak2c paging",
    "_scale": "## Many shops in one daemon",
    "_idle": "## Idle memory",
    "_heartbeat": "## Heartbeat writes",
}


def write(results: Path, doc: Path) -> None:
    """Put the sections between the markers of ``doc`` (appended the first time)."""
    text = doc.read_text() if doc.exists() else ""
    earlier = markers.marked(text, BEGIN, END) or ""
    doc.write_text(markers.splice(text, BEGIN, END, f"\n\n{sections(results, earlier)}\n"))


if __name__ == "__main__":
    write(ROOT / "bench" / "results", ROOT / "docs" / "benchmarks.md")
