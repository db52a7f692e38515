"""The recorder's counters as Prometheus metrics, read at scrape time (a collector, no polling)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from driftgate.records.recorder import PredictionLog


class RecorderCollector:
    """Register on the app's registry: `registry.register(RecorderCollector(recorder))`.

    Dropped rows per endpoint/version/role (queue overflow) are counted by the serving metrics'
    `driftgate_log_dropped_rows`; these are the recorder-wide totals, whatever the cause.
    """

    def __init__(self, recorder: PredictionLog) -> None:
        self.recorder = recorder

    def collect(self) -> Iterator[Metric]:
        r = self.recorder
        yield CounterMetricFamily(
            "driftgate_log_written_rows", "Prediction log rows written to the store.", value=r.written_rows
        )
        yield CounterMetricFamily(
            "driftgate_log_lost_rows",
            "Prediction log rows lost: queue overflow, or store and spool both unavailable.",
            value=r.dropped_rows,
        )
        yield CounterMetricFamily(
            "driftgate_log_spooled_rows",
            "Prediction log rows parked in the local spool because the store refused them.",
            value=r.spooled_rows,
        )
        yield GaugeMetricFamily(
            "driftgate_log_spool_backlog_files",
            "Spool files waiting to be written to the store.",
            value=r.backlog_files,
        )
        yield CounterMetricFamily(
            "driftgate_log_overflow_rows",
            "Prediction log rows written by the server process because the writer process was behind.",
            value=getattr(r, "overflowed_rows", 0),
        )
        yield GaugeMetricFamily(
            "driftgate_log_store_up",
            "1 while the store takes prediction log rows, 0 while spooling.",
            value=1 if r.store_available else 0,
        )
