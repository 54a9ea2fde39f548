"""Two real daemon processes against one PostgreSQL schema and a simulator process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from stocksyncd.state import SqlStateStore, open_store

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
EVERY = 2.0  # both jobs, seconds
LEASE_TTL = 3.0
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for(probe: Callable[[], Awaitable[T | None]], *, timeout: float,
                   what: str, every: float = 0.1) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(every)


@pytest.fixture
def sims() -> Iterator[dict[str, Any]]:
    """The simulator host process and the JSON line it printed."""
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "simhost.py")], cwd=ROOT,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"the simulator host exited with {proc.wait(5)}")
        yield json.loads(line)
    finally:
        proc.kill()
        proc.wait(10)


class Replica:
    """One ``python -m stocksyncd run`` process."""

    def __init__(self, name: str, config: Path, port: int, log: Path) -> None:
        self.name = name
        self.config = config
        self.port = port
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKSYNCD_")}
        env.pop("NOTIFY_SOCKET", None)
        env.pop("WATCHDOG_USEC", None)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stocksyncd", "--config", str(self.config), "run"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no drain, no lease release, nothing recorded."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    async def healthz(self, session: aiohttp.ClientSession) -> dict[str, Any] | None:
        try:
            async with session.get(f"http://127.0.0.1:{self.port}/healthz") as resp:
                body: dict[str, Any] = await resp.json()
                return body
        except aiohttp.ClientError:
            return None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def write_config(path: Path, *, replica: str, port: int, state_url: str,
                 sims: dict[str, Any], shutdown_timeout: float = 5.0) -> Path:
    path.write_text(f"""
[daemon]
state_url = {json.dumps(state_url)}
replica = "{replica}"
lease_ttl = "{LEASE_TTL:g}s"
log_format = "text"
log_level = "INFO"
shutdown_timeout = "{shutdown_timeout:g}s"

[web]
listen = "127.0.0.1:{port}"

[shops.main]
url = "{sims['insales']}"
api_key = "{sims['insales_key']}"
password = "{sims['insales_password']}"

[integrations.stock]
type = "kak2c-insales"
shop = "main"
every = "{EVERY:g}s"
jitter = "0s"
login = "{sims['kak2c_login']}"
password = "{sims['kak2c_password']}"
base_url = "{sims['kak2c']}"
page_size = 1000
write_concurrency = 1
zero_guard = 1.0

[integrations.parts]
type = "mouser-inventree"
every = "{EVERY:g}s"
jitter = "0s"
inventree_url = "{sims['inventree']}"
inventree_token = "{sims['inventree_token']}"
mouser_api_key = "{sims['mouser_key']}"
mouser_supplier = {sims['mouser_supplier']}
base_url = "{sims['mouser']}"
parts_per_run = 1
""")
    return path


@pytest.fixture
async def replicas(tmp_path: Path, pg_url: str,
                   sims: dict[str, Any]) -> AsyncIterator[dict[str, Replica]]:
    """Two configured (not yet started) replicas, ``alpha`` and ``beta``; stopped at the end."""
    out: dict[str, Replica] = {}
    for name in ("alpha", "beta"):
        port = free_port()
        config = write_config(tmp_path / f"{name}.toml", replica=name, port=port,
                              state_url=pg_url, sims=sims)
        out[name] = Replica(name, config, port, tmp_path / f"{name}.log")
    try:
        yield out
    finally:
        for replica in out.values():
            replica.stop()


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[SqlStateStore]:
    """The replicas' state store, for the test to watch runs and leases."""
    s = await open_store(pg_url)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def control(sims: dict[str, Any]) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """Call the simulator host's control endpoint: ``await control("GET", "/stats")``."""
    async with aiohttp.ClientSession() as session:

        async def call(method: str, path: str) -> Any:
            async with session.request(method, sims["control"] + path) as resp:
                resp.raise_for_status()
                return await resp.json()

        yield call


async def assert_audited(store: SqlStateStore, stats: dict[str, Any]) -> int:
    """Every variant InSales took a figure for is in the audit: that old -> new figure.

    The shop starts at 0 everywhere, so every write's old figure is "0". Returns
    how many audited changes were checked.
    """
    audited: dict[str, list[tuple[str | None, str | None, str]]] = {}
    for brief in await store.recent_runs("stock", limit=1000):
        run = await store.get_run(brief.run_id)
        assert run is not None
        for c in run.changes:
            audited.setdefault(c.ref, []).append((c.old, c.new, c.status))
    checked = 0
    for vid, figures in stats["writes"].items():
        for figure in figures:
            found = [st for old, new, st in audited.get(vid, [])
                     if old == "0" and new == str(figure)]
            # Taken by the shop: the audit says sent (or planned: may have been sent).
            assert any(st in ("planned", "sent", "confirmed") for st in found), (
                vid, figure, audited.get(vid))
            checked += 1
    return checked


class PrivateCluster:
    """A PostgreSQL server of the test's own: it may be frozen or killed."""

    def __init__(self, root: Path, port: int, user: str | None) -> None:
        self.root = root
        self.port = port
        self.user = user
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def start(self) -> None:
        postgres = shutil.which("postgres")
        assert postgres is not None
        with (self.root / "server.log").open("ab") as out:
            # Its own session: a signal to the group reaches every backend.
            self.proc = subprocess.Popen(
                [postgres, "-D", str(self.root / "data"), "-p", str(self.port),
                 "-k", str(self.root), "-c", "listen_addresses=127.0.0.1",
                 "-c", "fsync=off", "-c", "full_page_writes=off"],
                stdout=out, stderr=subprocess.STDOUT, user=self.user,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                ready = subprocess.run(
                    [shutil.which("pg_isready") or "pg_isready", "-h", "127.0.0.1",
                     "-p", str(self.port)], capture_output=True, check=False)
                if ready.returncode == 0:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the private PostgreSQL did not start: "
                            + (self.root / "server.log").read_text(errors="replace")[-2000:])
            time.sleep(0.1)

    def signal(self, sig: signal.Signals) -> None:
        """Signal every process of the server (SIGSTOP freezes it, SIGCONT thaws it).

        Each backend is its own process group, so the children are found by parent.
        """
        assert self.proc is not None
        main = self.proc.pid
        children = [int(pid) for pid in subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(main)], capture_output=True, text=True,
            check=False).stdout.split()]
        # Stopped first, thawed last: no new backend is forked in between.
        order = [*children, main] if sig == signal.SIGCONT else [main, *children]
        for pid in order:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def private_pg() -> Iterator[PrivateCluster]:
    """A fresh PostgreSQL cluster in a temporary directory, on its own port."""
    initdb = shutil.which("initdb")
    if initdb is None or shutil.which("postgres") is None:
        pytest.skip("PostgreSQL server binaries are not installed")
    root = Path(tempfile.mkdtemp(prefix="stocksyncd-pg-"))
    # The server refuses to run as root.
    user = "postgres" if os.geteuid() == 0 else None
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    cluster = PrivateCluster(root, free_port(), user)
    try:
        subprocess.run([initdb, "-D", str(root / "data"), "-U", "postgres", "--auth=trust",
                        "-E", "UTF8", "--no-sync", "--no-instructions"],
                       check=True, capture_output=True, user=user)
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
