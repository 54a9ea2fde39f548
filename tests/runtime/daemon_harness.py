"""Run the real daemon (signals, sd_notify, web, SQLite state) with gated fake integrations.

Usage: ``python daemon_harness.py CONFIG``. ``NOTIFY_SOCKET`` names the test's
datagram socket; besides systemd's messages the harness sends its own events
there (``started:NAME``, ``recorded:NAME:STATUS``), so the test sees one
ordered stream. A run blocks until the test sends ``release:NAME`` to the
datagram socket ``$HARNESS_CONTROL``, which the harness binds.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from datetime import datetime
from typing import Any

from stocksyncd.clock import Clock
from stocksyncd.config import Config, load_config
from stocksyncd.integrations.base import Integration, Resources, RunContext, RunResult
from stocksyncd.runtime.daemon import Daemon
from stocksyncd.runtime.sdnotify import Notifier
from stocksyncd.state import open_store
from stocksyncd.state.api import StateStore

EVENTS = Notifier()
_gates: dict[str, asyncio.Event] = {}


def gate(name: str) -> asyncio.Event:
    return _gates.setdefault(name, asyncio.Event())


class GatedIntegration:
    def __init__(self, name: str, type_: str) -> None:
        self.name = name
        self.type = type_

    async def run(self, ctx: RunContext) -> RunResult:
        EVENTS.notify(f"started:{self.name}")
        await gate(self.name).wait()
        gate(self.name).clear()
        return RunResult(integration=self.name)

    async def close(self) -> None:
        pass


def build(name: str, cfg: Any, config: Config, res: Resources) -> Integration:
    return GatedIntegration(name, cfg.type)


class ReportingStore:
    """The real store, telling the test when a run's outcome is written."""

    def __init__(self, inner: StateStore) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def finish_run(self, result: RunResult, *, finished_at: datetime) -> None:
        await self._inner.finish_run(result, finished_at=finished_at)
        EVENTS.notify(f"recorded:{result.integration}:{result.status}")


async def state_factory(url: str, *, clock: Clock) -> StateStore:
    return ReportingStore(await open_store(url, clock=clock))  # type: ignore[return-value]


def listen_for_releases() -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(os.environ["HARNESS_CONTROL"])
    sock.setblocking(False)

    def on_readable() -> None:
        message = sock.recv(1024).decode()
        if message.startswith("release:"):
            gate(message.removeprefix("release:")).set()

    asyncio.get_running_loop().add_reader(sock.fileno(), on_readable)


async def main(path: str) -> int:
    listen_for_releases()
    daemon = Daemon(load_config(path), config_path=path, builder=build,
                    state_factory=state_factory, start_delay=0.0)
    return await daemon.serve()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1])))
