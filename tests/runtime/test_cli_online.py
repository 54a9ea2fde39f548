"""``stocksyncd test`` and ``check-config --online`` against the API simulators."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stocksyncd.cli import main
from stocksyncd.simulators.base import Simulator
from stocksyncd.simulators.insales import InSalesSimulator
from stocksyncd.simulators.inventree import DEFAULT_TOKEN, InvenTreeSimulator
from stocksyncd.simulators.kak2c import Kak2cSimulator
from stocksyncd.simulators.mouser import MouserSimulator
from stocksyncd.simulators.moysklad import MoySkladSimulator

MOUSER_KEY = "00000000-test-key-0000-000000000000"
READS = {"GET"}


class Apis:
    def __init__(self) -> None:
        self.shop = InSalesSimulator()
        self.moysklad = MoySkladSimulator()
        self.kak2c = Kak2cSimulator()
        self.inventree = InvenTreeSimulator.small_catalogue()
        self.mouser = MouserSimulator(api_keys={MOUSER_KEY})
        self.all: list[Simulator] = [self.shop, self.moysklad, self.kak2c, self.inventree,
                                     self.mouser]

    def config(self, tmp_path: Path, *, shop_password: str | None = None,
               mouser_key: str = MOUSER_KEY, supplier: int | None = None) -> str:
        path = tmp_path / "config.toml"
        path.write_text(f"""
[daemon]
state_url = "sqlite:///{tmp_path}/never-created.db"
[shops.main]
url = "{self.shop.url}"
api_key = "{self.shop.api_key}"
password = "{shop_password or self.shop.password}"
timeout = "5s"
[integrations.warehouse]
type = "moysklad-insales"
shop = "main"
token = "{self.moysklad.token}"
base_url = "{self.moysklad.base_url}"
timeout = "5s"
[integrations.fulfilment]
type = "kak2c-insales"
shop = "main"
login = "{self.kak2c.login}"
password = "{self.kak2c.password}"
base_url = "{self.kak2c.base_url}"
enabled = false
timeout = "5s"
[integrations.mouser-inventree]
type = "mouser-inventree"
inventree_url = "{self.inventree.url}"
inventree_token = "{DEFAULT_TOKEN}"
mouser_api_key = "{mouser_key}"
mouser_supplier = {supplier or self.inventree.mouser_supplier}
base_url = "{self.mouser.base_url}"
timeout = "5s"
""")
        return str(path)

    def writes(self) -> list[str]:
        allowed = {("kak2c", "/auth"), ("mouser", "/search/partnumber")}
        found = []
        for sim in self.all:
            api = type(sim).__name__.removesuffix("Simulator").lower()
            for r in sim.requests:
                if r.method not in READS and not any(
                        api == a and r.path.endswith(p) for a, p in allowed):
                    found.append(f"{api} {r.method} {r.path}")
        return found


@pytest.fixture
async def apis() -> AsyncIterator[Apis]:
    world = Apis()
    for sim in world.all:
        await sim.start()
    for n in range(3):
        world.moysklad.add_product(f"A-{n}", stock=n)
        world.shop.add_product([{"sku": f"A-{n}", "quantity": 1}], title=f"Item {n}")
        world.kak2c.add_item(f"460000000001{n}", n)
    yield world
    for sim in world.all:
        await sim.stop()


async def run(*argv: str) -> int:
    # main() runs its own event loop; the simulators keep answering on this one.
    return await asyncio.to_thread(main, list(argv))


async def test_every_integration_signs_in_and_reads_without_writing(
        apis: Apis, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = apis.config(tmp_path)
    assert await run("test", "--config", path) == 0
    out = capsys.readouterr().out
    assert "warehouse (moysklad-insales)\n  ok      moysklad: signed in, read 1 product\n" in out
    assert "  ok      insales: signed in to shop 'main', read 1 product\n" in out
    assert ("fulfilment (kak2c-insales, disabled)\n"
            "  ok      kak2c: signed in, read 1 product (of 3)\n") in out
    assert "mouser-inventree (mouser-inventree)\n  ok      inventree: signed in" in out
    assert "  ok      mouser: API key accepted" in out
    assert "FAILED" not in out
    assert apis.writes() == []
    assert apis.mouser.count("POST") == 1  # one of the day's calls, no more
    assert not (tmp_path / "never-created.db").exists()  # the state store is not touched


async def test_failures_are_reported_per_integration_and_api(
        apis: Apis, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = apis.config(tmp_path, shop_password="wrong-password", mouser_key="bad-key-12345")
    assert await run("check-config", "--online", "--config", path) == 1
    out = capsys.readouterr().out
    assert out.startswith("OK: 3 integrations (warehouse, fulfilment, mouser-inventree)\n")
    lines = out.splitlines()
    assert lines.count("  ok      moysklad: signed in, read 1 product") == 1
    failed = [line for line in lines if line.startswith("  FAILED")]
    assert len(failed) == 3, out
    # The cause names the request as the transport sent it (secrets removed).
    insales = [line for line in failed
               if line.startswith("  FAILED  insales: GET /admin/products.json?per_page=1: "
                                  "HTTP 401: credentials refused or not allowed (GET http://")
               and line.endswith("(check shops.main.api_key and password)")]
    assert len(insales) == 2, out
    assert any(line.startswith("  FAILED  mouser: POST search/partnumber: API key refused")
               and line.endswith("(check integrations.mouser-inventree.mouser_api_key)")
               for line in failed), out
    assert "  ok      inventree: signed in" in out
    assert "wrong-password" not in out and "bad-key-12345" not in out
    assert apis.writes() == []


async def test_one_integration_by_name(apis: Apis, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = apis.config(tmp_path, supplier=999)  # no such company
    assert await run("test", "mouser-inventree", "--config", path) == 1
    out = capsys.readouterr().out
    assert out.startswith("mouser-inventree (mouser-inventree)\n  FAILED  inventree: ")
    assert "GET /api/, GET /api/company/999/: not found" in out, out
    assert "warehouse" not in out and apis.moysklad.requests == []
    assert await run("--config", path, "test", "nope") == 2
    assert "unknown integration 'nope'" in capsys.readouterr().err
