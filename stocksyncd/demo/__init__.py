"""``stocksyncd demo``: the built-in simulators, the real daemon, a live summary.

Everything runs in one process and one event loop: the five API simulators on
127.0.0.1, a generated config file in a temporary directory (so SIGHUP reloads
it like any other), the daemon from ``stocksyncd.runtime.daemon`` with every
integration enabled, a background task that keeps the source stock moving,
and a console summary of what each run changed. No credentials, no network.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import ipaddress
import json
import os
import secrets
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from stocksyncd.config import load_config
from stocksyncd.demo.catalogue import (
    INSALES_API_KEY,
    INSALES_PASSWORD,
    INVENTREE_TOKEN,
    KAK2C_LOGIN,
    KAK2C_PASSWORD,
    MOUSER_API_KEY,
    MOUSER_CALLS_PER_DAY,
    MOYSKLAD_TOKEN,
    DemoWorld,
    build_world,
)
from stocksyncd.demo.churn import Churn
from stocksyncd.demo.summary import Summary
from stocksyncd.errors import ConfigError
from stocksyncd.runtime.daemon import Daemon
from stocksyncd.state import open_store
from stocksyncd.state.api import StateStore

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

DEFAULT_LISTEN = "127.0.0.1:8780"
INTEGRATIONS = ("moysklad-insales", "kak2c-insales", "mouser-inventree")
POLL_EVERY = 1.0
WEB_WAIT = 30.0
ENV_PREFIX = "STOCKSYNCD_"


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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


def _toml(value: str) -> str:
    """A TOML basic string (JSON string escapes are valid TOML)."""
    return json.dumps(value, ensure_ascii=False)


def config_text(world: DemoWorld, *, state_url: str, listen: str, token: str,
                pace: Pace, log_level: str) -> str:
    """The daemon's configuration for the running simulators."""
    inv = world.inventree
    return f"""\
# Written by `stocksyncd demo`: the daemon against the built-in simulators.
# Edit and send SIGHUP to the demo process to reload it, as with the real service.

[daemon]
state_url = {_toml(state_url)}
log_level = {_toml(log_level)}
log_format = "text"
shutdown_timeout = "10s"

[web]
listen = {_toml(listen)}
token = {_toml(token)}

[shops.main]
url = {_toml(world.insales.url)}
api_key = {_toml(INSALES_API_KEY)}
password = {_toml(INSALES_PASSWORD)}

[integrations.moysklad-insales]
type = "moysklad-insales"
shop = "main"
every = {_toml(pace.moysklad)}
run_at_start = true
token = {_toml(MOYSKLAD_TOKEN)}
base_url = {_toml(world.moysklad.base_url)}

[integrations.kak2c-insales]
type = "kak2c-insales"
shop = "main"
every = {_toml(pace.kak2c)}
run_at_start = true
login = {_toml(KAK2C_LOGIN)}
password = {_toml(KAK2C_PASSWORD)}
base_url = {_toml(world.kak2c.base_url)}

[integrations.mouser-inventree]
type = "mouser-inventree"
every = {_toml(pace.mouser)}
run_at_start = true
parts_per_run = 2
calls_per_minute = {pace.mouser_per_minute}
calls_per_day = {MOUSER_CALLS_PER_DAY}
inventree_url = {_toml(inv.url)}
inventree_token = {_toml(INVENTREE_TOKEN)}
mouser_api_key = {_toml(MOUSER_API_KEY)}
mouser_supplier = {inv.mouser_supplier}
base_url = {_toml(world.mouser.base_url)}
"""


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


def _options(argv: Sequence[str]) -> Options:
    args = build_parser().parse_args(list(argv))
    host, port = parse_listen(args.listen)
    if args.runs is not None and args.runs < 1:
        raise UsageError("--runs must be at least 1")
    port = claim_port(host, port)
    # Beyond loopback the daemon insists on a token; the demo makes one up.
    token = "" if _is_loopback(host) else secrets.token_urlsafe(18)
    return Options(host=host, port=port, token=token, seed=args.seed,
                   state_url=args.state_url, churn=not args.no_churn, runs=args.runs,
                   pace=FAST if args.fast else NORMAL, log_level=args.log_level)


