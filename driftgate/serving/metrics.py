"""Serving metrics in Prometheus form.

Two modes, chosen when the app is built:

- **single process** (tests, `driftgate serve` with one worker): metrics live on a registry the app
  owns (tests get a fresh one each); the recorder's counters come from a collector read at scrape
  time and process metrics from prometheus_client's `ProcessCollector` (`process_*`, no labels).
- **multiprocess** (`driftgate serve --workers N`, which sets `PROMETHEUS_MULTIPROC_DIR` to a fresh
  directory before the workers start): every worker writes its samples to memory-mapped files in
  that directory and `/metrics`, whichever worker answers, merges all of them with
  `MultiProcessCollector`. Counters and histograms are summed over workers (dead ones included, so
  they never go backwards); gauges use the `multiprocess_mode` given below. Collectors that compute
  at scrape time (the recorder's, `ProcessCollector`) would only see the worker that answered, so
  in this mode their values are mirrored into file-backed metrics by `refresh()`, which each worker
  runs every second and before answering a scrape. Process metrics carry a `pid` label there:
  `process_resident_memory_bytes{pid=...}` (a gauge, live workers only) and
  `process_cpu_seconds_total{pid=...}` (a counter; a dead worker's series stays at its final
  value, so `sum(rate(...))` stays right across worker restarts). Sum over `pid` for the server.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest

# The multiprocess helpers live in metrics_process.py; importable from here as before.
from driftgate.serving.metrics_process import (
    MULTIPROC_ENV,
    _rss_bytes,
    forget_dead_workers,
    multiprocess_dir,
    refresh_every,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from driftgate.alerts.engine import AlertEngine
    from driftgate.monitoring.monitor import Monitor
    from driftgate.records.recorder import PredictionLog
    from driftgate.serving.dataplane import DataPlane
    from driftgate.serving.live_series import LiveSeries
    from driftgate.serving.pipeline import Step

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
STEP_LABELS = ("endpoint", "stage", "step", "role")
SHED_REASONS = ("log_full", "log_max_queued_rows", "max_rows_per_request")  # api/limits.py

__all__ = ["MULTIPROC_ENV", "ServingMetrics", "forget_dead_workers", "multiprocess_dir", "refresh_every"]


class ServingMetrics:
    def __init__(self, registry: CollectorRegistry | None = None, *, multiprocess_dir: str | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.multiprocess_dir = multiprocess_dir
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
        # Micro-batching (serving/batching.py): how many rows each model call merged, and how long it took.
        self.batch_rows = Histogram(
            "driftgate_model_batch_rows",
            "Rows per model call (concurrent requests merged by micro-batching).",
            labels,
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.call_latency = Histogram(
            "driftgate_model_call_seconds",
            "Time per model call, from dispatch to answers (one call serves every request merged into it).",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.call_queue = Histogram(
            "driftgate_model_queue_seconds",
            "Time the oldest request of each model call waited for the call to start: behind a running "
            "call, or for more requests to merge (coalescing under saturation).",
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
        # Requests refused before scoring so that no id goes out for a row the log would drop (api/limits.py):
        # reason `log_full` (503 + Retry-After), `log_max_queued_rows` or `max_rows_per_request` (413).
        self.shed_requests = Counter(
            "driftgate_shed_requests",
            "Prediction requests refused before scoring: the prediction log is full, or the request has too many rows.",
            ("endpoint", "reason"),
            registry=self.registry,
        )
        self.shed_rows = Counter(
            "driftgate_shed_rows",
            "Rows of the prediction requests refused before scoring (see driftgate_shed_requests).",
            ("endpoint", "reason"),
            registry=self.registry,
        )
        self.shadow_dropped = Counter(
            "driftgate_shadow_dropped_rows",
            "Shadow copies not scored because shadows fell behind.",
            ("endpoint", "version"),
            registry=self.registry,
        )
        # Requests refused unqueued by the model's own lane (serving/isolation.py): reason `stuck` (every
        # call slot held by a call past timeout_ms) or `restarting` (its worker process is restarting).
        self.model_shed = Counter(
            "driftgate_model_shed_requests",
            "Requests shed (503) without reaching the model: its calls are hung, or its worker is restarting.",
            ("endpoint", "version", "role", "reason"),
            registry=self.registry,
        )
        self.worker_failures = Counter(
            "driftgate_model_worker_failures",
            "Model worker processes lost (isolation 'process'): reason `crash` (died while scoring) or `hang` "
            "(stopped after running past timeout_ms).",
            ("endpoint", "version", "reason"),
            registry=self.registry,
        )
        # Pipeline steps (serving/pipeline.py): the model itself is `driftgate_model_latency_seconds`.
        self.step_calls = Counter(
            "driftgate_step_calls",
            "Pipeline step calls by outcome: ok, error (the step failed), invalid (it refused the input).",
            (*STEP_LABELS, "status"),
            registry=self.registry,
        )
        self.step_rows = Counter(
            "driftgate_step_rows", "Rows a pipeline step handled.", STEP_LABELS, registry=self.registry
        )
        self.step_latency = Histogram(
            "driftgate_step_latency_seconds",
            "Time per pipeline step call.",
            STEP_LABELS,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.guard_violations = Counter(
            "driftgate_output_guard_violations",
            "Primary rows whose model output violates the endpoint's output guard, per guard kind.",
            ("endpoint", "version", "guard"),
            registry=self.registry,
        )
        # Every HTTP answer by route template (bounded: the app's routes, `unmatched` for the rest) and status.
        self.http_requests = Counter(
            "driftgate_http_requests",
            "HTTP requests answered, by method, route template and status (4xx and 5xx included).",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.log_queue = Gauge(
            "driftgate_log_queue_rows",
            "Prediction log rows waiting to be written.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self._recorder: PredictionLog | None = None
        # Set by `watch` (server/wiring.py): live series from the data plane, monitor gauges.
        self.live: LiveSeries | None = None
        self._mirrored = {"written": 0, "lost": 0, "spooled": 0}
        if self.multiprocess_dir is None:
            ProcessCollector(registry=self.registry)
            return
        # File-backed stand-ins for what scrape-time collectors report in single-process mode.
        self.memory = Gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes, per worker process.",
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.cpu = Counter(
            "process_cpu_seconds",
            "User and system CPU time spent in seconds, per worker process (dead workers keep their total).",
            ("pid",),
            registry=self.registry,
        )
        self._cpu_seen = 0.0
        self.log_written = Counter(
            "driftgate_log_written_rows", "Prediction log rows written to the store.", registry=self.registry
        )
        self.log_lost = Counter(
            "driftgate_log_lost_rows",
            "Prediction log rows lost: queue overflow, or store and spool both unavailable.",
            registry=self.registry,
        )
        self.log_spooled = Counter(
            "driftgate_log_spooled_rows",
            "Prediction log rows parked in the local spool because the store refused them.",
            registry=self.registry,
        )
        self.log_backlog = Gauge(
            "driftgate_log_spool_backlog_files",
            "Spool files waiting to be written to the store.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.log_store_up = Gauge(
            "driftgate_log_store_up",
            "1 while the store takes prediction log rows, 0 while spooling (the lowest over workers).",
            registry=self.registry,
            multiprocess_mode="livemin",
        )

    @classmethod
    def from_env(cls) -> ServingMetrics:
        return cls(multiprocess_dir=multiprocess_dir())

    @property
    def multiprocess(self) -> bool:
        return self.multiprocess_dir is not None

    def attach_recorder(self, recorder: PredictionLog) -> None:
        self._recorder = recorder
        if not self.multiprocess:
            from driftgate.records.metrics import RecorderCollector

            self.registry.register(RecorderCollector(recorder))

    def watch(self, plane: DataPlane, monitor: Monitor, alerts: AlertEngine) -> None:
        """Series for what the server serves (at 0 before their first event), the monitor's gauges
        after every run, and the alert counters at 0 per rule (serving/live_series.py)."""
        from driftgate.serving.live_series import LiveSeries

        self.live = LiveSeries(self, plane, alerts)
        monitor.listeners.append(self.live.gauges.observe)

    def refresh(self) -> None:
        """Bring gauges (and, in multiprocess mode, the mirrored counters) up to date."""
        if self.live is not None:
            self.live.sync()
        r = self._recorder
        if r is not None:
            self.log_queue.set(r.queued_rows)
        if not self.multiprocess:
            return
        if r is not None:
            m = self._mirrored
            for key, value, counter in (
                ("written", r.written_rows, self.log_written),
                ("lost", r.dropped_rows, self.log_lost),
                ("spooled", r.spooled_rows, self.log_spooled),
            ):
                if value > m[key]:
                    counter.inc(value - m[key])
                    m[key] = value
            self.log_backlog.set(r.backlog_files)
            self.log_store_up.set(1 if r.store_available else 0)
        self.memory.set(_rss_bytes())
        times = os.times()
        cpu = times.user + times.system
        if cpu > self._cpu_seen:
            self.cpu.labels(str(os.getpid())).inc(cpu - self._cpu_seen)
            self._cpu_seen = cpu

    def exposition(self, openmetrics: bool = False) -> bytes:
        """The text answered at `/metrics`: this process's registry, or every worker's files merged; in
        the OpenMetrics format when asked. Runs off the event loop (it may read the alert rules)."""
        if self.live is not None:
            self.live.sync_rules()
        self.refresh()
        from prometheus_client.openmetrics import exposition as openmetrics_format

        encode: Callable[[CollectorRegistry], bytes] = (
            openmetrics_format.generate_latest if openmetrics else generate_latest
        )
        if not self.multiprocess:
            return encode(self.registry)
        from prometheus_client.multiprocess import MultiProcessCollector

        forget_dead_workers(self.multiprocess_dir)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)
        return encode(registry)

    def step_observer(self, endpoint: str, role: str) -> Callable[[Step, float, int, str], None]:
        """What a pipeline reports after each step (from a worker thread: prometheus_client is thread-safe)."""

        def observe(step: Step, seconds: float, rows: int, status: str) -> None:
            labels = (endpoint, step.stage, step.name, role)
            self.step_calls.labels(*labels, status).inc()
            if status == "ok":
                self.step_latency.labels(*labels).observe(seconds)
                self.step_rows.labels(*labels).inc(rows)

        return observe

    def call_observer(self, endpoint: str, version: str, role: str) -> Callable[[int, float, float], None]:
        """What a micro-batcher reports after each model call; the series are resolved once."""
        rows = self.batch_rows.labels(endpoint, version, role)
        seconds = self.call_latency.labels(endpoint, version, role)
        waited = self.call_queue.labels(endpoint, version, role)

        def observe(n: int, duration: float, queued: float) -> None:
            rows.observe(n)
            seconds.observe(duration)
            waited.observe(queued)

        return observe

    def init_series(
        self, endpoint: str, steps: Iterable[tuple[str, str]], guards: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Create an endpoint's step series, `(stage, step)`, and guard series, `(version, guard kind)`, at 0:
        a series that only appears with its first event breaks `rate()` and alerts on it."""
        for stage, name in steps:
            labels = (endpoint, stage, name, "primary")
            for status in ("ok", "error", "invalid"):
                self.step_calls.labels(*labels, status)
            self.step_rows.labels(*labels)
            self.step_latency.labels(*labels)
        for version, kind in guards:
            self.guard_violations.labels(endpoint, version, kind)

    def init_version(self, endpoint: str, version: str, role: str) -> None:
        """A served version's counters at 0 for every label set they will carry, so that ratios and
        `increase()` see the first error, drop or shed request."""
        labels = (endpoint, version, role)
        for status in ("ok", "error", "timeout", *(("shed",) if role == "primary" else ())):
            self.requests.labels(*labels, status)
        self.rows.labels(*labels)
        self.latency.labels(*labels)
        self.log_dropped.labels(*labels)
        if role == "shadow":
            self.shadow_dropped.labels(endpoint, version)
            return
        for reason in ("stuck", "restarting"):
            self.model_shed.labels(*labels, reason)
        for reason in ("crash", "hang"):
            self.worker_failures.labels(endpoint, version, reason)

    def init_endpoint(self, endpoint: str) -> None:
        """An endpoint's own counters at 0 (review, requests refused before scoring)."""
        self.review_rows.labels(endpoint)
        for reason in SHED_REASONS:
            self.shed_requests.labels(endpoint, reason)
            self.shed_rows.labels(endpoint, reason)

    def step_totals(self, endpoint: str, role: str = "primary") -> dict[str, dict[str, float]]:
        """Per step of `endpoint` since the server started (every worker's, in multiprocess mode):
        `calls`, `errors`, `invalid`, `rows`, `seconds` (total time)."""
        wanted = {
            "driftgate_step_calls_total",
            "driftgate_step_rows_total",
            "driftgate_step_latency_seconds_sum",
        }
        totals: dict[str, dict[str, float]] = {}
        for family in self._step_families():
            for sample in family.samples:
                labels = sample.labels
                if sample.name not in wanted or labels.get("endpoint") != endpoint or labels.get("role") != role:
                    continue
                entry = totals.setdefault(
                    labels["step"], {"calls": 0.0, "errors": 0.0, "invalid": 0.0, "rows": 0.0, "seconds": 0.0}
                )
                if sample.name == "driftgate_step_calls_total":
                    entry["calls"] += sample.value
                    if labels.get("status") in ("error", "invalid"):
                        entry["errors" if labels["status"] == "error" else "invalid"] += sample.value
                elif sample.name == "driftgate_step_rows_total":
                    entry["rows"] += sample.value
                else:
                    entry["seconds"] += sample.value
        return totals

    def _step_families(self) -> list[Any]:
        if not self.multiprocess:
            return [*self.step_calls.collect(), *self.step_rows.collect(), *self.step_latency.collect()]
        from prometheus_client.multiprocess import MultiProcessCollector

        # Every worker's files merged, as a scrape sees them; only endpoints with steps ask.
        return list(MultiProcessCollector(None, path=self.multiprocess_dir).collect())

    def close(self) -> None:
        """A worker leaving: its live gauges (queue size, memory, ...) stop counting."""
        if self.multiprocess:
            from prometheus_client.multiprocess import mark_process_dead

            mark_process_dead(os.getpid(), self.multiprocess_dir)
