"""Run every benchmark and regenerate docs/benchmarks.md and docs/benchmark-runtime.png.

    python -m bench [--sizes 1000,10000,100000] [--latency 0.05] [--quick] [--moysklad-latency]

For each catalogue size (variants, 5% of the stock changed):

1. stocksyncd, MoySklad -> InSales, in its own process against the simulators
   (InSales and MoySklad each in its own process, ``bench/sims.py``): a cold
   run (full InSales scan, as the hourly job does) and a warm run (index from
   the state store, another 5% changed);
2. the sequential reference script, in its own process against fresh
   simulators holding the same data;
3. the lower bound from the minimum requests, the latency, the allowed
   concurrency and the rate budgets (``bench/bound.py``);
4. the steady state of the every-minute Kak2c -> InSales job.

Plus CPU seconds of pure matching and planning at 100k variants, CPU and
state-store bytes of a quiet minute at 100k (``bench/quiet.py``), and (at
10k) ``--repeats`` more daemon processes for the run-to-run spread of the
cold and the hourly run. Raw results go
to bench/results/*.json. ``--quick`` runs 1k and 10k only.

``--mouser`` runs only the Mouser -> InvenTree days (``bench/mouser_day.py``,
about 25 minutes on two cores): how many parts Mouser's quota refreshes a day.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def _child(module: str, *args: str) -> dict[str, Any]:
    """Run ``python -m module args`` and parse the JSON line it prints last."""
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, check=True,
                          capture_output=True, text=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def with_sims(size: int, latency: float, module: str, *args: str) -> dict[str, Any]:
    """Start the simulator processes for ``size``, run ``module`` against them, stop them."""
    sims = subprocess.Popen(
        [sys.executable, "-m", "bench.sims", "--size", str(size), "--latency", str(latency)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert sims.stdout is not None and sims.stdin is not None
        line = sims.stdout.readline()
        info = json.loads(line)
        out = _child(module, line.strip(), *args)
        out["facts"] = info["facts"]
        return out
    finally:
        if sims.stdin is not None:
            sims.stdin.close()
        try:
            sims.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sims.kill()


def mouser() -> int:
    """Run the Mouser days, keep their JSON, and rewrite their section of docs/benchmarks.md."""
    from bench.mouser_day import SCENARIOS, write_section

    RESULTS.mkdir(parents=True, exist_ok=True)
    results = []
    for parts, searched in SCENARIOS:
        print(f"mouser-inventree: one day, {parts} parts with a SKU, {searched} searched "
              "by name ...", flush=True)
        results.append(_child("bench.mouser_day", "--parts", str(parts),
                              "--searched", str(searched)))
        print(json.dumps(results[-1]), flush=True)
    (RESULTS / "mouser.json").write_text(json.dumps(results, indent=1))
    write_section(results, ROOT / "docs" / "benchmarks.md")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--quick", action="store_true", help="1k and 10k only")
    parser.add_argument("--repeats", type=int, default=10,
                        help="extra daemon processes at 10k (a cold and an hourly run "
                             "each), for the run-to-run spread")
    parser.add_argument("--moysklad-latency", action="store_true",
                        help="only MoySklad -> InSales every minute: from a stock change to "
                             "the shop, and a quiet minute's cost (bench/ms_latency.py)")
    parser.add_argument("--scale", action="store_true",
                        help="instead: many jobs in one daemon and in two (bench/scale.py: "
                             "300 jobs of 10k on every and on cron, 600 on two replicas), "
                             "the three references (bench/references.py) and Kak2c paging")
    parser.add_argument("--report-only", action="store_true",
                        help="regenerate the docs from bench/results/*.json")
    parser.add_argument("--mouser", action="store_true",
                        help="only the Mouser -> InvenTree days (bench/mouser_day.py): "
                             "parts refreshed per day on Mouser's quota")
    args = parser.parse_args(argv)
    if args.mouser:
        return mouser()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.quick:
        sizes = [s for s in sizes if s <= 10_000]
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.moysklad_latency:
        from bench.ms_latency_report import splice

        for size in sizes:
            print(f"[{size}] moysklad every minute ...", flush=True)
            out = with_sims(size, args.latency, "bench.ms_latency")
            out.update(size=size, latency=args.latency)
            (RESULTS / f"ms-latency-{size}.json").write_text(json.dumps(out, indent=1))
        splice(RESULTS, ROOT / "docs" / "benchmarks.md")
        return 0
    if args.scale and not args.report_only:
        from bench.scale_suite import run_suite

        run_suite(args.latency)
    elif not args.report_only:
        started = time.time()
        for size in sizes:
            print(f"[{size}] stocksyncd ...", flush=True)
            daemon = with_sims(size, args.latency, "bench.daemon_run")
            print(f"[{size}] sequential reference ...", flush=True)
            reference = with_sims(size, args.latency, "bench.reference")
            print(f"[{size}] steady state ...", flush=True)
            steady = _child("bench.steady", str(size))
            result = {"size": size, "latency": args.latency, "daemon": daemon,
                      "reference": reference, "steady": steady}
            if size == 10_000 and args.repeats > 0:
                print(f"[{size}] {args.repeats} more runs, cold and hourly ...", flush=True)
                runs = [with_sims(size, args.latency, "bench.daemon_run")["runs"]
                        for _ in range(args.repeats)]
                result["repeats"] = {label: [next(r["wall_s"] for r in one if r["run"] == label)
                                             for one in runs]
                                     for label in ("cold", "hourly")}
            (RESULTS / f"size-{size}.json").write_text(json.dumps(result, indent=1))
        print("cpu: matching and planning ...", flush=True)
        cpu = _child("bench.cpu", "100000")
        (RESULTS / "cpu.json").write_text(json.dumps(cpu, indent=1))
        print("quiet minute: CPU and state bytes ...", flush=True)
        quiet = _child("bench.quiet", "100000")
        (RESULTS / "quiet.json").write_text(json.dumps(quiet, indent=1))
        print(f"done in {time.time() - started:.0f}s", flush=True)
    from bench.report import write_report

    write_report(RESULTS, ROOT / "docs", argv_text=" ".join(sys.argv[1:] if argv is None
                                                          else argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
