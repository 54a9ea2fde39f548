"""The safety buffer: units or a share off every published figure, never below 0."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from stocksyncd.clock import FakeClock
from stocksyncd.config import Config, effective_every
from stocksyncd.integrations.base import RunContext
from stocksyncd.integrations.registry import build
from stocksyncd.integrations.stock.plan import SourceStock
from stocksyncd.integrations.stock.safety_buffer import apply_buffer, buffered
from stocksyncd.simulators.insales import InSalesSimulator
from stocksyncd.simulators.kak2c import Kak2cSimulator
from stocksyncd.state import open_store
from tests.sources.test_build import Res


@pytest.mark.parametrize(("value", "units", "share", "published"), [
    (10, 2, 0.0, 8), (2, 2, 0.0, 0), (1, 5, 0.0, 0), (0, 3, 0.0, 0),
    (10, 0, 0.25, 7),  # 7.5 rounds down
    (3, 0, 0.1, 2),  # 2.7 rounds down: a share always takes at least a part of a unit
    (100, 2, 0.1, 90), (10, 4, 0.1, 6),  # both: the larger cut
    (10, 0, 0.0, 10),
])
def test_buffered(value: int, units: int, share: float, published: int) -> None:
    assert buffered(value, units, share) == published


def test_apply_buffer_records_the_figures_before_and_after() -> None:
    stock = SourceStock(values={"A": 10, "B": 1, "C": 0})
    report = apply_buffer(stock, 2, 0.0)
    assert report is not None
    assert stock.values == {"A": 8, "B": 0, "C": 0}
    assert report.before == {"A": 10, "B": 1}
    details = report.details([("A", 8), ("C", 0)])
    assert details == {"units": 2, "share": 0.0, "lowered": 2,
                       "figures_before_after": {"A": [10, 8], "C": [0, 0]}}
    assert apply_buffer(SourceStock(values={"A": 1}), 0, 0.0) is None


def test_config_keys_and_the_every_minute_default(tmp_path: Path) -> None:
    cfg = Config(
        shops={"main": {"url": "https://shop.example", "api_key": "k", "password": "p"}},
        integrations={"ms": {"type": "moysklad-insales", "shop": "main", "token": "t",
                             "safety_buffer": 1, "safety_buffer_share": 0.05},
                      "k2": {"type": "kak2c-insales", "shop": "main", "login": "l",
                             "password": "p"}},
    )
    ms = cfg.integrations["ms"]
    assert effective_every(ms, "moysklad-insales") == 60.0
    assert (ms.safety_buffer, ms.safety_buffer_share) == (1, 0.05)  # type: ignore[union-attr]
    assert ms.source_full_refresh == 3600.0  # type: ignore[union-attr]
    assert cfg.integrations["k2"].safety_buffer == 0  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="safety_buffer_share"):
        Config(shops={"main": {"url": "https://s.example", "api_key": "k", "password": "p"}},
               integrations={"ms": {"type": "moysklad-insales", "shop": "main", "token": "t",
                                    "safety_buffer_share": 1.0}})


async def test_kak2c_job_publishes_with_the_share_buffer(
        session: aiohttp.ClientSession, clock: FakeClock, tmp_path: Path) -> None:
    shop = InSalesSimulator(clock=clock)
    k2 = Kak2cSimulator(login="fulfil@example.com", password="kak2c-pass", clock=clock)
    state = await open_store(f"sqlite:///{tmp_path}/state.db", clock=clock)
    await shop.start()
    await k2.start()
    try:
        shop.add_product([{"barcode": "4600000000011", "quantity": 0},
                          {"barcode": "4600000000012", "quantity": 0}])
        k2.add_product([k2.make_variant("4600000000011", 10),
                        k2.make_variant("4600000000012", 1)])
        cfg = Config(
            shops={"main": {"url": shop.url, "api_key": shop.api_key,
                            "password": shop.password}},
            integrations={"job": {"type": "kak2c-insales", "shop": "main",
                                  "login": k2.login, "password": k2.password,
                                  "base_url": k2.base_url, "safety_buffer_share": 0.25}},
        )
        job = build("job", cfg.integrations["job"], cfg, Res(session, clock))
        result = await job.run(RunContext(run_id="r", dry_run=False, state=state, clock=clock))
        await job.close()
    finally:
        await k2.stop()
        await shop.stop()
        await state.close()
    assert result.status == "ok", result.errors
    assert sorted(v["quantity"] for v in shop.variants()) == [0, 7]
    assert result.details["safety_buffer"]["figures_before_after"] == {
        "4600000000011": [10, 7]}
    assert result.details["safety_buffer"]["lowered"] == 2
