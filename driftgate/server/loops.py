"""The background loops a server runs: follow the store, drive rollouts, monitor, retrain on
schedule, apply retention. Each pass that fails is logged (once, then counted) and the loop goes on."""

from __future__ import annotations

import asyncio
import logging
import time

from driftgate.api.services import Services
from driftgate.core.redaction import hidden_fields
from driftgate.errors import Conflict, DriftgateError
from driftgate.logonce import RepeatedErrors
from driftgate.store.health import describe, is_unavailable

log = logging.getLogger("driftgate")
# Background loops fail on every pass while the store is down: the first failure is logged with its
# traceback, then a count (driftgate/logonce.py), not a traceback per pass.
_loop_errors = RepeatedErrors(log)


def _loop_failed(key: object, message: str, exc: BaseException, *args: object) -> None:
    """A background pass failed: an unreachable store is one line (its outage is logged by
    `StoreHealth`); anything else is logged with its traceback the first time."""
    if is_unavailable(exc):
        _loop_errors.error(key, f"{message}: the store is unavailable (%s)", *args, describe(exc))
    else:
        _loop_errors.error(key, message, *args, exc_info=exc)


async def follow_store(svc: Services) -> None:
    """Apply endpoint changes made by other replicas or the CLI."""
    while True:
        await asyncio.sleep(svc.settings.sync_interval)
        try:
            await svc.dataplane.sync()
        except Exception as exc:  # a store hiccup must not end the loop; serving goes on with what is loaded
            if is_unavailable(exc):
                svc.store.health.failed(exc)
            _loop_failed("sync", "endpoint sync failed", exc)
        else:
            svc.store.health.ok()  # this poll is the store's heartbeat for readiness
            _loop_errors.resolved("sync", "endpoint sync works again")


async def drive_rollouts(svc: Services) -> None:
    """Analyse running rollouts and move them on (advance, promote, roll back, pause)."""
    while True:
        await asyncio.sleep(svc.settings.rollout_interval)
        try:
            # Flushed first, so the analysis sees this replica's latest requests.
            moved = await asyncio.to_thread(svc.rollouts.controller.tick, svc.recorder.flush)
            for row in moved:
                await svc.dataplane.refresh(row["endpoint"])
        except Exception as exc:  # a store hiccup must not end the loop
            _loop_failed("rollouts", "rollout analysis failed", exc)
        else:
            _loop_errors.resolved("rollouts", "rollout analysis works again")


async def monitor_periodically(svc: Services) -> None:
    """Every `monitor_interval` seconds, run the monitor over the last interval of each endpoint that
    had traffic. Runs compute in a thread; replicas sharing a store skip runs another one just did."""
    interval = svc.settings.monitor_interval
    while True:
        await asyncio.sleep(interval)
        try:
            # Rows this replica still holds would otherwise fall outside every window.
            await asyncio.to_thread(svc.recorder.flush)
        except Exception as exc:
            _loop_failed("monitor-flush", "log flush before the monitor run failed", exc)
        for name in svc.dataplane.endpoint_names():
            try:
                state = svc.dataplane.state(name)
                await svc.monitor.run_if_due(
                    name,
                    state.stable,
                    interval=interval,
                    redacted=hidden_fields(state.config.redact),
                    guard=state.guard,
                )
                _loop_errors.resolved(("monitor", name))
            except Exception as exc:  # one endpoint's failure must neither end the loop nor skip the others
                _loop_failed(("monitor", name), "monitor run failed on endpoint %s", exc, name)


async def retrain_on_schedule(svc: Services) -> None:
    """Start a run on every endpoint whose `retraining.every_seconds` has passed since its last run
    began. Replicas sharing a store may race: the second one finds the run open and lets it be."""
    refused: dict[str, str] = {}  # endpoint -> the last refusal, logged once rather than at every look
    while True:
        await asyncio.sleep(svc.settings.retrain_check_interval)
        for name in svc.dataplane.endpoint_names():
            try:
                plan = svc.dataplane.state(name).config.retraining
                every = plan.every_seconds if plan is not None else None
                if every is None:
                    continue
                last = await asyncio.to_thread(svc.store.retraining.last_created, name)
                if last is None or time.time() - last >= every:
                    await svc.retraining.start(name, {}, trigger="schedule", actor="schedule")
                refused.pop(name, None)
            except Conflict:
                pass  # a run is open (perhaps another replica's): the next look tries again
            except DriftgateError as exc:  # e.g. a replica started without the config's --train-module
                if refused.get(name) != exc.message:
                    log.warning("scheduled retraining of %s refused: %s", name, exc.message)
                refused[name] = exc.message
            except Exception as exc:  # one endpoint's failure must neither end the loop nor skip the others
                _loop_failed(("retrain", name), "scheduled retraining failed on endpoint %s", exc, name)


async def apply_retention_periodically(svc: Services) -> None:
    """Every `retention_interval`, delete what is older than the configured retention, in the idle-priority
    child when there is one. Replicas sharing a store may all do it: deleting what is gone is a no-op."""
    s = svc.settings
    await asyncio.sleep(min(60.0, s.retention_interval))
    while True:
        try:
            if svc.drift_worker is not None:
                deleted = await asyncio.to_thread(
                    svc.drift_worker.retention, s.retention_days, s.monitoring_retention_days
                )
            else:
                deleted = await asyncio.to_thread(
                    svc.store.apply_retention,
                    prediction_days=s.retention_days,
                    monitoring_days=s.monitoring_retention_days,
                )
            if any(deleted.values()):
                log.info("retention deleted %s", ", ".join(f"{n} {kind}" for kind, n in deleted.items()))
            _loop_errors.resolved("retention")
        except Exception as exc:  # a failed pass (a locked store, say) must not end the loop
            _loop_failed("retention", "retention pass failed", exc)
        await asyncio.sleep(s.retention_interval)
