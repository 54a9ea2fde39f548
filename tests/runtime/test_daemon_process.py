"""The real daemon in a subprocess: sd_notify, /healthz, SIGHUP reload, SIGTERM drain.

Every wait is on something observable (a datagram, an HTTP answer, the process
exit), bounded by a generous timeout; nothing sleeps.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

HARNESS = Path(__file__).with_name("daemon_harness.py")
TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config_text(db: Path, port: int, *names: str, every: str = "1h") -> str:
    text = (
        f'[daemon]\nstate_url = "sqlite:///{db}"\nlog_format = "journal"\n'
        f'shutdown_timeout = "60s"\n'
        f'[web]\nlisten = "127.0.0.1:{port}"\n'
        '[shops.main]\nurl = "https://shop.myinsales.ru"\napi_key = "key-1234"\n'
        'password = "pass-1234"\n'
    )
    for name in names:
        text += (f'[integrations.{name}]\ntype = "kak2c-insales"\nshop = "main"\nlogin = "l"\n'
                 f'password = "kak2c-pass"\nevery = "{every}"\n')
    return text


class Proc:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.port = free_port()
        self.config = tmp_path / "config.toml"
        self.db = tmp_path / "state.db"
        self.events = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.events.bind(str(tmp_path / "notify.sock"))
        self.events.settimeout(TIMEOUT)
        self.control = str(tmp_path / "control.sock")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *names: str) -> None:
        self.config.write_text(config_text(self.db, self.port, *names))
        env = {**os.environ, "NOTIFY_SOCKET": str(self.tmp / "notify.sock"),
               "HARNESS_CONTROL": self.control}
        env.pop("WATCHDOG_USEC", None)
        self.proc = subprocess.Popen(
            [sys.executable, str(HARNESS), str(self.config)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )

    def next_event(self) -> str:
        """The next datagram, skipping watchdog pings and bare status updates."""
        while True:
            try:
                data = self.events.recv(4096).decode()
            except TimeoutError:
                raise AssertionError(f"no event within {TIMEOUT}s; {self.stderr()}") from None
            first = data.split("\n", 1)[0]
            if not first.startswith(("WATCHDOG=", "STATUS=")):
                return data

    def expect(self, prefix: str) -> str:
        data = self.next_event()
        assert data.startswith(prefix), f"expected {prefix!r}, got {data!r}"
        return data

    def release(self, name: str) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(f"release:{name}".encode(), self.control)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def get(self, path: str) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait(self) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=TIMEOUT)

    def stderr(self) -> str:
        if self.proc is None or self.proc.poll() is None:
            return ""
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")[-3000:]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)
        self.events.close()


@pytest.fixture
def proc(tmp_path: Path) -> Iterator[Proc]:
    p = Proc(tmp_path)
    yield p
    p.close()


def test_lifecycle_ready_reload_drain(proc: Proc) -> None:
    """1. start with one integration; its first run starts and blocks.
    2. /healthz answers; a bad config on SIGHUP keeps the old one.
    3. a good config on SIGHUP adds a job, which runs.
    4. SIGTERM while the first run is in flight: STOPPING, and the process
       exits 0 only after that run finished and was recorded.
    """
    proc.start("alpha")
    # READY=1 and the first run may come in either order.
    first, second = proc.next_event(), proc.next_event()
    events = sorted(e.split("\n")[0] for e in (first, second))
    assert events == ["READY=1", "started:alpha"], events
    assert "STATUS=1 integration scheduled" in first + second

    status, body = proc.get("/healthz")
    assert status == 200, body

    proc.config.write_text("[daemon]\nno_such_key = 1\n")
    proc.signal(signal.SIGHUP)
    reloading = proc.expect("RELOADING=1")
    assert "MONOTONIC_USEC=" in reloading
    proc.expect("READY=1")

    proc.config.write_text(config_text(proc.db, proc.port, "alpha", "beta"))
    proc.signal(signal.SIGHUP)
    proc.expect("RELOADING=1")
    after_reload = {proc.next_event().split("\n")[0], proc.next_event().split("\n")[0]}
    assert after_reload == {"READY=1", "started:beta"}
    proc.release("beta")
    assert proc.next_event() == "recorded:beta:ok"

    proc.signal(signal.SIGTERM)
    proc.expect("STOPPING=1")
    assert proc.proc is not None and proc.proc.poll() is None  # still draining alpha
    proc.release("alpha")
    assert proc.next_event() == "recorded:alpha:ok"
    assert proc.wait() == 0
    log = proc.stderr()
    assert "<6>stocksyncd stopped" in log
    assert "<3>reload failed, keeping the running configuration" in log
    assert "daemon.no_such_key: unknown key" in log


def test_port_taken_exits_1(proc: Proc) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", proc.port))
        blocker.listen()
        proc.start("alpha")
        assert proc.wait() == 1
    log = proc.stderr()
    assert f"web.listen 127.0.0.1:{proc.port}: cannot listen: address already in use" in log
