"""Serving metrics in Prometheus form, on a registry the app owns (tests get a fresh one each)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ServingMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        labels = ("endpoint", "version", "role")
        self.requests = Counter(
            "driftgate_requests", "Prediction requests by outcome.", (*labels, "status"), registry=self.registry
        )
        self.rows = Counter("driftgate_rows", "Rows scored.", labels, registry=self.registry)
        self.latency = Histogram(
            "driftgate_model_latency_seconds",
            "Model time per request.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.review_rows = Counter(
            "driftgate_review_rows", "Rows deferred to human review.", ("endpoint",), registry=self.registry
        )
        self.log_dropped = Counter(
            "driftgate_log_dropped_rows",
            "Prediction log rows dropped because the queue was full.",
            ("endpoint", "version", "role"),
            registry=self.registry,
        )
        self.shadow_dropped = Counter(
            "driftgate_shadow_dropped_rows",
            "Shadow copies not scored because shadows fell behind.",
            ("endpoint", "version"),
            registry=self.registry,
        )
        self.log_queue = Gauge(
            "driftgate_log_queue_rows", "Prediction log rows waiting to be written.", registry=self.registry
        )
