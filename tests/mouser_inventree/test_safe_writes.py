"""Prices are never lost: currency check, create before delete, undo, audit, fence, batches."""

from __future__ import annotations

import random
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from stocksyncd.errors import WriteFenced
from stocksyncd.integrations.base import Change, ChangeStatus, MemoryWriteAhead, RunContext
from stocksyncd.simulators.base import Fault
from stocksyncd.simulators.inventree import DEFAULT_CURRENCIES
from stocksyncd.simulators.mouser import make_part

from .test_integration import Env

CHF = [(1, Decimal("0.089")), (10, Decimal("0.017"))]


def breaks(env: Env, sp: int = 1) -> list[tuple[Decimal, Decimal, str]]:
    return sorted((r["quantity"], r["price"], r["price_currency"])
                  for r in env.inv.price_breaks.values() if r["part"] == sp)


async def audited_run(env: Env, **cfg: Any) -> tuple[Any, MemoryWriteAhead]:
    assert env.store is not None
    audit = MemoryWriteAhead()
    ctx = RunContext(run_id="audited", dry_run=False, state=env.store, clock=env.clock,
                     audit=audit)
    return await env.job(**cfg).run(ctx), audit


OLD = [(Decimal(1), Decimal("0.60"), "USD"), (Decimal(10), Decimal("0.45"), "USD")]


def old_prices(env: Env) -> None:
    env.inv.add_price_break(1, 1, Decimal("0.60"))
    env.inv.add_price_break(1, 10, Decimal("0.45"))


async def test_a_currency_the_server_refuses_leaves_the_prices_alone(env: Env) -> None:
    old_prices(env)
    env.mouser.part("595-NE555P")["PriceBreaks"] = [
        {"Quantity": q, "Price": f"{p} CHF", "Currency": "CHF"} for q, p in CHF]
    result, audit = await audited_run(env)
    assert result.status == "ok", result.message
    assert breaks(env) == OLD
    assert env.inv.count("POST", "/price-break/") == env.inv.count("DELETE") == 0
    (entry,) = await env.reviews("error")
    assert "CHF" in entry.message and "CURRENCY_CODES" in entry.message
    # The rest of the supplier part is still written, and audited as sent.
    assert env.inv.count("PATCH", "/api/company/part/") == 1
    assert audit.changes and {c.status for c in audit.changes} == {"sent"}
    assert "price_breaks" not in {c.field for c in audit.changes}

    env.inv.currencies = (*DEFAULT_CURRENCIES, "CHF")  # the user adds CHF
    await env.set_cursor(10)
    await env.run(env.job())
    assert breaks(env) == [(Decimal(q), p, "CHF") for q, p in CHF]
    assert await env.reviews("error") == []


async def test_unlisted_currencies_still_never_cost_a_price(env: Env) -> None:
    # The server does not list its currencies (no OPTIONS), then refuses CHF: the
    # first write is a create, so the old set stays whole.
    old_prices(env)
    env.inv.inject(Fault(status=200, body={"name": "Price Break List"}, method="OPTIONS"))
    env.mouser.part("595-NE555P")["PriceBreaks"] = [
        {"Quantity": 5, "Price": "0.50 CHF", "Currency": "CHF"},
        {"Quantity": 10, "Price": "0.40 CHF", "Currency": "CHF"}]
    result, audit = await audited_run(env)
    assert breaks(env) == OLD
    (entry,) = await env.reviews("error")
    assert "old prices are kept" in entry.message
    refused = [c for c in audit.changes if c.status == "refused"]
    assert [(c.field, c.new) for c in refused] == [("price_breaks", "5 @ 0.5 CHF")]
    assert audit.reasons[refused[0].audit_id or 0]
    assert result.status == "ok"


async def test_a_failure_midway_puts_the_old_set_back(env: Env) -> None:
    old_prices(env)  # Mouser: 1, 10, 100 in USD -> create 100, rewrite 1 and 10
    env.inv.inject(Fault(status=400, body={"price": ["bad"]}, method="PATCH",
                         match="/price-break/"))
    result, audit = await audited_run(env)
    assert breaks(env) == OLD
    (entry,) = await env.reviews("error")
    assert "old prices are kept" in entry.message
    steps = [(c.old, c.new, c.status) for c in audit.changes if c.field == "price_breaks"]
    assert steps == [
        (None, "100 @ 0.27 USD", "sent"),  # created first
        ("1 @ 0.6 USD", "1 @ 0.54 USD", "refused"),  # the rewrite that failed
        ("100 @ 0.27 USD", None, "sent"),  # undone
    ]
    assert result.changes == audit.changes  # the run reports every write it made


