"""Monitoring in Prometheus: every monitor run's metric points as gauges per endpoint, model and version.

Set after each run (the monitor's `listeners`), so Prometheus holds what the last run found:

- drift (SPEC 12: names contain `drift`): `driftgate_data_drift_share`, `driftgate_data_drifted`,
  per feature `driftgate_feature_drift_statistic` / `_p_value` / `_threshold` and `driftgate_feature_drifted`,
  `driftgate_prediction_drift` (flag) with its `_statistic` and `_p_value`, `driftgate_multivariate_drift`,
  `driftgate_concept_drift`, `driftgate_performance_drift`;
- performance: realised `driftgate_realised_accuracy`, ... and the label-free estimates under their
  SPEC 12 names, `driftgate_estimated_accuracy`, `driftgate_estimated_roc_auc`, ... with `_lower` and
  `_upper` (the band) and `_reference` (the estimate on the reference data: a drop is `reference - value`);
- every other value of the run: `driftgate_monitor_metric{metric=...}` (error_rate, latency_p99_ms,
  missing_rate, mean_confidence, ...), per feature `driftgate_monitor_feature_metric{metric, feature}`
  (missing, out-of-range and unseen-category rates), `driftgate_monitor_class_share{class}`,
  `driftgate_monitor_event_rate{event}`;
- `driftgate_monitor_last_run_timestamp_seconds`.

A series that the latest run of its version no longer has (a feature dropped, no labels in the window)
goes; so do all series of a version that is no longer served (`prune`): labels cannot grow without bound.
With several workers the gauges are file-backed (`mostrecent`: the newest run wins, whichever worker
ran it); prometheus_client cannot delete a file-backed sample, so there a removed series stays until
the server restarts.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.metrics import MetricWrapperBase

from driftgate.core.points import MetricPoint
from driftgate.monitoring.measures import EVENT_METRIC, REALISED
from driftgate.monitoring.performance import ESTIMATED_METRICS

KEY = ("endpoint", "model", "version")
# (endpoint, model, version as text): one served version.
Key = tuple[str, str, str]
Sample = tuple[Gauge, tuple[str, ...], float]
ModelOf = Callable[[str, int], str | None]
"""The model an endpoint's served version `v` belongs to, None when the endpoint does not serve a `v`."""


