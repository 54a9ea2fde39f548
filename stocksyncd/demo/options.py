"""The demo's options: pace, listen address, and the checks done before anything starts.

Only the standard library here, so that ``--help`` and usage errors are quick.
"""

from __future__ import annotations

import argparse
import errno
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from stocksyncd.netaddr import is_loopback

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

DEFAULT_LISTEN = "127.0.0.1:8780"
INTEGRATIONS = ("moysklad-insales", "kak2c-insales", "mouser-inventree")
POLL_EVERY = 1.0


@dataclass(frozen=True)
class Pace:
    """How often things happen: the schedule of each job and of the churn."""

    moysklad: str
    kak2c: str
    mouser: str
    mouser_per_minute: int  # Mouser allows 30; the fast pace needs more
    churn: float
    poll: float
    start_delay: float


NORMAL = Pace(moysklad="30s", kak2c="10s", mouser="5s", mouser_per_minute=30, churn=3.0,
              poll=POLL_EVERY, start_delay=1.0)
FAST = Pace(moysklad="1s", kak2c="1s", mouser="1s", mouser_per_minute=300, churn=0.5,
            poll=0.2, start_delay=0.1)


def build_parser() -> argparse.ArgumentParser:
    """The demo's own options (everything after ``stocksyncd demo``)."""
    parser = argparse.ArgumentParser(
        prog="stocksyncd demo",
        description="Start the built-in API simulators with a realistic catalogue and run "
        "the daemon against them with every integration enabled. Needs no credentials "
        "and no network. Ctrl-C stops it.",
    )
    parser.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                        help=f"address of the status page (default {DEFAULT_LISTEN}; "
                        "port 0 picks a free one)")
    parser.add_argument("--seed", type=int, default=1,
                        help="seed of the generated catalogue and stock changes (default 1)")
    parser.add_argument("--state-url", default=None, metavar="URL",
                        help="state store (default: SQLite in a temporary directory)")
    parser.add_argument("--no-churn", action="store_true",
                        help="keep the source stock still (later runs then change nothing)")
    parser.add_argument("--runs", type=int, default=None, metavar="N",
                        help="stop once every integration has finished N runs; exit 0 if "
                        "each had an ok run, else 1")
    parser.add_argument("--fast", action="store_true",
                        help="run every job every second (for tests and the impatient)")
    parser.add_argument("--log-level", default="ERROR",
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="daemon log level on stderr (default ERROR, so the summary "
                        "stays readable)")
    return parser


class UsageError(Exception):
    """A bad option value: printed, exit 2."""


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 in brackets) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen {text!r} is not HOST:PORT")
    return host, int(port)



def claim_port(host: str, port: int) -> int:
    """Check that ``host:port`` can be bound (port 0: find a free one); the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Same option as the daemon's listener, so a port in TIME_WAIT is not "taken".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(
                    f"{host}:{port} is already in use (another stocksyncd?); choose another "
                    f"address with --listen {host}:PORT, or --listen {host}:0 for any free port"
                ) from None
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        return int(sock.getsockname()[1])


def page_url(host: str, port: int) -> str:
    """The URL a browser on this machine uses."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


@dataclass
class Options:
    """Parsed and checked options."""

    host: str
    port: int
    token: str
    seed: int
    state_url: str | None
    churn: bool
    runs: int | None
    pace: Pace
    log_level: str


def parse_options(argv: Sequence[str]) -> Options:
    args = build_parser().parse_args(list(argv))
    host, port = parse_listen(args.listen)
    if args.runs is not None and args.runs < 1:
        raise UsageError("--runs must be at least 1")
    port = claim_port(host, port)
    # Beyond loopback the daemon insists on a token; the demo makes one up.
    token = "" if is_loopback(host) else secrets.token_urlsafe(18)
    return Options(host=host, port=port, token=token, seed=args.seed,
                   state_url=args.state_url, churn=not args.no_churn, runs=args.runs,
                   pace=FAST if args.fast else NORMAL, log_level=args.log_level)
