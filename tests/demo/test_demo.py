"""``stocksyncd demo``: in a subprocess end to end, and its parts in process.

The subprocess tests wait on output lines and on the process exit, each wait
bounded; nothing sleeps.
"""

from __future__ import annotations

import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from stocksyncd.config import MouserInvenTreeConfig, load_config
from stocksyncd.demo import main
from stocksyncd.demo.catalogue import DemoWorld, build_world
from stocksyncd.demo.churn import Churn
from stocksyncd.demo.options import FAST, INTEGRATIONS, NORMAL, parse_listen
from stocksyncd.demo.session import config_text
from stocksyncd.demo.summary import Summary, format_run
from stocksyncd.simulators.moysklad import DEFAULT_STORE
from stocksyncd.state import open_store
from stocksyncd.state.api import ChangeRecord, RunRecord

TIMEOUT = 60.0
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DemoProcess:
    """``python -m stocksyncd demo ...`` with its stdout read line by line in a thread."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stocksyncd", "demo", "--listen",
             f"127.0.0.1:{self.port}", *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def expect(self, pattern: str) -> re.Match[str]:
        """The first line (from here on) matching ``pattern``; fails at EOF or timeout."""
        rx = re.compile(pattern)
        while True:
            try:
                line = self._queue.get(timeout=TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} within {TIMEOUT}s:\n"
                                     + self.output()) from None
            if line is None:
                raise AssertionError(f"the demo ended before printing {pattern!r}:\n"
                                     + self.output() + self.stderr())
            self.lines.append(line)
            if m := rx.search(line):
                return m

    def wait(self) -> int:
        code = self.proc.wait(timeout=TIMEOUT)
        self._reader.join(TIMEOUT)
        while not self._queue.empty():
            line = self._queue.get_nowait()
            if line is not None:
                self.lines.append(line)
        return code

    def output(self) -> str:
        return "\n".join(self.lines) + "\n"

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()

    def get(self, path: str) -> str:
        url = f"http://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
            assert resp.status == 200
            return str(resp.read().decode())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def demo() -> Iterator[list[DemoProcess]]:
    started: list[DemoProcess] = []
    yield started
    for p in started:
        p.close()


def ok_run_line(name: str) -> str:
    return rf"^\d\d:\d\d:\d\d  {re.escape(name)}\s+ok\s"


def test_demo_runs_every_integration_and_lists_them(demo: list[DemoProcess]) -> None:
    p = DemoProcess("--fast", "--runs", "2")
    demo.append(p)
    url = p.expect(r"^Status page: (http://\S+)$").group(1)
    assert url == f"http://127.0.0.1:{p.port}/"
    page = p.get("/")
    for name in INTEGRATIONS:
        assert name in page, f"{name} is not on the status page"
    assert "Mouser review" in p.get("/review")
    p.expect(r"^Press Ctrl-C to stop$")
    code = p.wait()
    out, err = p.output(), p.stderr()
    assert code == 0, out + err
    for name in INTEGRATIONS:
        assert re.search(ok_run_line(name), out, re.MULTILINE), f"no ok run of {name}:\n{out}"
    assert "Done: every integration finished 2 run(s)." in out
    # What the first runs wrote and refused is visible in the summary.
    assert re.search(r"^    SKU-\d{6}  quantity: \d+ -> \d+$", out, re.MULTILINE), out
    assert "conflicts (not written)" in out
    assert "Traceback" not in err, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly(demo: list[DemoProcess], sig: signal.Signals) -> None:
    p = DemoProcess("--fast")
    demo.append(p)
    p.expect(r"^Press Ctrl-C to stop$")
    p.expect(ok_run_line("moysklad-insales"))
    p.proc.send_signal(sig)
    code = p.wait()
    out, err = p.output(), p.stderr()
    assert code == 0, out + err
    assert out.rstrip().endswith("Stopped."), out
    assert "Traceback" not in err, err


def test_port_taken_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["--listen", f"127.0.0.1:{port}"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port} is already in use" in err
    assert "--listen 127.0.0.1:0" in err


@pytest.mark.parametrize("bad", ["8780", "127.0.0.1:", ":8780", "127.0.0.1:99999", "x:y"])
def test_bad_listen_is_a_usage_error(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--listen", bad]) == 2
    assert "--listen" in capsys.readouterr().err


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listen("[::1]:8780") == ("::1", 8780)


# -- the parts, in process ------------------------------------------------------------------


@pytest.fixture
def world() -> DemoWorld:
    return build_world(3)


def test_catalogue_is_consistent_and_imperfect(world: DemoWorld) -> None:
    shop = world.insales.variants()
    assert len(shop) >= 300
    skus = {v["sku"] for v in shop if v["sku"]}
    barcodes = [v["barcode"] for v in shop if v["barcode"]]
    assert set(world.moysklad_keys) <= skus
    assert set(world.kak2c_keys) <= set(barcodes)
    # The two sources keep different variants: they never fight over one figure.
    by_sku = {v["sku"]: v["id"] for v in shop if v["sku"]}
    by_barcode = {v["barcode"]: v["id"] for v in shop if v["barcode"]}
    ms_ids = {by_sku[k] for k in world.moysklad_keys}
    kak_ids = {by_barcode[b] for b in world.kak2c_keys if b not in world.duplicate_barcodes}
    assert not ms_ids & kak_ids
    assert len(world.duplicate_barcodes) == 2
    assert all(barcodes.count(b) == 2 for b in world.duplicate_barcodes)
    assert {repr(b.value) for b in world.bad_values} == {"-4", "None", "'abc'", "-3"}
    articles = [p.get("article") for p in world.moysklad.products.values()]
    assert articles.count(world.ambiguous_articles[0]) == 2
    # InvenTree parts named after Mouser entries, Mouser SKUs Mouser knows.
    known = {p["MouserPartNumber"] for p in world.mouser.parts}
    skus_in_inventree = [sp["SKU"] for sp in world.inventree.supplier_parts.values()
                         if sp["supplier"] == world.inventree.mouser_supplier]
    assert sum(sku in known for sku in skus_in_inventree) >= 5


def test_same_seed_same_catalogue() -> None:
    a, b = build_world(5), build_world(5)
    assert a.insales.variants() == b.insales.variants()
    assert [p["stock"] for p in a.kak2c.variants.values()] == \
        [p["stock"] for p in b.kak2c.variants.values()]


def test_config_is_valid_with_every_integration(world: DemoWorld, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(world, state_url=f"sqlite:///{tmp_path}/s.db",
                                listen="127.0.0.1:8780", token="", pace=NORMAL,
                                log_level="ERROR"))
    config = load_config(path)
    assert list(config.integrations) == list(INTEGRATIONS)
    assert all(cfg.enabled and cfg.run_at_start for cfg in config.integrations.values())
    assert config.integrations["kak2c-insales"].every == 10
    assert config.integrations["moysklad-insales"].every == 30
    parts = config.integrations["mouser-inventree"]
    assert parts.every == 5
    assert isinstance(parts, MouserInvenTreeConfig)
    assert parts.parts_per_run == 2
    assert config.daemon.log_format == "text"
    assert FAST.kak2c == "1s"


def test_churn_moves_stock_but_not_the_planted_values(world: DemoWorld) -> None:
    before_ms = {pid: row.stock for pid, row in world.moysklad.stock[DEFAULT_STORE].items()}
    before_kak = {vid: v["stock"][0]["stockTotal"] for vid, v in world.kak2c.variants.items()}
    churn = Churn(world, seed=3)
    total = [churn.step() for _ in range(20)]
    assert sum(s.moysklad for s in total) > 0 and sum(s.kak2c for s in total) > 0
    after_ms = {pid: row.stock for pid, row in world.moysklad.stock[DEFAULT_STORE].items()}
    after_kak = {vid: v["stock"][0]["stockTotal"] for vid, v in world.kak2c.variants.items()}
    assert after_ms != before_ms and after_kak != before_kak
    assert all(v >= 0 for pid, v in after_ms.items() if before_ms.get(pid, 0) >= 0)
    for bad in world.bad_values:
        if bad.source == "Kak2c":
            assert world.kak2c.by_barcode(bad.key)["stock"][0]["stockTotal"] == bad.value


async def test_summary_prints_each_finished_run_once(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from stocksyncd.integrations.base import Change, RunCounts, RunResult

    store = await open_store(f"sqlite:///{tmp_path}/state.db")
    try:
        start = datetime.now(UTC)
        await store.start_run(run_id="r1", integration="kak2c-insales", trigger="schedule",
                              dry_run=False, replica="t", started_at=start)
        changes = [Change(str(i), f"46{i:011d}", "quantity", "12.0", str(i)) for i in range(7)]
        result = RunResult(integration="kak2c-insales", run_id="r1", status="ok",
                           counts=RunCounts(source=9, matched=7, changed=7, written=7,
                                            skipped=2, skipped_by_reason={"null": 2}),
                           conflicts=["4600000000001"], changes=changes,
                           message="7 changes written", duration_s=0.25)
        await store.finish_run(result, finished_at=start + timedelta(seconds=1))
        lines: list[str] = []

        class Out:
            def write(self, text: str) -> int:
                lines.append(text)
                return len(text)

            def flush(self) -> None:
                pass

        summary = Summary(Out(), since=start - timedelta(seconds=1))  # type: ignore[arg-type]
        assert len(await summary.poll(store)) == 1
        assert await summary.poll(store) == []
        text = "".join(lines)
        assert "kak2c-insales     ok" in text
        assert "skipped 2 (null 2)" in text
        assert "conflicts (not written): 4600000000001" in text
        assert "    4600000000000  quantity: 12 -> 0\n" in text
        assert "… and 2 more change(s)" in text
        assert summary.ok == {"kak2c-insales": 1}
        assert summary.all_done(["kak2c-insales"], 1)
        assert not summary.all_ok(list(INTEGRATIONS))
    finally:
        await store.close()


def test_format_run_shows_failures() -> None:
    from datetime import UTC, datetime

    record = RunRecord(run_id="x", integration="moysklad-insales", trigger="schedule",
                       dry_run=False, replica="t", started_at=datetime.now(UTC),
                       status="aborted", message="would set 80% of matched variants to 0",
                       errors=["page 2: HTTP 500"], details={"negative_clamped": 2},
                       changes=[ChangeRecord("1", "SKU-1", "quantity", None, "3", False)])
    lines = format_run(record)
    assert "aborted" in lines[0]
    assert lines[0].endswith("negative clamped to 0: 2")
    assert "    would set 80% of matched variants to 0" in lines
    assert "    error: page 2: HTTP 500" in lines
    assert "    SKU-1  quantity: (none) -> 3  (not applied)" in lines
