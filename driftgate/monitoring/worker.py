"""Big drift reports and monitor runs in a separate process, so that they never take the serving
process's GIL.

A report over a large window (say `?last=1000000`) reads every row through SQLAlchemy, decodes its
JSON and builds pandas frames: tens of seconds of pure-Python work. In a thread of the serving
process that work holds the GIL for 5 ms slices, and every request waits for slices in turn:
`benchmarks/monitoring/p99_during_drift.py` measured the predict p99 at 2-3x its quiet value while
such a report ran. A monitor run (`Monitor.compute`: the same drift report plus window metrics,
event counts and concept drift) is the same kind of work. Here both run in one long-lived child
process (its own store connection, model cache and reference cache) started on first use with the
lowest CPU priority (`nice` 19 and, on Linux, the SCHED_IDLE policy), so on a busy machine serving
wins the CPU and on an idle core the work runs at full speed. Scheduled monitor runs always go to
the child (nobody waits for them). Requested windows of up to `in_process_rows` (10,000) rows, the
default 5,000-row window included, still run in the calling thread: a process round trip would cost
the caller more than it saves. A time window's rows are counted first (one count on the (endpoint, ts)
index).

The child only computes; the caller stores a monitor run's points and report and awaits the alert
listeners, as for a run computed in-process, so every run is stored exactly once whichever process
computed it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from driftgate import errors
from driftgate.child import ChildProcess
from driftgate.core.points import MetricPoint
from driftgate.core.refs import VersionRef
from driftgate.monitoring.live import DEFAULT_WINDOW, LiveDrift
from driftgate.monitoring.monitor import Monitor
from driftgate.monitoring.scoring import ScoringVersion, VersionLoader
from driftgate.store import Store

# Above this a window goes to the child. A 100,000-row monitor run in a serving thread took seconds of
# GIL time, which the serving benchmark saw as a p99 of tens of ms once a minute (the periodic run
# over the last interval's traffic); the round trip to the child costs ~ms.
IN_PROCESS_ROWS = 10_000


class DriftWorker:
    """`report(...)` with `LiveDrift.report`'s signature, `monitor(...)` with `Monitor.compute`'s; windows
    of more than `in_process_rows` rows go to the child process."""

    def __init__(
        self,
        live: LiveDrift,
        *,
        data_dir: Path,
        db: str | None,
        loader: str,
        trust_pickle: bool = False,
        in_process_rows: int | None = None,
    ) -> None:
        """`loader`: `module:Class` of a `VersionLoader` taking `(store, trust_pickle=...)`, built in
        the child (serving's `driftgate.serving.runtime:ModelCache`)."""
        self.live = live
        self._child = ChildProcess(_start, (str(data_dir), db, loader, trust_pickle), priority="idle")
        self.in_process_rows = IN_PROCESS_ROWS if in_process_rows is None else in_process_rows

    def window_rows(self, endpoint: str, last: int | None, since: float | None, until: float | None) -> int:
        """How many rows a window reads at most: `last`, or the rows logged between `since` and `until`
        (every role and version: an upper bound the (endpoint, ts) index answers alone), counted no
        further than just past `in_process_rows`, which is all `offloads` needs."""
        if since is None:
            return last if last is not None else DEFAULT_WINDOW
        logged = self.live.store.predictions.count_range(
            endpoint, since=since, until=until, role=None, limit=self.in_process_rows + 1
        )
        return logged if last is None else min(logged, last)

    def offloads(self, rows: int) -> bool:
        return rows > self.in_process_rows

    def report(
        self,
        endpoint: str,
        version: ScoringVersion,
        *,
        last: int | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> dict[str, Any]:
        if not self.offloads(self.window_rows(endpoint, last, since, until)):
            return self.live.report(endpoint, version, last=last, since=since, until=until)
        window = {"last": last, "since": since, "until": until}
        body: dict[str, Any] = self._call(_report, endpoint, version.ref.model, version.ref.version, window)
        self.live.latest[endpoint] = body
        return body

    def monitor(
        self, endpoint: str, version: ScoringVersion, *, concept_history: int, **params: Any
    ) -> tuple[dict[str, Any], list[MetricPoint]]:
        """`Monitor.compute(endpoint, version, **params)` in the child, whatever the window's size (the
        caller decides); a `DriftgateError` raised there is raised here with its type and details."""
        return self._call(_monitor, endpoint, version.ref.model, version.ref.version, concept_history, params)

    def retention(self, prediction_days: float | None, monitoring_days: float | None) -> dict[str, int]:
        """`Store.apply_retention` in the child: deleting a busy log's old rows (every one's labels and
        events too) is long database work, best done at idle priority."""
        return self._call(_retention, prediction_days, monitoring_days)

    def _call(self, job: Callable[..., Job], *args: Any) -> Any:
        answer = self._child.call(job, *args)  # one fresh try if the child died (the OOM killer, say)
        if answer.error is not None:
            raise _rebuilt(answer.error)
        return answer.value

    def close(self) -> None:
        # A report may be half-way through a million rows: the child is ended, not waited for.
        self._child.close()


class Job(NamedTuple):
    """A child's answer: the value, or a `DriftgateError` taken apart (its keyword details do not
    survive pickling as an exception)."""

    value: Any = None
    error: dict[str, Any] | None = None


def _rebuilt(error: dict[str, Any]) -> errors.DriftgateError:
    cls = getattr(errors, error["type"], None)
    if not (isinstance(cls, type) and issubclass(cls, errors.DriftgateError)):
        cls = errors.DriftgateError
    exc = cls(error["message"], **error["details"])
    exc.status_code = error["status_code"]  # the same answer even for a class errors.py does not hold
    return exc


# ---- the child process ----------------------------------------------------------------------------


class _Child(NamedTuple):
    store: Store
    live: LiveDrift
    models: VersionLoader


_child: _Child | None = None


def _start(data_dir: str, db: str | None, loader: str, trust_pickle: bool) -> None:
    global _child
    store = Store.open(Path(data_dir), db)
    module, _, name = loader.partition(":")
    models = getattr(importlib.import_module(module), name)(store, trust_pickle=trust_pickle)
    _child = _Child(store, LiveDrift(store), models)


def _run(work: Callable[[_Child], Any]) -> Job:
    assert _child is not None  # _start ran: the pool's initializer
    try:
        return Job(value=work(_child))
    except errors.DriftgateError as exc:
        details = {"type": type(exc).__name__, "message": exc.message, "details": exc.details}
        return Job(error={**details, "status_code": exc.status_code})


def _report(endpoint: str, model: str, version: int, window: dict[str, Any]) -> Job:
    return _run(lambda c: c.live.report(endpoint, c.models.get(VersionRef(model, version)), **window))


def _monitor(endpoint: str, model: str, version: int, concept_history: int, params: dict[str, Any]) -> Job:
    def work(c: _Child) -> tuple[dict[str, Any], list[MetricPoint]]:
        # A Monitor per run is cheap (no state but its listeners, which stay in the serving process).
        monitor = Monitor(c.store, c.live, concept_history=concept_history)
        return monitor.compute(endpoint, c.models.get(VersionRef(model, version)), **params)

    return _run(work)


def _retention(prediction_days: float | None, monitoring_days: float | None) -> Job:
    return _run(lambda c: c.store.apply_retention(prediction_days=prediction_days, monitoring_days=monitoring_days))
