"""Notifications: what is told when, and delivery through apprise to a local receiver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from loguru import logger

from stocksyncd.clock import FakeClock
from stocksyncd.config import NotifyConfig
from stocksyncd.integrations.base import Change, RunResult, RunStatus
from stocksyncd.redact import clear_secrets, redact
from stocksyncd.runtime.notify import Notifier, url_secrets
from stocksyncd.state import SqlStateStore, open_store
from stocksyncd.state.api import ReviewEntry

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SqlStateStore]:
    s = await open_store(f"sqlite:///{tmp_path}/state.db", clock=clock)
    yield s
    await s.close()


@pytest.fixture(autouse=True)
def _forget_secrets() -> Any:
    yield
    clear_secrets()


def notifier(store: SqlStateStore, clock: FakeClock, urls: list[str] | None = None,
             **cfg: Any) -> Notifier:
    config = NotifyConfig(urls=urls if urls is not None else ["json://127.0.0.1:1/x"], **cfg)
    return Notifier(config, store, clock, page_url="https://stock.example")


def run(status: RunStatus, n: int, *, conflicts: tuple[str, ...] = (), error: str = "",
        name: str = "shop") -> RunResult:
    return RunResult(integration=name, run_id=f"run-{n}", status=status,
                     conflicts=list(conflicts), errors=[error] if error else [],
                     message=error or "")


async def events(n: Notifier, result: RunResult) -> list[str]:
    return [m.event for m in await n.decide(result)]


async def test_one_message_per_state_change_and_a_digest_for_repeats(
    store: SqlStateStore, clock: FakeClock,
) -> None:
    n = notifier(store, clock, failing_after=3, digest_every=3600)
    assert await events(n, run("ok", 0)) == []
    assert await events(n, run("failed", 1, error="insales: 503")) == ["run_failed"]
    assert await events(n, run("failed", 2, error="insales: 503")) == []
    assert await events(n, run("failed", 3, error="insales: 503")) == ["failing"]
    for i in range(4, 30):  # a one-minute job failing for half an hour: silence
        clock.advance(60)
        assert await events(n, run("failed", i, error="insales: 503")) == []
    clock.advance(3600)
    digest = await n.decide(run("failed", 30, error="insales: 503"))
    assert [m.event for m in digest] == ["digest"]
    assert "27 more unsuccessful runs" in digest[0].body and "insales: 503" in digest[0].body
    assert await events(n, run("failed", 31)) == []
    back = await n.decide(run("ok", 32))
    assert [m.event for m in back] == ["recovered"]
    assert "31 unsuccessful runs" in back[0].body
    assert "https://stock.example/runs/run-32" in back[0].body
    assert await events(n, run("ok", 33)) == []


async def test_zero_guard_conflicts_and_choices(store: SqlStateStore, clock: FakeClock) -> None:
    n = notifier(store, clock, recovered=False)
    aborted = await n.decide(run("aborted", 1, error="zero guard: 6 of 10 matched"))
    assert [m.event for m in aborted] == ["zero_guard"]
    assert "zero guard" in aborted[0].title and "6 of 10" in aborted[0].body
    assert await events(n, run("aborted", 2, error="zero guard: 6 of 10")) == []
    assert await events(n, run("ok", 3, conflicts=("A", "B"))) == ["new_conflicts"]
    assert await events(n, run("ok", 4, conflicts=("A", "B"))) == []
    new = await n.decide(run("ok", 5, conflicts=("A", "B", "C")))
    assert [m.event for m in new] == ["new_conflicts"] and "C" in new[0].body
    assert new[0].body.splitlines()[0].endswith("itself): C")  # only the new one
    # A failed run may not have seen both sides: it neither adds nor clears conflicts.
    assert await events(n, run("failed", 6)) == ["run_failed"]
    assert await events(n, run("ok", 7, conflicts=("A", "B", "C"))) == []
    quiet = notifier(store, clock, run_failed=False, new_conflicts=False)
    assert await events(quiet, run("failed", 1, name="other", error="x")) == []
    assert await events(quiet, run("ok", 2, name="other", conflicts=("Z",))) == ["recovered"]


async def test_state_survives_a_restart(store: SqlStateStore, clock: FakeClock) -> None:
    assert await events(notifier(store, clock), run("failed", 1)) == ["run_failed"]
    assert await events(notifier(store, clock), run("failed", 2)) == []


async def test_lifecycle_changes_of_the_run(store: SqlStateStore, clock: FakeClock) -> None:
    n = notifier(store, clock)
    await store.add_review(ReviewEntry("parts", 7, "LM317", "lifecycle", "lifecycle",
                                       {"sku": "595-LM317", "old": None, "new": "Obsolete"},
                                       run_id="run-1"))
    await store.add_review(ReviewEntry("parts", 8, "NE555", "lifecycle", "lifecycle",
                                       {"sku": "x", "old": "A", "new": "B"}, run_id="run-0"))
    result = run("ok", 1, name="parts")
    result.changes = [Change("1", "595-LM317", "note", "", "Lifecycle: Obsolete")]
    told = await n.decide(result)
    assert [m.event for m in told] == ["lifecycle"]
    assert "LM317 (595-LM317): — → Obsolete" in told[0].body and "NE555" not in told[0].body


async def test_russian_texts(store: SqlStateStore, clock: FakeClock) -> None:
    n = notifier(store, clock, language="ru", failing_after=2)
    failed = await n.decide(run("failed", 1, error="insales: 503"))
    assert failed[0].title == "shop: запуск не удался"
    failing = await n.decide(run("failed", 2, error="insales: 503"))
    assert failing[0].title == "shop: 2 неудачных запуска подряд"


async def test_delivered_through_apprise_json_webhook_to_a_local_receiver(
    store: SqlStateStore, clock: FakeClock,
) -> None:
    got: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        got.append({"path": request.path, "body": await request.json()})
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    async with TestServer(app, host="127.0.0.1") as server:
        url = f"json://127.0.0.1:{server.port}/hook/{TOKEN}"
        n = notifier(store, clock, urls=[url])
        message = (await n.decide(run("failed", 1, error="moysklad: page 3 timed out")))[0]
        assert await n.send(message)
    assert len(got) == 1
    assert got[0]["path"] == f"/hook/{TOKEN}"
    assert got[0]["body"]["title"] == "shop: run failed"
    assert "moysklad: page 3 timed out" in got[0]["body"]["message"]


async def test_a_dead_destination_is_logged_without_its_secret(
    store: SqlStateStore, clock: FakeClock,
) -> None:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(redact(str(m))), level="INFO")
    try:
        n = notifier(store, clock, urls=[f"json://127.0.0.1:9/{TOKEN}"], timeout=5)
        await n.after_run(run("failed", 1, error="boom"))
        await n.close()
    finally:
        logger.remove(sink)
    assert any("run_failed about shop" in line for line in lines)
    assert not any(TOKEN in line for line in lines)
    assert redact(f"posting to tgram://{TOKEN}/42 failed") == "posting to tgram://***/42 failed"


def test_url_secrets_cover_the_token_positions() -> None:
    parts = url_secrets(f"tgram://{TOKEN}/-1001234567")
    assert TOKEN in parts and "-1001234567" in parts
    mail = url_secrets("mailtos://owner:s3cretpass9@smtp.example.ru?to=a@b.ru")
    assert "s3cretpass9" in mail
    assert "localhost" not in url_secrets("json://localhost:8080/hook")


async def test_dry_runs_and_no_urls_tell_nothing(store: SqlStateStore, clock: FakeClock) -> None:
    n = notifier(store, clock, urls=[])
    assert not n.enabled
    await n.after_run(run("failed", 1))
    dry = run("failed", 2)
    dry.dry_run = True
    live = notifier(store, clock)
    await live.after_run(dry)
    await asyncio.sleep(0)
    assert await store.get_value("notify", "shop") is None


async def test_the_daemon_tells_a_failed_run_to_the_configured_url(tmp_path: Path) -> None:
    from stocksyncd.config import load_config
    from stocksyncd.runtime.daemon import Daemon

    from .fakes import FakeBuilder, FakeMetrics
    from .test_daemon import SHOP, RecordingNotifier, integration

    got: list[dict[str, Any]] = []
    arrived = asyncio.Event()

    async def receive(request: web.Request) -> web.Response:
        got.append(await request.json())
        arrived.set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", receive)
    async with TestServer(app, host="127.0.0.1") as server:
        path = tmp_path / "c.toml"
        path.write_text(
            f'[daemon]\nstate_url = "sqlite:///{tmp_path}/state.db"\nreplica = "r1"\n'
            f'[web]\nenabled = false\n[notify]\nurls = ["json://127.0.0.1:{server.port}/hook"]\n'
            'language = "ru"\n' + SHOP + integration("a"))
        builder = FakeBuilder()
        daemon = Daemon(load_config(path), config_path=path, builder=builder,
                        state_factory=open_store, web_factory=None,
                        metrics=FakeMetrics(), notifier=RecordingNotifier(),  # type: ignore[arg-type]
                        configure_logging=False, handle_signals=False, start_delay=3600)
        await daemon.start()
        try:
            builder.latest("a").error = RuntimeError("insales: 503 after 5 attempts")
            await daemon.trigger("a")
            await asyncio.gather(*daemon._tasks, return_exceptions=True)
            async with asyncio.timeout(30):
                await arrived.wait()
        finally:
            await daemon.stop()
    assert len(got) == 1
    assert got[0]["title"] == "a: запуск не удался"
    assert "insales: 503 after 5 attempts" in got[0]["message"]


async def test_the_executor_tells_finished_runs_but_not_ones_cut_off_at_shutdown(
    clock: FakeClock,
) -> None:
    from stocksyncd.runtime.executor import Executor

    from .fakes import GatedIntegration, MemoryStore

    told: list[str] = []

    async def after_run(result: RunResult) -> None:
        told.append(f"{result.integration}:{result.status}")

    ex = Executor(state=MemoryStore(), clock=clock, replica="r1",  # type: ignore[arg-type]
                  after_run=after_run)
    done = GatedIntegration("shop", error=RuntimeError("boom"))
    done.release.set()
    await ex.run(done, trigger="schedule", dry_run=False, deadline=60)
    cut = GatedIntegration("other")
    task = asyncio.create_task(ex.run(cut, trigger="schedule", dry_run=False, deadline=60))
    await cut.started.wait()
    task.cancel("cancelled at shutdown")
    with pytest.raises(asyncio.CancelledError):
        await task
    assert told == ["shop:failed"]
