"""Metrics: names, labels, and the RequestObserver hook."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from stocksyncd.http.transport import ExchangeRecord
from stocksyncd.integrations.base import RunCounts, RunResult
from stocksyncd.runtime.metrics import Metrics


def sample(m: Metrics, name: str, **labels: str) -> float | None:
    value = m.registry.get_sample_value(name, labels)
    return None if value is None else float(value)


def test_record_run_counts_runs_written_skips_and_conflicts() -> None:
    m = Metrics()
    counts = RunCounts(written=7)
    counts.skip("null_quantity", 2)
    started = datetime(2026, 1, 1, tzinfo=UTC)
    m.run_started("warehouse")
    assert sample(m, "stocksyncd_run_in_progress", integration="warehouse") == 1
    m.record_run(RunResult("warehouse", status="ok", counts=counts, conflicts=["A", "B"],
                           started_at=started, duration_s=12.5))
    m.record_run(RunResult("warehouse", status="failed", duration_s=1.0, started_at=started))

    assert sample(m, "stocksyncd_runs_total", integration="warehouse", status="ok") == 1
    assert sample(m, "stocksyncd_runs_total", integration="warehouse", status="failed") == 1
    assert sample(m, "stocksyncd_variants_written_total", integration="warehouse") == 7
    assert sample(m, "stocksyncd_items_skipped_total", integration="warehouse",
                  reason="null_quantity") == 2
    assert sample(m, "stocksyncd_conflicts_last_run", integration="warehouse") == 0
    assert sample(m, "stocksyncd_run_duration_seconds_count", integration="warehouse") == 2
    assert sample(m, "stocksyncd_last_success_timestamp_seconds",
                  integration="warehouse") == started.timestamp() + 12.5
    assert sample(m, "stocksyncd_last_run_timestamp_seconds",
                  integration="warehouse") == started.timestamp() + 1.0
    assert sample(m, "stocksyncd_run_in_progress", integration="warehouse") == 0


def test_unconfirmed_writes_have_a_counter_of_their_own() -> None:
    m = Metrics()
    m.record_run(RunResult("shop", status="ok", counts=RunCounts(written=3)))
    assert sample(m, "stocksyncd_writes_unconfirmed_total", integration="shop") == 0
    counts = RunCounts()
    counts.skip("unconfirmed", 2)
    m.record_run(RunResult("shop", status="ok", counts=counts))
    assert sample(m, "stocksyncd_writes_unconfirmed_total", integration="shop") == 2


def test_observe_counts_http_by_api_and_status() -> None:
    m = Metrics()
    m.observe(ExchangeRecord("insales", "GET", "https://x/", 200, 0.2))
    m.observe(ExchangeRecord("insales", "GET", "https://x/", 429, 0.1))
    m.observe(ExchangeRecord("insales", "GET", "https://x/", None, 3.0, error="timeout"))
    assert sample(m, "stocksyncd_http_requests_total", api="insales", status="200") == 1
    assert sample(m, "stocksyncd_http_requests_total", api="insales", status="429") == 1
    assert sample(m, "stocksyncd_http_requests_total", api="insales", status="error") == 1
    assert sample(m, "stocksyncd_http_request_duration_seconds_count", api="insales") == 3


def test_gauges_and_render() -> None:
    m = Metrics()
    m.set_quota_left("parts", 990)
    m.set_up("parts", True)
    m.set_up("old", False)
    body, content_type = m.render()
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert 'stocksyncd_mouser_quota_left{integration="parts"} 990.0' in text
    assert 'stocksyncd_integration_up{integration="parts"} 1.0' in text
    assert 'stocksyncd_integration_up{integration="old"} 0.0' in text
    assert "stocksyncd_build_info{" in text
    m.forget("old")
    assert 'integration="old"' not in m.render()[0].decode()


def test_each_instance_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.set_up("x", True)
    assert b.registry.get_sample_value("stocksyncd_integration_up", {"integration": "x"}) is None
    shared = CollectorRegistry()
    assert Metrics(shared).registry is shared


def test_unmatched_keys_are_a_gauge_of_the_last_run_and_go_with_the_integration() -> None:
    from stocksyncd.integrations.base import RunResult
    from stocksyncd.runtime.metrics import Metrics

    metrics = Metrics()
    result = RunResult(integration="shop")
    result.counts.unmatch("not_in_target", 1197)
    metrics.record_run(result)
    result.counts.unmatched_by_reason["not_in_target"] = 3
    metrics.record_run(result)
    text = metrics.render()[0].decode()
    assert ('stocksyncd_keys_unmatched_last_run{integration="shop",reason="not_in_target"} 3.0'
            in text)
    assert 'stocksyncd_items_skipped_total{integration="shop",reason="not_in_target"}' not in text
    metrics.forget("shop")
    assert 'integration="shop",reason="not_in_target"' not in metrics.render()[0].decode()
