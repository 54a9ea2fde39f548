"""The three references a MoySklad -> InSales run is compared with, and ``sync`` timed whole.

    python -m bench.references [--size 10000] [--latency 0.05]

Each in front of fresh simulator processes holding the same data (5% of the
stock differs):

1. the original algorithm (bench/reference.py): read everything, send every
   matched variant;
2. the same algorithm sending only the variants whose stock differs: the part
   of the daemon's lead that writing only changes explains;
3. the lower bound (bench/bound.py) on its stated assumptions: MoySklad's
   user-token weight of the day, InSales concurrency unlimited (it documents
   none) and, for comparison, at the daemon's own 4 per shop;

and ``stocksyncd sync`` as a process, start-up included (bench/sync_run.py),
on default settings. Writes bench/results/references-SIZE.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.bound import lower_bound
from bench.run import with_sims

RESULTS = Path(__file__).resolve().parent / "results"


def measure(size: int, latency: float) -> dict[str, Any]:
    original = with_sims(size, latency, "bench.reference")
    changes_only = with_sims(size, latency, "bench.reference", "--changes-only")
    sync = with_sims(size, latency, "bench.sync_run")
    facts = sync["facts"]
    return {
        "size": size, "latency": latency, "facts": facts,
        "original": original, "changes_only": changes_only, "sync": sync,
        "bound": lower_bound(facts, latency),
        "bound_insales_4": lower_bound(facts, latency, ins_concurrency=4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args(argv)
    result = measure(args.size, args.latency)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"references-{args.size}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
