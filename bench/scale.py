"""Many stock jobs in real daemon processes: start lag, run time, CPU and memory.

    python -m bench.scale [--jobs 300] [--variants 10000] [--schedule every|cron]
                          [--replicas 1] [--minutes 5] [--warmup 2] [--latency 0.05]

What runs:

- the simulators, each in its own process: one Kak2c account with ``--variants``
  variants and one InSales shop holding the same catalogue (bench/scenario.py),
  both with ``--latency`` per request. Every job reads that one Kak2c account
  and has a shop section of its own (so a limiter and a budget of its own), all
  pointing at the one simulated InSales, which keeps a budget (500 requests per
  5 minutes) and reports its use per shop's credentials, as separate real
  shops would. Stock does not change
  (quiet minutes: the common case of an every-minute job).
- ``--replicas`` daemon processes (``python -m stocksyncd run``), each configured
  with the same ``--jobs`` ``kak2c-insales`` integrations, every one on ``every = "1m"`` or on
  ``cron = "* * * * *"``, default settings otherwise. One replica keeps its state
  in SQLite; several share a private PostgreSQL schema (their fair share of the
  leases decides who runs what).

Measured from the run records (after ``--warmup`` minutes, for ``--minutes``):
each run's start lag behind its tick (cron: the minute; every: the job's first
run from the daemon's log plus whole minutes, so the default jitter of up to
3 s is part of the lag), its duration, whether it ended within the minute, and
runs per replica; every 5 s each daemon's CPU time and RSS from /proc.
Prints one JSON object and writes it to bench/results/scale-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import scenario

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
TICK = os.sysconf("SC_CLK_TCK")
SCHEDULED = re.compile(r"scheduled (\S+) \(every [\d.]+s\), first run at (\S+)")
# An ERROR line of the daemons' text log format (time, level, logger: message).
ERROR_LINE = re.compile(r"^\d{4}-\d\d-\d\d [\d:.]+ ERROR ", re.MULTILINE)


# -- simulators ------------------------------------------------------------------------
def shop_key(i: int) -> str:
    """The InSales API key of shop ``i`` (each shop has its own credentials and budget)."""
    return f"{scenario.INSALES_KEY}-{i:03d}"


def many_shops(shops: int, **kwargs: Any) -> Any:
    """An InSales simulator serving one catalogue to ``shops`` shops' credentials.

    Real shops each have their own budget (500 requests per 5 minutes) and report
    their own use in ``API-Usage-Limit``; one catalogue serves them all here to keep
    the simulator's memory down, but the budget and the header are per shop.
    """
    import base64
    import contextvars
    from email.utils import formatdate

    from aiohttp import web

    from stocksyncd.simulators.base import json_response
    from stocksyncd.simulators.insales import InSalesSimulator

    current: contextvars.ContextVar[str] = contextvars.ContextVar("shop")

    class ManyShops(InSalesSimulator):
        def __init__(self) -> None:
            super().__init__(**kwargs)
            self.keys = {
                "Basic " + base64.b64encode(
                    f"{shop_key(i)}:{scenario.INSALES_PASSWORD}".encode()).decode(): shop_key(i)
                for i in range(shops)}
            self.budgets: dict[str, list[float]] = {}  # key -> [window start, used]

        def _gate(self, request: web.Request) -> web.Response | None:
            key = self.keys.get(request.headers.get("Authorization", ""))
            if key is None:
                return json_response({"errors": ["401 Unauthorized"]}, status=401)
            current.set(key)
            now = self.clock.monotonic()
            budget = self.budgets.setdefault(key, [now, 0])
            if now >= budget[0] + self.window:
                budget[:] = [now, 0]
            if budget[1] >= self.limit:
                self.refused += 1
                return json_response(
                    {"errors": ["Too many requests"]}, status=self.limit_status,
                    headers={"Retry-After": str(max(1, int(budget[0] + self.window - now))),
                             **self._usage()})
            budget[1] += 1
            return None

        def _usage(self) -> dict[str, str]:
            used = int(self.budgets.get(current.get(""), [0, 0])[1])
            return {"API-Usage-Limit": f"{used}/{self.limit}",
                    "Date": formatdate(self.clock.time(), usegmt=True)}

    return ManyShops()


async def serve(api: str, variants: int, latency: float, shops: int) -> None:
    """Serve one simulator with the benchmark catalogue until stdin closes."""
    from bench.sims import ShiftedClock
    from stocksyncd.simulators.kak2c import Kak2cSimulator

    clock = ShiftedClock(offset=86400.0)  # the catalogue was last touched a day ago
    insales = many_shops(shops, latency=latency, clock=clock)
    shop = scenario.shop(insales, variants, seed=1)
    clock.offset = 0.0
    if api == "insales":
        sim: Any = insales
    else:
        sim = Kak2cSimulator(login=scenario.KAK2C_LOGIN, password=scenario.KAK2C_PASSWORD,
                             latency=latency)
        scenario.kak2c_mirror(sim, shop, 0.0, seed=1)
    await sim.start()
    url = sim.url if api == "insales" else sim.base_url
    print(json.dumps({"url": url}), flush=True)
    await asyncio.to_thread(sys.stdin.read)
    await sim.stop()


def start_sim(api: str, variants: int, latency: float,
              shops: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.scale", "--serve", api, "--variants", str(variants),
         "--latency", str(latency), "--jobs", str(shops)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    return proc, str(json.loads(proc.stdout.readline())["url"])


# -- config ------------------------------------------------------------------------------
def config_text(*, state_url: str, replica: str, jobs: int, schedule: str,
                insales: str, kak2c: str) -> str:
    """A daemon config with ``jobs`` Kak2c -> InSales integrations on defaults."""
    when = 'every = "1m"' if schedule == "every" else 'cron = "* * * * *"'
    lines = ["[daemon]", f'state_url = "{state_url}"', f'replica = "{replica}"',
             'log_format = "text"', "[web]", "enabled = false"]
    for i in range(jobs):
        lines += [f"[shops.s{i:03d}]", f'url = "{insales}"',
                  f'api_key = "{shop_key(i)}"',
                  f'password = "{scenario.INSALES_PASSWORD}"']
    for i in range(jobs):
        lines += [f"[integrations.j{i:03d}]", 'type = "kak2c-insales"', f'shop = "s{i:03d}"',
                  when, f'login = "{scenario.KAK2C_LOGIN}"',
                  f'password = "{scenario.KAK2C_PASSWORD}"', f'base_url = "{kak2c}"']
    return "\n".join(lines) + "\n"


# -- process sampling ------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` now."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sample(pids: dict[str, int], until: float, every: float,
           samples: dict[str, list[tuple[float, float, float]]]) -> None:
    """(time, CPU seconds, RSS MiB) of each process every ``every`` seconds until ``until``."""
    while time.time() < until:
        now = time.time()
        for name, pid in pids.items():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                samples[name].append((now, cpu_seconds(pid), rss_mib(pid)))
        time.sleep(max(0.0, min(every, until - time.time())))


# -- state -------------------------------------------------------------------------------
async def read_runs(state_url: str) -> list[Any]:
    from stocksyncd.state import open_store

    store = await open_store(state_url)
    try:
        return await store.recent_runs(None, limit=10**7)
    finally:
        await store.close()


async def pg_schema(action: str, schema: str) -> None:
    import asyncpg  # type: ignore[import-untyped]  # the state store's PostgreSQL driver

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        if action == "create":
            await conn.execute(f"CREATE SCHEMA {schema}")
        else:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


def first_runs(log: str) -> dict[str, datetime]:
    """Each interval job's first tick, from the daemon's "scheduled" log lines."""
    return {m.group(1): datetime.fromisoformat(m.group(2)) for m in SCHEDULED.finditer(log)}


def tick_of(run: Any, schedule: str, firsts: dict[str, datetime]) -> datetime | None:
    """The tick a scheduled run belongs to."""
    started: datetime = run.started_at
    if schedule == "cron":
        return started.replace(second=0, microsecond=0)
    first = firsts.get(run.integration)
    if first is None:
        return None
    minutes = max(0, int((started - first).total_seconds() // 60))
    return first + timedelta(minutes=minutes)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarise(runs: list[Any], *, schedule: str, logs: dict[str, str], since: datetime,
              until: datetime, jobs: int) -> dict[str, Any]:
    """Lag, duration and coverage of the scheduled runs that started in [since, until)."""
    firsts = {replica: first_runs(text) for replica, text in logs.items()}
    window = [r for r in runs if r.trigger == "schedule" and since <= r.started_at < until]
    lags, durations, late, over = [], [], 0, 0
    per_replica: dict[str, int] = {}
    statuses: dict[str, int] = {}
    for run in window:
        per_replica[run.replica] = per_replica.get(run.replica, 0) + 1
        statuses[run.status] = statuses.get(run.status, 0) + 1
        tick = tick_of(run, schedule, firsts.get(run.replica, {}))
        if tick is not None:
            lag = (run.started_at - tick).total_seconds()
            lags.append(lag)
            late += lag > 5.0
            if run.finished_at is not None:
                over += (run.finished_at - tick).total_seconds() > 60.0
        durations.append(run.duration_s)
    minutes = (until - since).total_seconds() / 60
    return {
        "runs": len(window), "expected": round(jobs * minutes), "status": statuses,
        "per_replica": per_replica,
        "lag_s": {"p50": pct(lags, 0.5), "p95": pct(lags, 0.95), "max": max(lags, default=0.0)},
        "started_over_5s": late, "ended_after_the_minute": over,
        "duration_s": {"p50": pct(durations, 0.5), "p95": pct(durations, 0.95),
                       "max": max(durations, default=0.0)},
    }


def process_summary(points: list[tuple[float, float, float]], since: float) -> dict[str, Any]:
    inside = [p for p in points if p[0] >= since]
    if len(inside) < 2:
        return {}
    span = inside[-1][0] - inside[0][0]
    return {"cpu_share_of_a_core": round((inside[-1][1] - inside[0][1]) / span, 3),
            "rss_mib": {"first": round(inside[0][2], 1), "max": round(max(p[2] for p in inside), 1),
                        "last": round(inside[-1][2], 1)}}


# -- the benchmark -----------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    sims = [start_sim(api, args.variants, args.latency, args.jobs)
            for api in ("insales", "kak2c")]
    (_, insales), (_, kak2c) = sims
    tmp = tempfile.TemporaryDirectory()
    schema = f"bench_scale_{uuid.uuid4().hex[:8]}"
    if args.replicas > 1:
        asyncio.run(pg_schema("create", schema))
        state_url = f"{PG_ADMIN}?options=-csearch_path%3D{schema}"
    else:
        state_url = f"sqlite:///{Path(tmp.name) / 'state.db'}"
    daemons: dict[str, subprocess.Popen[bytes]] = {}
    log_paths: dict[str, Path] = {}
    try:
        for n in range(args.replicas):
            replica = f"replica-{n + 1}"
            cfg = Path(tmp.name) / f"{replica}.toml"
            cfg.write_text(config_text(state_url=state_url, replica=replica, jobs=args.jobs,
                                       schedule=args.schedule, insales=insales, kak2c=kak2c))
            log_paths[replica] = Path(tmp.name) / f"{replica}.log"
            with log_paths[replica].open("wb") as log:
                daemons[replica] = subprocess.Popen(
                    [sys.executable, "-m", "stocksyncd", "--config", str(cfg), "run"],
                    cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                )
        started = time.time()
        since = started + args.warmup * 60
        until = since + args.minutes * 60
        points: dict[str, list[tuple[float, float, float]]] = {r: [] for r in daemons}
        pids = {r: p.pid for r, p in daemons.items()}
        pids.update({f"sim-{api}": sim.pid
                     for api, (sim, _) in zip(("insales", "kak2c"), sims, strict=True)})
        points.update({name: [] for name in pids if name.startswith("sim-")})
        sample(pids, until, args.sample, points)
        # Runs that started inside the window finish before the daemons are stopped.
        time.sleep(65.0)
        for proc in daemons.values():
            proc.send_signal(signal.SIGTERM)
        for proc in daemons.values():
            proc.wait(timeout=120)
        runs = asyncio.run(read_runs(state_url))
        logs = {r: p.read_text(errors="replace") for r, p in log_paths.items()}
        if args.logs:
            Path(args.logs).mkdir(parents=True, exist_ok=True)
            for replica, text in logs.items():
                (Path(args.logs) / f"{replica}.log").write_text(text)
        result = summarise(runs, schedule=args.schedule, logs=logs,
                           since=datetime.fromtimestamp(since, UTC),
                           until=datetime.fromtimestamp(until, UTC),
                           jobs=args.jobs)
        earliest: dict[str, datetime] = {}
        for r in runs:
            if r.trigger == "schedule" and (r.integration not in earliest
                                            or r.started_at < earliest[r.integration]):
                earliest[r.integration] = r.started_at
        # When the last job first ran, counted from the daemons' start.
        result["last_first_run_s"] = round(
            (max(earliest.values()) - datetime.fromtimestamp(started, UTC)).total_seconds(), 1
        ) if earliest else None
        result["processes"] = {name: process_summary(p, since) for name, p in points.items()}
        if args.series:
            # RSS over the whole run (minutes since start), at most 240 points a daemon.
            result["rss_series"] = {
                name: [(round((t - started) / 60, 2), round(rss, 1))
                       for t, _, rss in p[::max(1, len(p) // 240)]]
                for name, p in points.items() if not name.startswith("sim-")}
        result["errors_in_logs"] = sum(len(ERROR_LINE.findall(text)) for text in logs.values())
        return {"jobs": args.jobs, "variants": args.variants, "schedule": args.schedule,
                "replicas": args.replicas, "minutes": args.minutes, "warmup": args.warmup,
                "latency": args.latency, "cores": os.cpu_count(), **result}
    finally:
        for proc in daemons.values():
            if proc.poll() is None:
                proc.kill()
        for sim, _ in sims:
            if sim.stdin is not None:
                sim.stdin.close()
            try:
                sim.wait(timeout=30)
            except subprocess.TimeoutExpired:
                sim.kill()
        if args.replicas > 1:
            asyncio.run(pg_schema("drop", schema))
        tmp.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=300,
                        help="jobs in all (every replica is configured with all of them)")
    parser.add_argument("--variants", type=int, default=10_000)
    parser.add_argument("--schedule", choices=("every", "cron"), default="every")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--series", action="store_true",
                        help="keep each daemon's RSS over time (the idle measurement)")
    parser.add_argument("--logs", default="", help="keep the daemons' logs in this directory")
    parser.add_argument("--tag", default="", help="added to the result file's name")
    parser.add_argument("--serve", choices=("insales", "kak2c"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.serve, args.variants, args.latency, args.jobs))
        return 0
    result = {**run(args), "tag": args.tag}
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"scale-{args.jobs}x{args.replicas}-{args.schedule}{args.tag}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
