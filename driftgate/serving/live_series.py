"""Series that follow what the server serves, kept in step at every scrape (`ServingMetrics.refresh`):

- `driftgate_served_version{endpoint, model, version, role}` = 1 per loaded version (role `primary`,
  `shadow` or `standby`): the `model` of any series that has `endpoint` and `version`, by a join
  (`... * on(endpoint, version) group_left(model) driftgate_served_version`);
- the serving counters at 0 for every served version and endpoint (`ServingMetrics.init_version`);
- `driftgate_alerts_fired_total` at 0 for every rule and endpoint it watches, so that `increase()`
  counts the first alert (rules are read from the store at most every `RULES_EVERY` seconds);
- the monitor's gauges (serving/monitor_metrics.py), dropped for versions no longer served.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from prometheus_client import Gauge

from driftgate.errors import EndpointNotFound
from driftgate.logonce import RepeatedErrors
from driftgate.rollout.policy import answering
from driftgate.serving.monitor_metrics import Key, MonitorGauges, remove_series

if TYPE_CHECKING:
    from driftgate.alerts.engine import AlertEngine
    from driftgate.serving.dataplane import DataPlane, EndpointState
    from driftgate.serving.metrics import ServingMetrics

RULES_EVERY = 2.0
log = logging.getLogger("driftgate.metrics")


class LiveSeries:
    def __init__(self, metrics: ServingMetrics, plane: DataPlane, alerts: AlertEngine) -> None:
        self.metrics = metrics
        self.plane = plane
        self.alerts = alerts
        self.served = Gauge(
            "driftgate_served_version",
            "1 for each version an endpoint keeps loaded, by role (primary, shadow, standby); join on "
            "(endpoint, version) for the model.",
            ("endpoint", "model", "version", "role"),
            registry=metrics.registry,
            multiprocess_mode="mostrecent",
        )
        self.gauges = MonitorGauges(metrics.registry, self.model_of, self.live)
        self._lock = threading.Lock()  # refresh runs on the loop, scrapes in a thread
        self._seen: tuple[tuple[str, int], ...] = ()
        self._served: set[tuple[str, str, str, str]] = set()
        self._rules: set[tuple[str, str, str]] = set()
        self._rules_read = -RULES_EVERY
        self._errors = RepeatedErrors(log)

    def states(self) -> list[EndpointState]:
        out = []
        for name in self.plane.endpoint_names():
            try:
                out.append(self.plane.state(name))
            except EndpointNotFound:  # removed meanwhile
                continue
        return out

    def live(self) -> set[Key]:
        return {(st.name, ref.model, str(ref.version)) for st in self.states() for ref in st.versions}

    def model_of(self, endpoint: str, version: int) -> str | None:
        """The model of `endpoint`'s served version `version`: the champion's when two models share it."""
        try:
            st = self.plane.state(endpoint)
        except EndpointNotFound:
            return None
        refs = sorted(st.versions, key=lambda r: r != st.policy.baseline)
        return next((r.model for r in refs if r.version == version), None)

    def sync(self) -> None:
        """Bring the served-version series in step with the data plane; cheap when nothing changed."""
        states = self.states()
        seen = tuple((st.name, id(st)) for st in states)
        with self._lock:
            if seen == self._seen:
                return
            self._seen = seen
            served = set()
            for st in states:
                self.metrics.init_endpoint(st.name)
                primary = set(answering(st.policy))
                shadowed = set(st.policy.shadowed)
                for ref in st.versions:
                    # A canary candidate answers and is mirrored too; a kept-warm version does neither.
                    roles = [r for r, on in (("primary", ref in primary), ("shadow", ref in shadowed)) if on]
                    for role in roles:
                        self.metrics.init_version(st.name, str(ref.version), role)
                    served |= {(st.name, ref.model, str(ref.version), role) for role in roles or ["standby"]}
            for labels in self._served - served:
                remove_series(self.served, labels)
            for labels in served - self._served:
                self.served.labels(*labels).set(1)
            self._served = served
        self.gauges.prune()

    def sync_rules(self) -> None:
        """`driftgate_alerts_fired_total` at 0 for every rule and each endpoint it watches (a rule
        without an endpoint watches every served one); a deleted rule's series go. Blocking: a store read."""
        if time.monotonic() - self._rules_read < RULES_EVERY:
            return
        self._rules_read = time.monotonic()
        try:
            rules = self.alerts.store.alerts.rules()
        except Exception as exc:  # the store is down: keep what there is, try again later
            self._errors.error("rules", "alert rules could not be read for /metrics (%s)", exc)
            return
        self._errors.resolved("rules", "alert rules are read for /metrics again")
        endpoints = self.plane.endpoint_names()
        wanted = {
            (rule["name"], endpoint, rule["severity"])
            for rule in rules
            for endpoint in ([rule["endpoint"]] if rule.get("endpoint") else endpoints)
        }
        counter = self.alerts.fired_total
        with self._lock:
            for labels in wanted - self._rules:
                counter.labels(*labels)
            for labels in self._rules - wanted:
                remove_series(counter, labels)
            self._rules = wanted
