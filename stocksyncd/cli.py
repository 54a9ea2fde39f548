"""``stocksyncd`` command line: run, check-config [--online], test [NAME], sync NAME,
check, demo.

Exit codes: 0 ok; 1 the run failed or was aborted, the daemon crashed, or the
health probe failed; 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from stocksyncd import __version__
from stocksyncd.config import Config, default_config_path, load_config
from stocksyncd.errors import ConfigError
from stocksyncd.i18n.formats import fmt_duration

if TYPE_CHECKING:
    from stocksyncd.integrations.access import AccessResult
    from stocksyncd.integrations.base import RunResult

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

CHECK_TIMEOUT = 5.0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (argparse exits 2 on usage errors)."""
    parser = argparse.ArgumentParser(
        prog="stocksyncd",
        description="Keeps stock and supplier data in step between MoySklad, Kak2c, "
        "InSales, Mouser and InvenTree.",
    )
    parser.add_argument("--version", action="version", version=f"stocksyncd {__version__}")
    parser.add_argument(
        "--config", type=Path, default=None, metavar="PATH",
        help="config file (default: $STOCKSYNCD_CONFIG, else /etc/stocksyncd/config.toml)",
    )
    # ``--config`` is accepted after the command too; SUPPRESS keeps a value given
    # before the command when none follows it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS, metavar="PATH",
                        help="config file (as before the command)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    sub.add_parser("run", parents=[common],
                   help="run the daemon in the foreground (systemd, Docker)")
    check_config = sub.add_parser("check-config", parents=[common],
                                  help="validate the configuration")
    check_config.add_argument(
        "--online", action="store_true",
        help="also sign in to every configured API and read one page (writes nothing)")
    test = sub.add_parser("test", parents=[common],
                          help="sign in to the APIs of one or every integration and read "
                               "one page each (writes nothing)")
    test.add_argument("name", nargs="?", help="integration name (default: all)")
    sync = sub.add_parser("sync", parents=[common], help="run one integration once, now")
    sync.add_argument("name", help="integration name ([integrations.NAME])")
    sync.add_argument("--dry-run", action="store_true", help="plan only, write nothing")
    sync.add_argument("--json", action="store_true", help="print one JSON object")
    sub.add_parser("check", parents=[common],
                   help="health probe of a running daemon (exit 0 healthy, 1 not)")
    # Everything after ``demo`` belongs to the demo's own parser.
    sub.add_parser("demo", help="API simulators + daemon + web page", add_help=False)
    return parser


def _load(path: Path | None) -> Config | None:
    try:
        return load_config(path if path is not None else default_config_path())
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def cmd_check_config(path: Path | None, *, online: bool = False) -> int:
    """Validate the configuration and name its integrations; ``online``: try the APIs too."""
    config = _load(path)
    if config is None:
        return EXIT_USAGE
    names = list(config.integrations)
    plural = "" if len(names) == 1 else "s"
    print(f"OK: {len(names)} integration{plural} ({', '.join(names)})")
    if not online:
        return EXIT_OK
    return _check_access(config, names)


def cmd_test(path: Path | None, name: str | None) -> int:
    """Sign in to the APIs of one or every integration and read one page each."""
    config = _load(path)
    if config is None:
        return EXIT_USAGE
    if name is not None and name not in config.integrations:
        known = ", ".join(config.integrations) or "none configured"
        print(f"error: unknown integration {name!r} (known: {known})", file=sys.stderr)
        return EXIT_USAGE
    return _check_access(config, [name] if name is not None else list(config.integrations))


def _check_access(config: Config, names: list[str]) -> int:
    from stocksyncd.runtime.logs import setup_logging

    fmt = "text" if sys.stderr.isatty() else config.daemon.log_format
    setup_logging(config.daemon.log_level, fmt, secrets=config.secret_values())
    try:
        reports = asyncio.run(_access(config, names))
    except Exception as exc:  # noqa: BLE001 - setup failure: report, exit 1
        from stocksyncd.redact import redact

        print(f"error: {redact(str(exc)) or type(exc).__name__}", file=sys.stderr)
        return EXIT_FAILED
    failed = False
    for name, results in reports:
        cfg = config.integrations[name]
        state = "" if cfg.enabled else ", disabled"
        print(f"{name} ({cfg.type}{state})")
        for result in results:
            mark = "ok     " if result.ok else "FAILED "
            print(f"  {mark} {result.api}: {result.detail}")
            failed = failed or not result.ok
    return EXIT_FAILED if failed else EXIT_OK


async def _access(config: Config, names: list[str]) -> list[tuple[str, list[AccessResult]]]:
    from stocksyncd.integrations import registry
    from stocksyncd.integrations.access import check_access
    from stocksyncd.runtime.resources import SharedResources

    # No state store: the check writes nothing, not even run history.
    resources = SharedResources()
    reports: list[tuple[str, list[AccessResult]]] = []
    try:
        for name in names:
            cfg = config.integrations[name]
            integration = registry.build(name, cfg, config, resources.for_integration(name))
            try:
                reports.append((name, await check_access(integration, cfg.timeout)))
            finally:
                await integration.close()
    finally:
        await resources.close()
    return reports


def cmd_run(path: Path | None) -> int:
    """The daemon in the foreground."""
    config = _load(path)
    if config is None:
        return EXIT_USAGE
    from loguru import logger

    from stocksyncd.runtime.daemon import Daemon

    daemon = Daemon(config, config_path=path if path is not None else default_config_path())
    try:
        return asyncio.run(daemon.serve())
    except Exception:  # noqa: BLE001 - last resort: log it, exit 1 so systemd restarts us
        logger.exception("the daemon crashed")
        return EXIT_FAILED


