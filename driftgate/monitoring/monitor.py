"""The monitor: one run turns a window of logged traffic into a report and metric points.

Not pure (it reads and writes the store); the statistics come from `drift`, `window_metrics`,
`concept` and `performance`. A run computes off the event loop (a drift run over a million rows
takes seconds): in a worker thread for small windows, in the `DriftWorker`'s child process for big
ones, so that the work does not hold the serving process's GIL. Either way this process then stores
the points and the report, and awaits every listener (the alert engine is one) with the points on
the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from driftgate.core.points import MetricPoint
from driftgate.errors import BadRequest, DriftgateError
from driftgate.monitoring.concept import ConceptDrift, detect_concept_drift, error_stream
from driftgate.monitoring.guards import OutputLimits
from driftgate.monitoring.live import DEFAULT_WINDOW, LiveDrift
from driftgate.monitoring.measures import (
    EVENT_METRIC,
    concept_measures,
    concept_section,
    drift_measures,
    finite,
    summary,
)
from driftgate.monitoring.scoring import ScoringVersion
from driftgate.monitoring.window_metrics import (
    ANSWERED,
    Measure,
    Window,
    event_metrics,
    guard_metrics,
    input_metrics,
    output_metrics,
    software_metrics,
)
from driftgate.store import Store
from driftgate.store.events import RowKey

if TYPE_CHECKING:  # the worker's child builds a Monitor: the import goes that way at run time
    from driftgate.monitoring.worker import DriftWorker

log = logging.getLogger("driftgate.monitor")

Listener = Callable[[str, list[MetricPoint]], Awaitable[Any]]
Baseline = Literal["reference", "window"]
MAX_ROWS = 1_000_000
CONCEPT_HISTORY = 5000  # labelled rows before the window that the error-stream detectors see
RUN_METRIC = "monitor_run"  # one point per scheduled run; replicas read it to skip a run just done


def check_window(
    last: int | None, since: float | None, until: float | None
) -> tuple[int | None, float | None, float | None]:
    """Validate a window request; neither `last` nor `since` means the last `DEFAULT_WINDOW` rows."""
    if last is not None and not 1 <= last <= MAX_ROWS:
        raise BadRequest(f"last must be between 1 and {MAX_ROWS}, got {last}", field="last")
    if since is not None and until is not None and since > until:
        raise BadRequest(f"since ({since}) is after until ({until})", field="since")
    if last is None and since is None:
        last = DEFAULT_WINDOW
    return last, since, until


class Monitor:
    """Runs the monitor for endpoint versions. `listeners` are awaited with every run's points; with a
    `worker`, windows too big to compute in the serving process are computed in its child process."""

    def __init__(
        self,
        store: Store,
        drift: LiveDrift,
        *,
        concept_history: int = CONCEPT_HISTORY,
        worker: DriftWorker | None = None,
    ) -> None:
        self.store = store
        self.drift = drift
        self.concept_history = concept_history
        self.worker = worker
        self.listeners: list[Listener] = []
        self.replica = f"{socket.gethostname()}:{os.getpid()}"

    async def run(
        self,
        endpoint: str,
        version: ScoringVersion,
        *,
        last: int | None = None,
        since: float | None = None,
        until: float | None = None,
        baseline: Baseline = "reference",
        baseline_since: float | None = None,
        baseline_until: float | None = None,
        redacted: Collection[str] = (),
        guard: OutputLimits | None = None,
        trigger: str = "manual",
    ) -> dict[str, Any]:
        """Compute (in a thread or the worker's child process), store the points and the report, await
        the listeners; returns the report with `metrics` ({name: value}) and `breakdown` (per class,
        per feature, per event). `guard`: the endpoint's output guard, for `output_guard_violation_rate`."""
        params = {
            "last": last,
            "since": since,
            "until": until,
            "baseline": baseline,
            "baseline_since": baseline_since,
            "baseline_until": baseline_until,
            "redacted": tuple(redacted),
            "guard": guard,
            "trigger": trigger,
        }
        report, points = await asyncio.to_thread(self._compute_where_it_fits, endpoint, version, params)
        await asyncio.to_thread(self._save, endpoint, version.ref.version, report, points)
        await self.notify(endpoint, points)
        return report

    async def notify(self, endpoint: str, points: list[MetricPoint]) -> None:
        for listener in list(self.listeners):
            try:
                await listener(endpoint, points)
            except Exception:  # one broken listener must not stop the others or the monitor
                log.exception("monitor listener %r failed on endpoint %s", listener, endpoint)

    def _compute_where_it_fits(
        self, endpoint: str, version: ScoringVersion, params: dict[str, Any]
    ) -> tuple[dict[str, Any], list[MetricPoint]]:
        """`compute` in this thread, or in the worker's child: always for a scheduled run, which nobody
        waits for (in a serving thread even a 6,000-row run raised the serving benchmark's half-load
        p99 from 6 to 17-30 ms for the seconds it took), else when the window (and a baseline
        window) holds more rows than the worker keeps in-process."""
        worker = self.worker
        if worker is None:
            return self.compute(endpoint, version, **params)
        if params["trigger"] != "periodic":
            rows = worker.window_rows(endpoint, params["last"], params["since"], params["until"])
            if params["baseline"] == "window" and params["baseline_since"] is not None:
                rows += worker.window_rows(endpoint, MAX_ROWS, params["baseline_since"], params["baseline_until"])
            if not worker.offloads(rows):
                return self.compute(endpoint, version, **params)
        report, points = worker.monitor(endpoint, version, concept_history=self.concept_history, **params)
        report["run"]["replica"] = self.replica  # the serving replica, not its helper process
        return report, points

    def _save(self, endpoint: str, version: int, report: dict[str, Any], points: list[MetricPoint]) -> None:
        self.store.monitoring.add_points(points)
        self.store.monitoring.add_report(endpoint, version, report["run"]["ts"], report)

    # ---- scheduled runs ----------------------------------------------------------------------------

    def claim(self, endpoint: str, interval: float, now: float | None = None) -> tuple[float, float] | None:
        """The window `[now - interval, now)` to monitor if a scheduled run of `endpoint` is due, else None.

        Due when no replica ran it in the last 0.9 x interval and it had traffic since its last run.
        The claim is a `monitor_run` point written before computing, so replicas sharing the store
        skip it; two replicas reading at the same instant may both run, which is harmless.
        """
        now = time.time() if now is None else now
        previous = self.store.monitoring.last_ts(endpoint, RUN_METRIC)
        if previous is not None and now - previous < 0.9 * interval:
            return None
        since = now - interval
        if not self.store.predictions.count_range(endpoint, since=min(since, previous or since), until=now, limit=1):
            return None
        self.store.monitoring.add_points(
            [MetricPoint(endpoint, RUN_METRIC, 1.0, now, detail={"replica": self.replica, "since": since})]
        )
        return since, now

    async def run_if_due(
        self,
        endpoint: str,
        version: ScoringVersion,
        *,
        interval: float,
        redacted: Collection[str] = (),
        guard: OutputLimits | None = None,
    ) -> dict[str, Any] | None:
        window = await asyncio.to_thread(self.claim, endpoint, interval)
        if window is None:
            return None
        since, until = window
        return await self.run(
            endpoint, version, since=since, until=until, redacted=redacted, guard=guard, trigger="periodic"
        )

    # ---- the computation (blocking) ---------------------------------------------------------------

    def compute(
        self,
        endpoint: str,
        version: ScoringVersion,
        *,
        last: int | None = None,
        since: float | None = None,
        until: float | None = None,
        baseline: Baseline = "reference",
        baseline_since: float | None = None,
        baseline_until: float | None = None,
        redacted: Collection[str] = (),
        guard: OutputLimits | None = None,
        trigger: str = "manual",
    ) -> tuple[dict[str, Any], list[MetricPoint]]:
        last, since, until = check_window(last, since, until)
        baseline_rows = self._baseline_rows(endpoint, version, baseline, baseline_since, baseline_until)
        now = time.time()
        rows = self.store.predictions.window(endpoint, last=last, since=since, until=until)
        rows = [r for r in rows if r["model"] == version.ref.model and r["version"] == version.ref.version]
        span = ((until if until is not None else now) - since) if since is not None else None
        kind = str(version.output.get("kind", "regression"))
        measures = self._window_measures(endpoint, version, rows, span, kind, redacted, guard)
        report, notes = self._drift_report(endpoint, version, rows, baseline_rows)
        measures += drift_measures(report)
        start = since if since is not None else (rows[0]["ts"] if rows else now)
        concept = concept_section(report, self._concept(endpoint, version, kind, start, until, len(rows)))
        measures += concept_measures(concept)
        points = [MetricPoint(endpoint, m.name, finite(m.value), now, version.ref.version, m.detail) for m in measures]
        report.setdefault(
            "window",
            {"endpoint": endpoint, "model": version.ref.model, "version": version.ref.version, "rows": len(rows)},
        )
        report["window"].update(since=since, until=until, last=last)
        report["run"] = {"ts": now, "trigger": trigger, "baseline": baseline, "replica": self.replica}
        report.update(summary(points))
        report["concept_drift"] = concept
        if notes:
            report["notes"] = notes
        return report, points

    def _window_measures(
        self,
        endpoint: str,
        version: ScoringVersion,
        rows: list[dict[str, Any]],
        span: float | None,
        kind: str,
        redacted: Collection[str],
        guard: OutputLimits | None,
    ) -> list[Measure]:
        """The software, input, output, output-guard and event metrics of the window's rows."""
        window = Window.from_rows(rows)
        return [
            *software_metrics(window, span),
            *input_metrics(window, version.schema, skip=redacted),
            *output_metrics(window, kind, version.classes),
            *(guard_metrics(window, guard) if guard is not None else ()),
            *event_metrics(self._event_counts(endpoint, version, rows), len(rows), self._event_names(endpoint)),
        ]

    def _drift_report(
        self,
        endpoint: str,
        version: ScoringVersion,
        rows: list[dict[str, Any]],
        baseline_rows: list[dict[str, Any]] | None,
    ) -> tuple[dict[str, Any], list[str]]:
        """The drift engine's report of the window, and notes on why there is none."""
        if not rows:
            return {}, [f"no logged predictions of {version.ref} in the window"]
        try:
            return self.drift.compare(endpoint, version, rows, baseline_rows=baseline_rows), []
        except DriftgateError as exc:  # too few rows, no reference data: the other metrics still count
            return {}, [exc.message]

    def _baseline_rows(
        self, endpoint: str, version: ScoringVersion, baseline: str, since: float | None, until: float | None
    ) -> list[dict[str, Any]] | None:
        if baseline == "reference":
            return None
        if baseline != "window":
            raise BadRequest(f"baseline must be 'reference' or 'window', got {baseline!r}", field="baseline")
        if since is None:
            raise BadRequest(
                "baseline 'window' needs baseline_since (and optionally baseline_until)", field="baseline_since"
            )
        if until is not None and since > until:
            raise BadRequest(f"baseline_since ({since}) is after baseline_until ({until})", field="baseline_since")
        rows = self.store.predictions.window(endpoint, since=since, until=until, last=MAX_ROWS)
        return [r for r in rows if r["model"] == version.ref.model]

    def _event_counts(self, endpoint: str, version: ScoringVersion, rows: list[dict[str, Any]]) -> dict[str, int]:
        if not rows:
            return {}
        first, last = RowKey(rows[0]["ts"], rows[0]["id"]), RowKey(rows[-1]["ts"], rows[-1]["id"])
        return self.store.events.count_window(
            endpoint, model=version.ref.model, version=version.ref.version, first=first, last=last
        )

    def _event_names(self, endpoint: str) -> set[str]:
        """Event names the endpoint's previous run reported: carried on (at 0 when a window has none of
        them), which is cheaper than a distinct scan over every event ever stored."""
        return {str(p.detail["event"]) for p in self.store.monitoring.latest(endpoint, EVENT_METRIC) if p.detail}

    def _concept(
        self, endpoint: str, version: ScoringVersion, kind: str, start: float, until: float | None, rows: int
    ) -> ConceptDrift | None:
        """Detectors over the labelled history up to the window's end; fired if they detect a rise at a
        row predicted in the window or labelled since its start. None when nothing is labelled."""
        history = self.store.predictions.labelled_tail(
            endpoint,
            model=version.ref.model,
            version=version.ref.version,
            until=until,
            limit=min(MAX_ROWS, self.concept_history + rows),
        )
        history = [r for r in history if r["output"] is not None and r["status"] in ANSWERED]
        if not history:
            return None
        task = "regression" if kind == "regression" else "classification"
        try:
            errors = error_stream(task, [r["label"] for r in history], [r["output"] for r in history])
        except (TypeError, ValueError):  # labels that are not numbers for a regression model
            return None
        ts = np.asarray([r["ts"] for r in history], dtype=np.float64)
        label_ts = np.asarray([r["label_ts"] for r in history], dtype=np.float64)
        in_window = (ts >= start) | (label_ts >= start)
        return detect_concept_drift(errors, ts, task=task, in_window=in_window)
