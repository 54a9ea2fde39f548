"""Seeded fuzzing of the stock jobs: hundreds of malformed upstream answers per API.

Each case serves one malformed answer (hostile values, broken or oversized
bodies, hostile statuses and Retry-After headers) from the simulators and
runs the real job, built from config as the daemon builds it. Whatever the
answer, the job must not crash, must not write a figure other than the one
the clean answers give, and a failed run must say which API failed and why.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from stocksyncd.clock import FakeClock
from stocksyncd.config import Config
from stocksyncd.errors import StockSyncError
from stocksyncd.http.limits import MIB
from stocksyncd.http.ratelimit import RateLimiter
from stocksyncd.http.transport import ExchangeRecord
from stocksyncd.integrations.base import RunContext, RunResult
from stocksyncd.integrations.registry import build
from stocksyncd.runtime.executor import failure_text
from stocksyncd.simulators.base import Fault
from stocksyncd.simulators.insales import InSalesSimulator
from stocksyncd.simulators.kak2c import Kak2cSimulator
from stocksyncd.simulators.moysklad import MoySkladSimulator

from .mutate import mutate_answer

CASES = 210  # per API; the issue asks for at least 200
SEED = 15
# Every failure names its API first ("moysklad: ..."), never a bare exception group.
CLEAR_ERROR = re.compile(r"^(insales|moysklad|kak2c)\b")


class DictState:
    """The state store methods a stock run uses, in a dict."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], Any] = {}

    async def get_value(self, scope: str, key: str) -> Any | None:
        return self.values.get((scope, key))

    async def set_value(self, scope: str, key: str, value: Any) -> None:
        self.values[(scope, key)] = value


class Res:
    """The runtime's resources for one run: fresh limiters, the clean bodies recorded."""

    def __init__(self, session: aiohttp.ClientSession, clock: FakeClock) -> None:
        self._session = session
        self.clock = clock
        self.observer = self
        self.state = None
        self.bodies: dict[str, bytes] = {}
        self.limiters: dict[str, RateLimiter] = {}

    def observe(self, record: ExchangeRecord) -> None:
        path = record.url.split("?", 1)[0]
        if record.status == 200 and record.body:
            self.bodies.setdefault(path, record.body)

    def session(self, upstream: str, *, limit_per_host: int = 10,
                proxy: str | None = None) -> aiohttp.ClientSession:
        return self._session

    def limiter(self, key: str, factory: Callable[[], RateLimiter]) -> RateLimiter:
        return self.limiters.setdefault(key, factory())


@dataclass
class Harness:
    shop: InSalesSimulator
    source: MoySkladSimulator | Kak2cSimulator
    config: Config
    session: aiohttp.ClientSession
    clock: FakeClock
    initial: dict[int, Any] = field(default_factory=dict)
    truth: dict[int, float] = field(default_factory=dict)
    bodies: dict[str, bytes] = field(default_factory=dict)

    def restore(self) -> None:
        self.shop.faults.clear()
        self.source.faults.clear()
        self.shop.requests.clear()
        for vid, quantity in self.initial.items():
            if self.shop.variant(vid)["quantity"] != quantity:
                self.shop.set_quantity(vid, quantity)

    async def run(self) -> tuple[RunResult | None, BaseException | None, Res]:
        res = Res(self.session, self.clock)
        job = build("job", self.config.integrations["job"], self.config, res)  # type: ignore[arg-type]
        ctx = RunContext(run_id="fuzz", dry_run=False, state=DictState(),  # type: ignore[arg-type]
                         clock=self.clock)
        try:
            return await job.run(ctx), None, res
        except Exception as exc:  # judged by the caller
            return None, exc, res

    def writes(self) -> list[tuple[int, float]]:
        found = []
        for request in self.shop.requests:
            if request.method != "PUT" or not isinstance(request.body, dict):
                continue
            for entry in request.body.get("variants") or []:
                for name, value in entry.items():
                    if name.startswith("quantity"):
                        found.append((entry["id"], float(value)))
        return found

    async def learn(self) -> None:
        """A clean run: what the answers look like, and what the shop should hold after."""
        self.initial = {v["id"]: v["quantity"] for v in self.shop.variants()}
        result, error, res = await self.run()
        assert error is None and result is not None and result.status == "ok", (error, result)
        assert self.writes(), "the clean run writes nothing: the fuzz would prove nothing"
        self.bodies = res.bodies
        self.truth = {v["id"]: float(v["quantity"]) for v in self.shop.variants()}
        self.restore()

    def judge(self, case: str, result: RunResult | None, error: BaseException | None) -> None:
        if error is not None:
            # Only the project's own errors may leave a run, and they name their API.
            assert isinstance(error, StockSyncError), f"{case}: crash {failure_text(error)}"
            assert CLEAR_ERROR.match(str(error)), f"{case}: unclear {error}"
        else:
            assert result is not None
            if result.status == "failed":
                assert result.errors, f"{case}: failed without an error"
                for text in result.errors:
                    assert CLEAR_ERROR.match(text), f"{case}: unclear error {text!r}"
                    assert "ExceptionGroup" not in text and "TaskGroup" not in text, case
        for vid, quantity in self.writes():
            assert quantity == self.truth[vid], (
                f"{case}: wrote {quantity} to variant {vid}, the clean answers say "
                f"{self.truth[vid]}")

    async def fuzz(self, targets: list[tuple[str, str, bool]], seed: int) -> dict[str, int]:
        """``CASES`` runs, each with one malformed answer on one of ``targets``
        (path, method, whether a list item more or less keeps the answer honest)."""
        outcomes: dict[str, int] = {}
        for n in range(CASES):
            rng = random.Random(seed * 100_003 + n)
            path, method, list_edits = rng.choice(targets)
            clean = self.bodies[next(p for p in self.bodies if p.endswith(path))]
            case, fault = mutate_answer(clean, rng, match=path, method=method,
                                        list_edits=list_edits, cap=MIB)
            sim = self.shop if "/admin/" in path else self.source
            sim.inject(fault)
            result, error, _ = await self.run()
            self.judge(f"case {n} on {path}: {case}", result, error)
            status = "raised" if error is not None else result.status if result else "?"
            outcomes[status] = outcomes.get(status, 0) + 1
            self.restore()
        return outcomes


