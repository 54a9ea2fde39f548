"""``stocksyncd sync`` as a user runs it: a real process against the simulators."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from stocksyncd.simulators.insales import InSalesSimulator
from stocksyncd.simulators.kak2c import Kak2cSimulator

GROUP_UPDATE = "variants_group_update"


class World:
    """An InSales shop and a Kak2c account that share barcodes."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.shop = InSalesSimulator()
        self.kak2c = Kak2cSimulator()

    async def __aenter__(self) -> World:
        await self.shop.start()
        await self.kak2c.start()
        self.shop.add_product([{"barcode": "4600000000017", "quantity": 5},
                               {"barcode": "4600000000024", "quantity": 0}], title="Shirt")
        self.shop.add_product([{"barcode": "4600000000031", "quantity": 7}], title="Cap")
        # The same barcode on two variants: never written, reported.
        self.shop.add_product([{"barcode": "4600000000048", "quantity": 1},
                               {"barcode": "4600000000048", "quantity": 1}], title="Twin")
        for barcode, stock in [("4600000000017", 3), ("4600000000024", 4),
                               ("4600000000031", 7), ("4600000000048", 9)]:
            self.kak2c.add_item(barcode, stock)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.kak2c.stop()
        await self.shop.stop()

    def config(self, **extra: Any) -> Path:
        lines = [f"{k} = {orjson.dumps(v).decode()}" for k, v in extra.items()]
        path = self.tmp_path / "config.toml"
        path.write_text(f"""
[daemon]
state_url = "sqlite:///{self.tmp_path}/state.db"
log_format = "text"

[web]
enabled = false

[shops.main]
url = "{self.shop.url}"
api_key = "{self.shop.api_key}"
password = "{self.shop.password}"

[integrations.fulfilment]
type = "kak2c-insales"
shop = "main"
login = "{self.kak2c.login}"
password = "{self.kak2c.password}"
base_url = "{self.kak2c.base_url}"
""" + "\n".join(lines) + "\n")
        return path

    def quantity(self, barcode: str) -> list[Any]:
        return [v["quantity"] for v in self.shop.variants() if v["barcode"] == barcode]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with World(tmp_path) as w:
        yield w


async def stocksyncd(*args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKSYNCD_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "stocksyncd", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_dry_run_json_reports_the_plan_and_writes_nothing(world: World) -> None:
    path = world.config()
    code, out, err = await stocksyncd("--config", str(path), "sync", "fulfilment",
                                      "--dry-run", "--json")
    assert code == 0, err
    report = orjson.loads(out)  # exactly one JSON object on stdout
    assert report["integration"] == "fulfilment"
    assert report["status"] == "ok" and report["dry_run"] is True
    counts = report["counts"]
    assert {k: counts[k] for k in ("source", "target", "matched", "changed", "written")} == {
        "source": 4, "target": 5, "matched": 3, "changed": 2, "written": 0}
    assert counts["skipped"] >= 1
    assert report["conflicts"] == ["4600000000048"]
    assert report["errors"] == []
    # The keys behind the counts, with what is known of each.
    listed = {s["key"]: s for s in report["details"]["skips"]}
    assert listed["4600000000048"]["reason"] in ("duplicate_target", "ambiguous_source")
    assert sum(counts["skipped_by_reason"].values()) == counts["skipped"]
    assert sum(counts["unmatched_by_reason"].values()) == counts["unmatched"]
    assert "not_in_target" not in counts["skipped_by_reason"]
    assert isinstance(report["duration_s"], float)
    planned = {(c["key"], c["old"], c["new"], c["applied"]) for c in report["changes"]}
    assert planned == {("4600000000017", "5", "3", False), ("4600000000024", "0", "4", False)}
    assert world.shop.count("PUT", GROUP_UPDATE) == 0
    assert world.quantity("4600000000017") == [5]


async def test_real_run_writes_the_changes_then_nothing(world: World) -> None:
    path = world.config()
    code, out, err = await stocksyncd("--config", str(path), "sync", "fulfilment", "--json")
    assert code == 0, err
    report = orjson.loads(out)
    assert report["counts"]["written"] == 2 and report["dry_run"] is False
    assert world.quantity("4600000000017") == [3]
    assert world.quantity("4600000000024") == [4]
    assert world.quantity("4600000000048") == [1, 1]  # the duplicate stays untouched
    assert world.shop.count("PUT", GROUP_UPDATE) == 1

    code, out, _ = await stocksyncd("--config", str(path), "sync", "fulfilment", "--json")
    assert code == 0
    again = orjson.loads(out)
    assert again["counts"]["changed"] == 0 and again["counts"]["written"] == 0
    assert world.shop.count("PUT", GROUP_UPDATE) == 1

    # Without --json: a human summary, still exit 0.
    code, out, _ = await stocksyncd("--config", str(path), "sync", "fulfilment")
    assert code == 0 and "fulfilment" in out and "ok" in out


async def test_an_aborted_run_exits_1_and_writes_nothing(world: World) -> None:
    for barcode in ("4600000000017", "4600000000031"):
        world.kak2c.set_stock(str(world.kak2c.by_barcode(barcode)["id"]), 0)
    world.shop.set_quantity(world.shop.variants()[1]["id"], 6)  # all matched were non-zero
    path = world.config(zero_guard=0.5)
    code, out, _ = await stocksyncd("--config", str(path), "sync", "fulfilment", "--json")
    report = orjson.loads(out)
    assert report["status"] == "aborted", report
    assert code == 1
    assert world.shop.count("PUT", GROUP_UPDATE) == 0


async def test_secrets_never_reach_the_output(world: World) -> None:
    path = world.config()
    world.kak2c.password = "a-different-password"  # the login is refused: the run fails
    code, out, err = await stocksyncd("--config", str(path), "sync", "fulfilment", "--json")
    assert code == 1
    report = orjson.loads(out)
    assert report["status"] == "failed" and report["errors"]
    text = out + err
    for secret in (world.shop.password, "a-different-password"):
        assert secret not in text
    config_password = path.read_text().split('password = "')[2].split('"')[0]
    assert config_password not in text