def _print_summary(result: RunResult) -> None:
    c = result.counts
    mode = " (dry run: nothing written)" if result.dry_run else ""
    print(f"{result.integration}: {result.status}{mode} in {fmt_duration(result.duration_s)}")
    if result.message:
        print(f"  {result.message}")
    rows = [("source items", c.source), ("target items", c.target), ("matched", c.matched),
            ("changed", c.changed), ("written", c.written), ("skipped", c.skipped)]
    for label, value in rows:
        print(f"  {label:<14}{value:>8}")
    for reason, n in sorted(c.skipped_by_reason.items()):
        print(f"    {reason:<20}{n:>6}")
    print(f"  {'unmatched':<14}{c.unmatched:>8}")
    for reason, n in sorted(c.unmatched_by_reason.items()):
        print(f"    {reason:<20}{n:>6}")
    if result.changes:
        title = "planned changes" if result.dry_run else "changes"
        print(f"\n{title} ({len(result.changes)}):")
        width = max(len(ch.key) for ch in result.changes)
        for ch in result.changes:
            mark = "" if ch.applied or result.dry_run else "  (not applied)"
            print(f"  {ch.key:<{width}}  {ch.field}: {ch.old} -> {ch.new}{mark}")
    if result.conflicts:
        print(f"\nconflicts ({len(result.conflicts)}, not written):")
        for key in result.conflicts:
            print(f"  {key}")
    if result.errors:
        print(f"\nerrors ({len(result.errors)}):")
        for err in result.errors:
            print(f"  {err}")


async def _sync(config: Config, name: str, dry_run: bool) -> RunResult:
    from stocksyncd.integrations import registry
    from stocksyncd.runtime.executor import Executor, run_deadline
    from stocksyncd.runtime.heap import settle_heap
    from stocksyncd.runtime.resources import SharedResources
    from stocksyncd.state import open_store

    cfg = config.integrations[name]
    state = await open_store(config.daemon.state_url)
    resources = SharedResources(state=state)
    integration = None
    try:
        res = resources.for_integration(name)
        integration = registry.build(name, cfg, config, res)
        executor = Executor(state=state, clock=resources.clock, replica=config.daemon.replica,
                            debug_dir=config.daemon.debug_dir)
        settle_heap()
        return await executor.run(
            integration, trigger="cli", dry_run=dry_run or cfg.dry_run,
            deadline=run_deadline(cfg, cfg.type), observer=res.counter,
        )
    finally:
        if integration is not None:
            await integration.close()
        await resources.close()
        await state.close()


def cmd_sync(path: Path | None, name: str, *, dry_run: bool, as_json: bool) -> int:
    """One run of one integration, now."""
    config = _load(path)
    if config is None:
        return EXIT_USAGE
    if name not in config.integrations:
        known = ", ".join(config.integrations) or "none configured"
        print(f"error: unknown integration {name!r} (known: {known})", file=sys.stderr)
        return EXIT_USAGE
    from stocksyncd.runtime.logs import setup_logging

    # Logs go to stderr; stdout carries only the summary or the JSON object.
    fmt = "text" if sys.stderr.isatty() else config.daemon.log_format
    setup_logging(config.daemon.log_level, fmt, secrets=config.secret_values())
    try:
        result = asyncio.run(_sync(config, name, dry_run))
    except Exception as exc:  # noqa: BLE001 - state store or setup failure: report, exit 1
        from stocksyncd.redact import redact

        print(f"error: {name}: {redact(str(exc)) or type(exc).__name__}", file=sys.stderr)
        return EXIT_FAILED
    if as_json:
        sys.stdout.write(orjson.dumps(result.to_json()).decode() + "\n")
    else:
        _print_summary(result)
    return EXIT_OK if result.status == "ok" else EXIT_FAILED


def probe_url(config: Config) -> str:
    """The /healthz URL of the daemon this config describes (wildcards mean loopback)."""
    host = config.web.host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.web.port}/healthz"


def cmd_check(path: Path | None) -> int:
    """Health probe: GET /healthz; 0 on 200, 1 otherwise."""
    config = _load(path)
    if config is None:
        return EXIT_USAGE
    url = probe_url(config)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    token = config.web.token.get_secret_value()
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=CHECK_TIMEOUT) as resp:
            status = resp.status
            body = resp.read(2000)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(2000)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"unhealthy: cannot reach the daemon at {url}: {reason}", file=sys.stderr)
        return EXIT_FAILED
    text = body.decode("utf-8", "replace").strip()
    if status == 200:
        print(f"healthy: {text}")
        return EXIT_OK
    print(f"unhealthy: HTTP {status} from {url}: {text}", file=sys.stderr)
    return EXIT_FAILED


def cmd_demo(argv: list[str]) -> int:
    """Hand over to the built-in demo."""
    try:
        demo_main = importlib.import_module("stocksyncd.demo").main
    except ImportError as exc:
        print(f"error: the demo is not available in this installation ({exc})", file=sys.stderr)
        return EXIT_USAGE
    return int(demo_main(argv) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stocksyncd`` console script."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        # Ctrl-C before a command installed its own handling: no traceback.
        return 130


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(list(argv) if argv is not None else None)
    if extra and args.command != "demo":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    path: Path | None = args.config
    if args.command == "check-config":
        return cmd_check_config(path, online=args.online)
    if args.command == "test":
        return cmd_test(path, args.name)
    if args.command == "run":
        return cmd_run(path)
    if args.command == "sync":
        return cmd_sync(path, args.name, dry_run=args.dry_run, as_json=args.json)
    if args.command == "check":
        return cmd_check(path)
    return cmd_demo(extra)
