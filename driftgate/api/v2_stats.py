"""Triton's statistics extension (`GET /v2/models/{m}[/versions/{v}]/stats`) from serving metrics.

Every figure is read from the Prometheus series the data plane already keeps (role `primary`: the
calls that answered callers), summed over workers with `--workers N`, since the server started:

- `inference_count`: rows scored (`driftgate_rows_total`); `execution_count`: model calls
  (micro-batching merges requests into one call: `driftgate_model_batch_rows_count`);
- `success`: requests answered and their model time (`driftgate_requests_total{status="ok"}`,
  `driftgate_model_latency_seconds_sum`); `fail`: requests that failed, timed out or were shed
  (their time is not measured: `ns` 0);
- `queue` and `compute_infer`: per model call, the wait before it started and its duration;
- `compute_input`, `compute_output` (decoding and encoding are not timed per model), `cache_hit`,
  `cache_miss` (no response cache) and `last_inference` (not kept) are 0.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from driftgate.serving.metrics import ServingMetrics

NS = 1e9
_WANTED = {
    "driftgate_requests_total",
    "driftgate_rows_total",
    "driftgate_model_latency_seconds_sum",
    "driftgate_model_call_seconds_sum",
    "driftgate_model_call_seconds_count",
    "driftgate_model_queue_seconds_sum",
}


def _families(metrics: ServingMetrics) -> list[Any]:
    if not metrics.multiprocess:
        series = (metrics.requests, metrics.rows, metrics.latency, metrics.call_latency, metrics.call_queue)
        return [family for metric in series for family in metric.collect()]
    from prometheus_client.multiprocess import MultiProcessCollector

    return list(MultiProcessCollector(None, path=metrics.multiprocess_dir).collect())


def totals(metrics: ServingMetrics, endpoint: str) -> dict[str, dict[str, float]]:
    """{version: {series or series/status: value}} for the endpoint's primary calls. Reads files with
    `--workers N`: call it off the event loop."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for family in _families(metrics):
        for sample in family.samples:
            labels = sample.labels
            if sample.name not in _WANTED or labels.get("endpoint") != endpoint or labels.get("role") != "primary":
                continue
            key = sample.name if sample.name != "driftgate_requests_total" else f"requests/{labels.get('status')}"
            out[labels["version"]][key] += sample.value
    return out


def _duration(count: float, seconds: float) -> dict[str, int]:
    return {"count": int(count), "ns": round(seconds * NS)}


def model_stats(endpoint: str, version: str, t: dict[str, float]) -> dict[str, Any]:
    """One entry of `model_stats` in Triton's shape."""
    calls = t.get("driftgate_model_call_seconds_count", 0.0)
    failed = sum(v for k, v in t.items() if k.startswith("requests/") and k != "requests/ok")
    zero = _duration(0, 0)
    return {
        "name": endpoint,
        "version": version,
        "last_inference": 0,
        "inference_count": int(t.get("driftgate_rows_total", 0.0)),
        "execution_count": int(calls),
        "inference_stats": {
            "success": _duration(t.get("requests/ok", 0.0), t.get("driftgate_model_latency_seconds_sum", 0.0)),
            "fail": _duration(failed, 0.0),
            "queue": _duration(calls, t.get("driftgate_model_queue_seconds_sum", 0.0)),
            "compute_input": zero,
            "compute_infer": _duration(calls, t.get("driftgate_model_call_seconds_sum", 0.0)),
            "compute_output": zero,
            "cache_hit": zero,
            "cache_miss": zero,
        },
        "batch_stats": [],
    }
