"""/healthz while runs cannot be recorded: 503 at once, and never slower than its timeout."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from stocksyncd.runtime.web import app as web_app

from .conftest import T0, ClientFactory, FakeView, make_run


async def test_healthz_503_while_runs_cannot_be_recorded(make_client: ClientFactory,
                                                         view: FakeView) -> None:
    view.state.add_run(make_run("w1", "warehouse", at=T0 + timedelta(seconds=10)))
    view.state.add_run(make_run("f1", "fulfilment", at=T0 + timedelta(seconds=500)))
    view.state.problem = "no answer within 10s"
    client = await make_client(view)
    resp = await client.get("/healthz")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "unhealthy"
    assert body["reasons"] == [
        "runs cannot be recorded, nothing is written: no answer within 10s"]
    assert set(body["integrations"]) == {"warehouse", "fulfilment", "parts"}

    view.state.problem = None  # the store is back: judged by the runs again
    resp = await client.get("/healthz")
    assert resp.status == 200


async def test_healthz_answers_503_within_its_timeout_when_the_store_hangs(
    make_client: ClientFactory, view: FakeView, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(web_app, "HEALTH_TIMEOUT", 0.2)

    async def frozen(*_: object, **__: object) -> None:
        await asyncio.sleep(3600)

    monkeypatch.setattr(view.state, "leases", frozen)
    client = await make_client(view)
    started = time.monotonic()
    resp = await client.get("/healthz")
    assert time.monotonic() - started < 2.0
    assert resp.status == 503
    body = await resp.json()
    assert body["reasons"] == ["state store did not answer within 0.2s"]
