"""A state store with a history worth looking at, for the history page tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stocksyncd.i18n.formats import set_timezone
from stocksyncd.integrations.base import Change, RunCounts, RunResult, RunStatus
from stocksyncd.runtime.metrics import Metrics
from stocksyncd.state import SqlStateStore, open_store

from ..conftest import FakeView, default_jobs, make_config
from ..test_browser import served  # noqa: F401 - the app on a socket, over ``view`` below

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
KEY = "4600000000228"

SKIPS = [
    {"key": "4600000000999", "reason": "not_in_target", "source_ref": "ms-999",
     "source_name": "Футболка красная M", "variant_id": None, "product_id": None,
     "detail": "", "admin_url": ""},
    {"key": "=HYPERLINK(\"http://evil\")", "reason": "null", "source_ref": "ms-7",
     "variant_id": None, "product_id": None, "detail": "null", "admin_url": ""},
    {"key": "DUP-1", "reason": "duplicate_target", "source_ref": "ms-3", "variant_id": 51,
     "product_id": 5, "product_title": "Болт М6", "detail": "variants 51, 52",
     "admin_url": "https://shop.example/admin2/products/5"},
    {"key": "OLD-7", "reason": "not_in_source", "source_ref": "", "variant_id": 61,
     "product_id": 6, "detail": "", "admin_url": "https://shop.example/admin2/products/6"},
]


async def add_run(store: SqlStateStore, run_id: str, integration: str, at: datetime, *,
                  status: RunStatus = "ok", changes: list[Change] | None = None,
                  skips: list[dict[str, object]] | None = None, duration: float = 0.021,
                  message: str = "") -> None:
    await store.start_run(run_id=run_id, integration=integration, trigger="schedule",
                          dry_run=False, replica="r1", started_at=at)
    counts = RunCounts(source=10, target=10, matched=8, changed=len(changes or []),
                       written=len(changes or []))
    details: dict[str, object] = {"index_mode": "incremental"}  # a stock run
    if skips is not None:
        counts.skip("null", 1)
        counts.skip("duplicate_target", 1)
        counts.unmatch("not_in_target", 1)
        counts.unmatch("not_in_source", 1)
        details["skips"] = skips
    result = RunResult(integration=integration, run_id=run_id, status=status, counts=counts,
                       changes=changes or [], details=details, message=message,
                       errors=[message] if status != "ok" and message else [],
                       duration_s=duration, started_at=at)
    await store.finish_run(result, finished_at=at + timedelta(seconds=duration))


async def seed(store: SqlStateStore) -> None:
    """120 runs of two jobs over five days; the key KEY changed in three of them."""
    for i in range(120):
        at = T0 + timedelta(hours=i)
        name = "warehouse" if i % 2 else "fulfilment"
        status: RunStatus = "failed" if i % 10 == 3 else "ok"
        changes = []
        if i in (5, 40, 101):
            changes.append(Change(ref=f"v{i}", key=KEY, field="quantity", old=str(i),
                                  new=str(i + 1)))
        changes.append(Change(ref="v9", key=f"K{i}", field="quantity", old="1", new="2"))
        await add_run(store, f"run-{i:03d}", name, at, status=status, changes=changes,
                      skips=SKIPS if i in (117, 119) else None,
                      message="insales: 503 after retries" if status == "failed" else "")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStateStore]:
    """A SQLite store holding ``seed``'s history."""
    s = await open_store(f"sqlite:///{tmp_path}/state.db")
    await seed(s)
    yield s
    await s.close()


@pytest.fixture
def history_view(store: SqlStateStore) -> Iterator[FakeView]:
    """A daemon over ``store`` showing times in Moscow."""
    config = make_config()
    config = config.model_copy(
        update={"web": config.web.model_copy(update={"timezone": "Europe/Moscow"})})
    yield FakeView(config, store, Metrics(), default_jobs())  # type: ignore[arg-type]
    set_timezone("")  # the zone is per process: leave the server's for other tests


@pytest.fixture
def view(history_view: FakeView) -> FakeView:
    """What ``served`` serves here: the daemon over the seeded history."""
    return history_view