class MonitorGauges:
    def __init__(self, registry: CollectorRegistry, model_of: ModelOf, live: Callable[[], Iterable[Key]]) -> None:
        self.model_of = model_of
        self.live = live
        self._lock = threading.Lock()  # runs set on the loop, scrapes prune from a thread
        self._held: dict[Key, set[tuple[Gauge, tuple[str, ...]]]] = {}

        def gauge(name: str, doc: str, *extra: str) -> Gauge:
            return Gauge(name, doc, (*KEY, *extra), registry=registry, multiprocess_mode="mostrecent")

        self.drift_share = gauge("driftgate_data_drift_share", "Share of features drifted (last monitor run).")
        self.data_drifted = gauge("driftgate_data_drifted", "1 when the dataset-level drift verdict is drifted.")
        self.feature_statistic = gauge(
            "driftgate_feature_drift_statistic", "Drift statistic (distance or test statistic) per feature.", "feature"
        )
        self.feature_p_value = gauge("driftgate_feature_drift_p_value", "Drift test p-value per feature.", "feature")
        self.feature_threshold = gauge(
            "driftgate_feature_drift_threshold", "Effect-size threshold of the feature's drift test.", "feature"
        )
        self.feature_drifted = gauge("driftgate_feature_drifted", "1 when the feature drifted.", "feature")
        self.prediction_drift = gauge("driftgate_prediction_drift", "1 when the predictions drifted.")
        self.prediction_statistic = gauge("driftgate_prediction_drift_statistic", "Drift statistic of the predictions.")
        self.prediction_p_value = gauge("driftgate_prediction_drift_p_value", "Drift test p-value of the predictions.")
        self.flags = {
            name: gauge(f"driftgate_{name}", doc)
            for name, doc in (
                ("multivariate_drift", "1 when the multivariate drift test fired."),
                ("concept_drift", "1 when concept drift was detected (error-stream detectors or performance)."),
                ("performance_drift", "1 when realised performance dropped against the reference."),
            )
        }
        self.realised = {
            name: gauge(f"driftgate_realised_{name}", f"Realised {name} on the window's labelled rows.")
            for name in REALISED
        }
        self.estimated = {
            name: (
                gauge(f"driftgate_{name}", f"Label-free {name.removeprefix('estimated_')} estimate."),
                gauge(f"driftgate_{name}_lower", f"Lower end of the {name} band."),
                gauge(f"driftgate_{name}_upper", f"Upper end of the {name} band."),
                gauge(f"driftgate_{name}_reference", f"The {name} of the version's reference data."),
            )
            for name in ESTIMATED_METRICS
        }
        self.value = gauge("driftgate_monitor_metric", "A value of the last monitor run, by metric name.", "metric")
        self.feature_value = gauge(
            "driftgate_monitor_feature_metric",
            "A per-feature input metric of the last monitor run.",
            "metric",
            "feature",
        )
        self.class_share = gauge("driftgate_monitor_class_share", "Share of predictions per class.", "class")
        self.event_rate = gauge("driftgate_monitor_event_rate", "Outcome events per prediction, per event.", "event")
        self.last_run = gauge("driftgate_monitor_last_run_timestamp_seconds", "Time of the last monitor run.")

    async def observe(self, endpoint: str, points: list[MetricPoint]) -> None:
        """The monitor's listener: one run's points (all of one version) replace that version's series."""
        self.record(endpoint, points)

    def record(self, endpoint: str, points: Sequence[MetricPoint]) -> None:
        by_version: dict[int, list[MetricPoint]] = {}
        for p in points:
            if p.version is not None:
                by_version.setdefault(p.version, []).append(p)
        for version, group in by_version.items():
            model = self.model_of(endpoint, version)
            if model is None:  # not served (any more): nothing to show
                continue
            key = (endpoint, model, str(version))
            self._replace(key, self._samples(key, group))
        self.prune()

    def prune(self) -> None:
        """Drop the series of every version no longer served."""
        live = set(self.live())
        with self._lock:
            for key in [k for k in self._held if k not in live]:
                for g, labels in self._held.pop(key):
                    remove_series(g, labels)

    def held(self) -> set[Key]:
        with self._lock:
            return set(self._held)

    def _replace(self, key: Key, samples: list[Sample]) -> None:
        now = {(g, labels) for g, labels, _ in samples}
        with self._lock:
            for g, labels in self._held.get(key, set()) - now:
                remove_series(g, labels)
            for g, labels, value in samples:
                g.labels(*labels).set(value)
            self._held[key] = now

    def _samples(self, key: Key, points: list[MetricPoint]) -> list[Sample]:
        out: list[Sample] = []

        def put(g: Gauge, value: Any, *extra: str) -> None:
            number = _number(value)
            if number is not None:
                out.append((g, (*key, *extra), number))

        for p in points:
            detail = p.detail or {}
            if p.metric == "feature_drift":
                feature = str(detail.get("feature"))
                put(self.feature_drifted, p.value, feature)
                put(self.feature_statistic, detail.get("statistic"), feature)
                put(self.feature_p_value, detail.get("p_value"), feature)
                put(self.feature_threshold, detail.get("threshold"), feature)
                continue
            if p.metric == "class_share":
                put(self.class_share, p.value, str(detail.get("class")))
                continue
            if p.metric == EVENT_METRIC:
                put(self.event_rate, p.value, str(detail.get("event")))
                continue
            put(self.value, p.value, p.metric)
            for feature, value in (detail.get("by_feature") or {}).items():
                put(self.feature_value, value, p.metric, str(feature))
            self._named(put, p)
        put(self.last_run, max(p.ts for p in points))
        return out

    def _named(self, put: Callable[..., None], p: MetricPoint) -> None:
        """The contract's own series for a point (SPEC 12)."""
        detail = p.detail or {}
        if p.metric == "data_drift_share":
            put(self.drift_share, p.value)
            put(self.data_drifted, detail.get("drifted"))
        elif p.metric == "prediction_drift":
            put(self.prediction_drift, p.value)
            put(self.prediction_statistic, detail.get("statistic"))
            put(self.prediction_p_value, detail.get("p_value"))
        elif p.metric in self.flags:
            put(self.flags[p.metric], p.value)
        elif p.metric in self.realised:
            put(self.realised[p.metric], p.value)
        elif p.metric in self.estimated:
            value, lower, upper, reference = self.estimated[p.metric]
            put(value, p.value)
            put(lower, detail.get("lower"))
            put(upper, detail.get("upper"))
            put(reference, detail.get("reference"))


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def remove_series(metric: MetricWrapperBase, labels: tuple[str, ...]) -> None:
    with contextlib.suppress(KeyError):  # already gone
        metric.remove(*labels)