async def test_every_write_is_planned_before_it_is_sent(env: Env) -> None:
    old_prices(env)
    seen: list[tuple[str, int]] = []

    class Spy(MemoryWriteAhead):
        async def planned(self, changes: Sequence[Change], *, may_take: float) -> None:
            seen.append(("planned", len(env.inv.requests)))
            await super().planned(changes, may_take=may_take)

        async def settle(self, changes: Sequence[Change], status: ChangeStatus,
                         reason: str = "") -> None:
            seen.append((status, len(env.inv.requests)))
            await super().settle(changes, status, reason)

    assert env.store is not None
    spy = Spy()
    ctx = RunContext(run_id="spy", dry_run=False, state=env.store, clock=env.clock, audit=spy)
    await env.job().run(ctx)
    writes = [r for r in env.inv.requests if r.method in ("POST", "PATCH", "DELETE")]
    assert len(writes) == 4  # patch, create 100, rewrite 1 and 10
    assert [s for s, _ in seen] == ["planned", "sent"] * 4
    for (_, before), (_, after) in zip(seen[::2], seen[1::2], strict=True):
        assert after == before + 1  # exactly one request between planned and sent


async def test_a_fenced_write_stops_the_run_before_the_request(env: Env) -> None:
    class Fenced(MemoryWriteAhead):
        async def planned(self, changes: Sequence[Change], *, may_take: float) -> None:
            raise WriteFenced("the lease ends in 2 s")

    assert env.store is not None
    ctx = RunContext(run_id="fenced", dry_run=False, state=env.store, clock=env.clock,
                     audit=Fenced())
    result = await env.job(parts_per_run=10, calls_per_run=3).run(ctx)
    assert result.status == "failed" and "lease ends" in result.message
    assert env.inv.count("PATCH") == env.inv.count("POST") == env.inv.count("DELETE") == 0
    assert result.changes == []


async def test_a_proxy_refusing_every_call_fails_the_run(env: Env) -> None:
    env.mouser.inject(Fault(status=407, body="Proxy Authentication Required", times=50))
    for _ in range(4):
        result = await env.run(env.job())
        assert result.status == "failed" and "407" in result.message
    assert await env.reviews() == []
    assert await env.cursor() is None  # never moved: no part is blamed


async def test_nulls_are_an_error_never_an_unknown_sku(env: Env) -> None:
    env.mouser.garble("null_results", "595-NE555P")
    await env.run(env.job())
    assert await env.reviews("unknown_sku") == []
    (entry,) = await env.reviews("error")
    assert "Parts is null" in entry.message


async def test_a_huge_stock_figure_is_an_error_of_that_part(env: Env) -> None:
    env.mouser.part("595-NE555P")["AvailabilityInStock"] = "1e300"
    result = await env.run(env.job())
    assert result.status == "ok"
    (entry,) = await env.reviews("error")
    assert "AvailabilityInStock" in entry.message
    assert env.inv.count("PATCH") == 0


async def test_an_error_repeating_on_one_part_moves_the_cursor_on(env: Env) -> None:
    # InvenTree fails the write of this one part every time (a 503 from its worker).
    env.inv.inject(Fault(status=503, body="", method="PATCH", match="/api/company/part/1/",
                         times=50))
    job = env.job()
    for _ in range(2):
        assert (await env.run(job)).status == "failed"
        assert await env.cursor() == 10
    third = await env.run(job)
    assert third.status == "ok"
    (entry,) = await env.reviews("error")
    assert "3 times" in entry.message
    assert await env.cursor() == 20


# -- batches ----------------------------------------------------------------------------------


def many(env: Env, n: int) -> list[str]:
    """``n`` more parts, each with a Mouser supplier part (pks 101...)."""
    skus = []
    for i in range(n):
        sku = f"595-BATCH{i:03d}"
        raw = make_part(random.Random(i), i % 9, f"BATCH{i:03d}", "TI")
        raw["MouserPartNumber"] = sku
        raw["PriceBreaks"] = [{"Quantity": 1, "Price": "$1.00", "Currency": "USD"}]
        env.mouser.parts.append(raw)
        env.inv.add_part(f"BATCH{i:03d}", pk=101 + i, category=2)
        env.inv.add_supplier_part(part=101 + i, supplier=3, SKU=sku, pk=101 + i)
        skus.append(sku)
    return skus


