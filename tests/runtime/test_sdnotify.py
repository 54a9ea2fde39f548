"""sd_notify datagrams, received on a socket the test binds."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stocksyncd.runtime.sdnotify import Notifier, monotonic_usec, watchdog_interval


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    yield sock, path
    sock.close()


def _fields(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.split("\n"))


def test_messages_arrive_on_a_path_socket(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier(path)
    assert n.ready("2 integrations scheduled")
    assert _fields(sock) == {"READY": "1", "STATUS": "2 integrations scheduled"}
    before = monotonic_usec()
    assert n.reloading()
    fields = _fields(sock)
    assert fields["RELOADING"] == "1"
    assert before <= int(fields["MONOTONIC_USEC"]) <= monotonic_usec()
    n.stopping()
    assert _fields(sock) == {"STOPPING": "1"}
    n.watchdog()
    assert _fields(sock) == {"WATCHDOG": "1"}
    n.status("two\nlines")
    assert _fields(sock) == {"STATUS": "two lines"}


def test_monotonic_usec_is_clock_monotonic() -> None:
    assert abs(monotonic_usec() - time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000) < 10**6


def test_abstract_socket() -> None:
    name = f"stocksyncd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        assert Notifier("@" + name).ready()
        assert sock.recv(100) == b"READY=1"


def test_no_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled
    assert not n.ready()
    assert not Notifier(str(tmp_path / "nobody-listens")).ready()  # failure is swallowed


def test_watchdog_interval() -> None:
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, pid=42) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "41"}, pid=42) is None
