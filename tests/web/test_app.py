"""Health, metrics, the status page, run details and manual runs over HTTP."""

from __future__ import annotations

from datetime import timedelta

from stocksyncd.integrations.base import RunCounts, RunResult
from stocksyncd.runtime.metrics import Metrics
from stocksyncd.state.api import ChangeRecord, Lease, ReplicaInfo

from .conftest import T0, ClientFactory, FakeView, csrf_from, make_config, make_run


async def test_healthz_ok_lists_integrations_and_leases(make_client: ClientFactory,
                                                        view: FakeView) -> None:
    view.state.add_run(make_run("w1", "warehouse", at=T0 + timedelta(seconds=10)))
    view.state.add_run(make_run("f1", "fulfilment", at=T0 + timedelta(seconds=500)))
    view.state.lease_list.append(Lease("fulfilment", "r1", T0 + timedelta(hours=1), T0))
    client = await make_client(view)
    resp = await client.get("/healthz")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok"
    assert body["replica"] == "r1"
    assert body["integrations"]["warehouse"]["status"] == "ok"
    assert body["integrations"]["warehouse"]["last_success"] == "2026-01-01T00:00:15+00:00"
    assert body["integrations"]["parts"]["status"] == "disabled"
    assert body["integrations"]["fulfilment"]["lease_holder"] == "r1"
    assert body["leases"][0]["holder"] == "r1"


async def test_healthz_503_after_repeated_failures(make_client: ClientFactory,
                                                   view: FakeView) -> None:
    view.state.add_run(make_run("w0", "warehouse", at=T0 + timedelta(seconds=5)))
    for i in range(3):
        view.state.add_run(make_run(f"f{i}", "fulfilment", "failed",
                                    at=T0 + timedelta(seconds=300 + i * 60)))
    client = await make_client(view)
    resp = await client.get("/healthz")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "unhealthy"
    assert body["integrations"]["fulfilment"]["status"] == "failing"
    assert any("fulfilment" in r and "failed" in r for r in body["reasons"])


async def test_healthz_503_when_overdue(make_client: ClientFactory, view: FakeView) -> None:
    # Ten minutes up, the every-minute job never succeeded: past interval + 5 min.
    view.state.add_run(make_run("w0", "warehouse", at=T0 + timedelta(seconds=5)))
    client = await make_client(view)
    resp = await client.get("/healthz")
    assert resp.status == 503
    body = await resp.json()
    assert body["integrations"]["fulfilment"]["status"] == "overdue"
    assert body["integrations"]["warehouse"]["status"] == "ok"


async def test_healthz_needs_no_token(make_client: ClientFactory, view: FakeView) -> None:
    view.config = make_config(token="s3cret")
    view.state.add_run(make_run("f1", "fulfilment", at=T0 + timedelta(seconds=500)))
    client = await make_client(view)
    resp = await client.get("/healthz")
    assert resp.status in (200, 503)
    assert "status" in await resp.json()


async def test_metrics_endpoint(make_client: ClientFactory, view: FakeView) -> None:
    view.metrics = Metrics()
    view.metrics.record_run(RunResult("warehouse", counts=RunCounts(written=3), duration_s=2))
    client = await make_client(view)
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    for name in ("stocksyncd_runs_total", "stocksyncd_run_duration_seconds_bucket",
                 "stocksyncd_variants_written_total", "stocksyncd_build_info"):
        assert name in text
    assert 'stocksyncd_variants_written_total{integration="warehouse"} 3.0' in text


async def test_status_page_lists_integrations_runs_changes_conflicts(
        make_client: ClientFactory, view: FakeView) -> None:
    change = ChangeRecord("v77", "SKU-1", "quantity", "5", "9", True)
    view.state.add_run(make_run(
        "run-abc", "warehouse", at=T0 + timedelta(seconds=100), changes=[change],
        counts={"source": 10, "target": 12, "matched": 9, "changed": 1, "written": 1,
                "skipped": 1, "skipped_by_reason": {"null_quantity": 1}},
        conflicts=["DUP-BARCODE"], errors=["moysklad: page 3 timed out"],
    ))
    view.state.replica_list = [ReplicaInfo("r1", T0, T0, "0.1.0"),
                               ReplicaInfo("r2", T0, T0, "0.1.0")]
    client = await make_client(view)
    resp = await client.get("/")
    assert resp.status == 200
    text = await resp.text()
    for expected in ("warehouse", "fulfilment", "parts", "moysklad-insales", "every 1 h",
                     "dry-run", "disabled", "running", "run-abc", "DUP-BARCODE",
                     "moysklad: page 3 timed out", "SKU-1", "null_quantity", "Replicas", "r2"):
        assert expected in text, expected
    assert '<span class="old">5</span><span class="arrow">→</span><strong>9</strong>' in text


async def test_run_detail_paginates(make_client: ClientFactory, view: FakeView) -> None:
    changes = [ChangeRecord(f"v{i}", f"SKU-{i}", "quantity", "0", str(i), True)
               for i in range(1200)]
    view.state.add_run(make_run("big", "warehouse", changes=changes))
    client = await make_client(view)
    first = await (await client.get("/runs/big")).text()
    assert "SKU-0<" in first and "SKU-499<" in first and "SKU-500<" not in first
    assert "page 1 of 3" in first
    third = await (await client.get("/runs/big?page=3")).text()
    assert "SKU-1199<" in third and "SKU-999<" not in third
    assert (await client.get("/runs/nope")).status == 404


async def test_trigger_runs_and_flashes(make_client: ClientFactory, view: FakeView) -> None:
    client = await make_client(view)
    token = await csrf_from(client)
    resp = await client.post("/integrations/warehouse/run", data={"csrf_token": token},
                             allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/"
    assert view.triggered == ["warehouse"]
    page = await (await client.get("/")).text()
    assert "warehouse: run run-warehouse-manual started" in page
    # The message is shown once.
    assert "run-warehouse-manual" not in await (await client.get("/")).text()

    resp = await client.post("/integrations/parts/run", data={"csrf_token": token})
    assert "parts: no such enabled integration" in await resp.text()
    assert view.triggered == ["warehouse"]


async def test_static_css_and_security_headers(make_client: ClientFactory,
                                               view: FakeView) -> None:
    client = await make_client(view)
    resp = await client.get("/static/style.css")
    assert resp.status == 200
    assert "text/css" in resp.headers["Content-Type"]
    page = await client.get("/")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