async def test_ten_known_skus_share_one_call(env: Env) -> None:
    skus = many(env, 12)
    await env.set_cursor(101)
    env.mouser.remove(skus[3])
    result = await env.run(env.job(parts_per_run=10))
    assert env.searched() == ["|".join(skus[:10])]
    assert result.status == "ok" and result.counts.matched == 9
    (unknown,) = await env.reviews("unknown_sku")
    assert unknown.data["sku"] == skus[3]
    assert await env.cursor() == 111
    assert breaks(env, 105) == [(Decimal(1), Decimal("1.00"), "USD")]


async def test_a_truncated_batch_answer_is_no_unknown_sku(env: Env) -> None:
    skus = many(env, 3)
    await env.set_cursor(101)
    env.mouser.remove(skus[1])
    answer = {"Errors": [], "SearchResults": {"NumberOfResult": 3, "Parts": [
        env.mouser.part(skus[0]), env.mouser.part(skus[2])]}}
    env.mouser.inject(Fault(status=200, body=answer, match="/search/"))
    await env.run(env.job(parts_per_run=3))
    assert await env.reviews("unknown_sku") == []
    (entry,) = await env.reviews("error")
    assert skus[1] in entry.message


@pytest.mark.parametrize("name", ["x", "bad|sku", "ЁЁЁЁ"])
async def test_an_unsearchable_sku_is_an_error_without_a_call(env: Env, name: str) -> None:
    env.inv.supplier_parts[1]["SKU"] = name
    await env.run(env.job(parts_per_run=2))
    assert env.searched() == ["595-LM358DR"]
    (entry,) = await env.reviews("error")
    assert entry.part_pk == 10


# -- review-page actions ------------------------------------------------------------------------


async def test_ignore_part_sets_the_flag_and_the_part_is_skipped(env: Env) -> None:
    env.inv.metadata[("part", 60)] = {"supplier_sync": {"note": "keep"}, "other": 1}
    job = env.job(parts_per_run=3, calls_per_run=3)
    await env.run(job)  # 10 and 20 in one call, then 60 searched by name
    assert [e.part_pk for e in await env.reviews("hits")] == [60]
    message = await job.ignore_part(60)
    assert "ignored" in message and "1 entry removed" in message
    assert env.inv.metadata[("part", 60)] == {
        "supplier_sync": {"note": "keep", "exclude": "True"}, "other": 1}
    assert await env.reviews() == [e for e in await env.reviews() if e.part_pk != 60]
    await env.set_cursor(60)
    result = await env.run(job)
    assert result.counts.skipped_by_reason.get("excluded_part") == 1
    assert "BC547" not in env.searched()[-1]


async def test_review_actions_count_in_the_one_ledger(env: Env) -> None:
    job = env.job(parts_per_run=3, calls_per_run=3)
    await env.run(job)
    assert await job.quota_left() == 998
    (hits,) = await env.reviews("hits")
    assert hits.id is not None
    await job.create_supplier_part(hits.id, 0)  # one exact look-up to fill it in
    assert await job.quota_left() == 997


async def test_bare_note_format_writes_the_status_alone(env: Env) -> None:
    env.mouser.set_lifecycle("595-NE555P", "Obsolete")
    await env.run(env.job(note_format="bare"))
    assert env.inv.supplier_parts[1]["note"] == "Obsolete"


async def test_swiss_prices_reach_inventree_exactly(env: Env) -> None:
    env.inv.currencies = (*DEFAULT_CURRENCIES, "CHF")
    env.mouser.set_prices("595-NE555P", [(1, Decimal("1.185")), (10, Decimal("0.089"))], "CHF")
    assert env.mouser.part("595-NE555P")["PriceBreaks"][1]["Price"] == "0.089 CHF"
    # Three decimals after a point, the code after the number: never read as 1185.
    env.mouser.part("595-NE555P")["PriceBreaks"][0]["Price"] = "1.185 CHF"
    await env.run(env.job())
    assert breaks(env) == [(Decimal(1), Decimal("1.185"), "CHF"),
                           (Decimal(10), Decimal("0.089"), "CHF")]


async def test_inventree_failing_one_parts_read_moves_the_cursor_on(env: Env) -> None:
    env.inv.inject(Fault(status=500, body="", method="GET", match="/api/company/part/",
                         times=200))
    job = env.job()
    for _ in range(2):
        result = await env.run(job)
        assert result.status == "failed" and "InvenTree failed for this part" in result.message
        assert await env.cursor() == 10
    await env.run(job)  # part 10 is recorded and passed; part 20 fails next (every read does)
    (entry,) = await env.reviews("error")
    assert entry.part_pk == 10 and "3 times" in entry.message
    assert await env.cursor() == 20
