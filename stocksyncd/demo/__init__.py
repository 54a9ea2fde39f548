"""``stocksyncd demo``: the built-in simulators, the real daemon, a live summary.

Everything runs in one process and one event loop: the five API simulators on
127.0.0.1, a generated config file in a temporary directory (so SIGHUP reloads
it like any other), the daemon from ``stocksyncd.runtime.daemon`` with every
integration enabled, a background task that keeps the source stock moving,
and a console summary of what each run changed. No credentials, no network.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from stocksyncd.demo.options import EXIT_OK, EXIT_USAGE, UsageError, parse_options

ENV_PREFIX = "STOCKSYNCD_"


def _clean_environment() -> None:
    """The demo's config is complete: overrides meant for a real daemon must not leak in."""
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            del os.environ[name]


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``stocksyncd demo``; the exit code."""
    try:
        opts = parse_options(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_USAGE
    _clean_environment()
    try:
        # Imported here: a Ctrl-C while the daemon's modules load is a clean exit too.
        from stocksyncd.demo.session import Demo

        with tempfile.TemporaryDirectory(prefix="stocksyncd-demo-") as tmp:
            return asyncio.run(Demo(opts, Path(tmp), sys.stdout).run())
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        # The console went away (``| head``): stop quietly, and keep Python's own
        # flush at exit from failing on the closed pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
