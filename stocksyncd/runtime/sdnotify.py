"""systemd notifications (sd_notify(3)) without a library.

One datagram per message to ``$NOTIFY_SOCKET``; a leading ``@`` means the
abstract namespace. Without the variable (Docker, a terminal) every call is
a silent no-op, and a failed send is logged at DEBUG and otherwise ignored,
as the man page recommends.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Mapping

from loguru import logger


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, as systemd wants it with ``RELOADING=1``."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def watchdog_interval(
    env: Mapping[str, str] | None = None, pid: int | None = None
) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``), or None when off."""
    env = os.environ if env is None else env
    raw = env.get("WATCHDOG_USEC", "")
    if not raw.isdigit() or int(raw) == 0:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner and owner != str(pid if pid is not None else os.getpid()):
        return None
    return int(raw) / 1_000_000 / 2


class Notifier:
    """Sends sd_notify messages to the service manager, if there is one."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")

    @property
    def enabled(self) -> bool:
        """True when a service manager listens."""
        return bool(self.address)

    def notify(self, *fields: str) -> bool:
        """Send ``fields`` (``KEY=value``) as one message; True when it was sent."""
        if not self.address:
            return False
        target = self.address
        if target.startswith("@"):
            target = "\0" + target[1:]
        payload = "\n".join(f.replace("\n", " ") for f in fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(target)
                sock.sendall(payload)
        except OSError as exc:
            logger.debug("sd_notify to {} failed: {}", self.address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``: serving (also after a reload)."""
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC`` (without it ``systemctl reload`` hangs)."""
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}")

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: shutdown has begun."""
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        """``STATUS=...``: one line shown by ``systemctl status``."""
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the event loop is alive."""
        return self.notify("WATCHDOG=1")


async def watchdog_loop(notifier: Notifier, interval: float) -> None:
    """Ping the watchdog from the event loop, so a blocked loop stops the pings."""
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)