class Demo:
    """One demo session: world, config, daemon, churn, summary."""

    def __init__(self, opts: Options, workdir: Path, out: TextIO) -> None:
        self.opts = opts
        self.workdir = workdir
        self.out = out
        self.stop_requested = asyncio.Event()
        self.daemon_stopping = False

    def say(self, *lines: str) -> None:
        """Print to the console (flushed: it is often a pipe)."""
        for line in lines:
            self.out.write(line + "\n")
        self.out.flush()

    def request_stop(self) -> None:
        """Ctrl-C / SIGTERM before the daemon handles them itself, or after it stopped."""
        self.stop_requested.set()

    async def run(self) -> int:
        """The whole session; the exit code."""
        self._own_signals()
        world = build_world(self.opts.seed, mouser_per_minute=self.opts.pace.mouser_per_minute)
        try:
            await world.start()
            if self.stop_requested.is_set():
                return EXIT_OK
            return await self._serve(world)
        finally:
            await world.stop()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def _serve(self, world: DemoWorld) -> int:
        opts = self.opts
        state_url = opts.state_url or f"sqlite:///{self.workdir / 'state.db'}"
        listen = f"[{opts.host}]:{opts.port}" if ":" in opts.host else f"{opts.host}:{opts.port}"
        config_path = self.workdir / "config.toml"
        config_path.write_text(config_text(
            world, state_url=state_url, listen=listen, token=opts.token, pace=opts.pace,
            log_level=opts.log_level,
        ), encoding="utf-8")
        try:
            config = load_config(config_path)
        except ConfigError as exc:
            self.say(f"error: {exc}")
            return EXIT_USAGE

        summary = Summary(self.out, since=datetime.now(UTC))
        daemon = Daemon(config, config_path=config_path, start_delay=opts.pace.start_delay)
        serve = asyncio.create_task(daemon.serve(), name="daemon")
        helpers: list[asyncio.Task[None]] = []
        store: StateStore | None = None
        code = EXIT_FAILED
        try:
            if not await self._wait_for_web(serve):
                # Either stopped by a signal while starting, or it could not start (logged).
                stopped = serve.done() and not serve.cancelled() and serve.exception() is None
                if stopped and serve.result() == 0:
                    self.say("Stopped.")
                    return EXIT_OK
                return EXIT_FAILED
            # A store of our own: it outlives the daemon's, for the runs of the drain.
            store = await open_store(state_url)
            self._banner(world, config_path, state_url)
            if opts.churn:
                churn = Churn(world, seed=opts.seed, every=opts.pace.churn)
                helpers.append(asyncio.create_task(churn.run(), name="churn"))
            helpers.append(asyncio.create_task(self._watch(daemon, store, summary, serve),
                                               name="summary"))
            code = await serve
            self._own_signals()
            await summary.poll(store)
        finally:
            self._own_signals()
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            if not serve.done():
                daemon.request_stop()
            await asyncio.gather(serve, return_exceptions=True)
            if store is not None:
                await store.close()
        if code != 0:
            return EXIT_FAILED
        if opts.runs is not None:
            missing = [n for n in INTEGRATIONS if summary.ok.get(n, 0) < 1]
            if missing:
                self.say(f"No ok run of: {', '.join(missing)}")
                return EXIT_FAILED
            self.say(f"Done: every integration finished {opts.runs} run(s).")
        else:
            self.say("Stopped.")
        return EXIT_OK

    def _own_signals(self) -> None:
        """Ctrl-C and SIGTERM set our stop flag (the daemon takes them over while serving)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)

    async def _wait_for_web(self, serve: asyncio.Task[int]) -> bool:
        """True once the status page accepts connections; False if the daemon gave up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WEB_WAIT
        host = "127.0.0.1" if self.opts.host in ("0.0.0.0", "") else self.opts.host
        host = "::1" if host == "::" else host
        while loop.time() < deadline and not serve.done():
            try:
                _, writer = await asyncio.open_connection(host, self.opts.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True
        return False

    def _banner(self, world: DemoWorld, config_path: Path, state_url: str) -> None:
        url = page_url(self.opts.host, self.opts.port)
        pace = self.opts.pace
        lines = [
            "stocksyncd demo: the daemon against built-in API simulators (no network, "
            "no credentials)",
            "",
            *("  " + line for line in world.describe()),
            "",
            f"Running: moysklad-insales every {pace.moysklad}, kak2c-insales every "
            f"{pace.kak2c}, mouser-inventree every {pace.mouser} (2 parts a run)"
            + ("; source stock keeps changing" if self.opts.churn else ""),
            f"Status page: {url}",
            f"Review page: {url}review",
        ]
        if self.opts.token:
            lines.append(f"Web token:   {self.opts.token}")
        lines += [
            f"Config file: {config_path}",
            f"State store: {state_url}",
            "Press Ctrl-C to stop",
            "",
        ]
        self.say(*lines)

    async def _watch(self, daemon: Daemon, store: StateStore, summary: Summary,
                     serve: asyncio.Task[int]) -> None:
        """Print finished runs; stop the daemon on ``--runs`` or an early stop request."""
        while not serve.done():
            if self.stop_requested.is_set() and not self.daemon_stopping:
                # A signal that came before the daemon had its own handlers in place.
                self.daemon_stopping = True
                daemon.request_stop()
            await summary.poll(store)
            if (self.opts.runs is not None and not self.daemon_stopping
                    and summary.all_done(list(INTEGRATIONS), self.opts.runs)):
                self.daemon_stopping = True
                daemon.request_stop()
            await asyncio.sleep(self.opts.pace.poll)


def _clean_environment() -> None:
    """The demo's config is complete: overrides meant for a real daemon must not leak in."""
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX) and name.upper() != "STOCKSYNCD_CONFIG":
            del os.environ[name]


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``stocksyncd demo``; the exit code."""
    try:
        opts = _options(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_USAGE
    _clean_environment()
    with tempfile.TemporaryDirectory(prefix="stocksyncd-demo-") as tmp:
        demo = Demo(opts, Path(tmp), sys.stdout)
        try:
            return asyncio.run(demo.run())
        except KeyboardInterrupt:
            return EXIT_OK