def config_for(shop: InSalesSimulator, job: dict[str, Any]) -> Config:
    return Config(
        shops={"main": {"url": shop.url, "api_key": shop.api_key, "password": shop.password}},
        integrations={"job": {"shop": "main", **job}},
        # Answers over 1 MiB count as oversized, so that case stays cheap.
        http={"max_response_mib": {"insales": 1, "moysklad": 1, "kak2c": 1}},
    )


async def moysklad_harness(shop: InSalesSimulator, session: aiohttp.ClientSession,
                           clock: FakeClock, ms: MoySkladSimulator) -> Harness:
    stocks: list[float | None] = [31, 5, 0, 46.5, 12, 7, None, 3]
    for n, stock in enumerate(stocks):
        ms.add_product(f"SKU-{n}", stock=stock)
        shop.add_product([{"sku": f"SKU-{n}", "quantity": n + 1}])
    shop.add_product([{"sku": "ONLY-IN-SHOP", "quantity": 9}])
    harness = Harness(shop, ms, config_for(shop, {
        "type": "moysklad-insales", "token": ms.token, "base_url": ms.base_url}),
        session, clock)
    await harness.learn()
    return harness


@pytest.mark.parametrize(("targets", "seed"), [
    pytest.param([
        ("/entity/product", "GET", True),
        # A row left out of the report is a product that never moved (0): not malformed.
        ("/report/stock/all/current", "GET", False),
    ], SEED, id="moysklad"),
    pytest.param([
        ("/admin/products.json", "GET", True),
        ("/admin/products/variants_group_update.json", "PUT", True),
    ], SEED + 1, id="insales"),
])
async def test_moysklad_insales_answers_fuzzed(
    shop: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock,
    targets: list[tuple[str, str, bool]], seed: int,
) -> None:
    async with MoySkladSimulator(token="ms-fuzz-token-0123", clock=clock) as ms:
        harness = await moysklad_harness(shop, session, clock, ms)  # type: ignore[arg-type]
        outcomes = await harness.fuzz(targets, seed)
    assert sum(outcomes.values()) == CASES and outcomes.get("failed", 0) > 0, outcomes


async def test_kak2c_answers_fuzzed(
    shop: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with Kak2cSimulator(clock=clock) as k2:
        stocks: list[Any] = [31, 5, 0, 46.5, 12, 7, 3]
        for n, stock in enumerate(stocks):
            k2.add_item(f"46000000000{n}", stock)
            shop.add_product([{"barcode": f"46000000000{n}", "quantity": n + 1}])
        harness = Harness(shop, k2, config_for(shop, {
            "type": "kak2c-insales", "login": k2.login, "password": k2.password,
            "base_url": k2.base_url}), session, clock)
        await harness.learn()
        outcomes = await harness.fuzz([
            ("/auth", "POST", True),
            # Several stock entries of a variant are summed: one more or less is
            # another honest figure, so lists are only ever broken, not edited.
            ("/products", "GET", False),
        ], SEED + 2)
    assert sum(outcomes.values()) == CASES and outcomes.get("failed", 0) > 0, outcomes


def test_fault_descriptions_are_deterministic() -> None:
    a = mutate_answer(b'[{"assortmentId": "x", "quantity": 1}]', random.Random(1), match="/r")
    b = mutate_answer(b'[{"assortmentId": "x", "quantity": 1}]', random.Random(1), match="/r")
    assert a[0] == b[0] and isinstance(a[1], Fault)
