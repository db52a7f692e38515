"""The app factory: one `create_app(settings)` builds routes, services and their lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any

from fastapi import FastAPI

from driftgate import __version__
from driftgate.alerts.engine import AlertEngine
from driftgate.api import errors, store_errors
from driftgate.api.auth import TokenCache
from driftgate.api.launch import start_rollout
from driftgate.api.limits import BodyLimit
from driftgate.api.routes import (
    alerts,
    endpoints,
    events,
    mlflow_server,
    models,
    monitoring,
    predict,
    retraining,
    review,
    rollouts,
    system,
    v2,
)
from driftgate.api.services import Services
from driftgate.child import die_with_spawning_parent, stop_gracefully
from driftgate.errors import Conflict, DriftgateError
from driftgate.logonce import RepeatedErrors
from driftgate.monitoring.live import LiveDrift
from driftgate.monitoring.monitor import Monitor
from driftgate.monitoring.worker import DriftWorker
from driftgate.records.log_process import ProcessRecorder
from driftgate.records.recorder import LogBatch, PredictionLog, Recorder
from driftgate.retraining.service import Retrainer
from driftgate.rollout.controller import RolloutController
from driftgate.serving.dataplane import DataPlane
from driftgate.serving.metrics import ServingMetrics, refresh_every
from driftgate.serving.runtime import ModelCache
from driftgate.serving.shadow_process import ShadowProcess
from driftgate.settings import Settings
from driftgate.store import Store
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


def build_services(settings: Settings) -> Services:
    store = Store.open(settings.data_dir, settings.db)
    metrics = ServingMetrics.from_env()

    def dropped(batch: LogBatch) -> None:
        metrics.log_dropped.labels(batch.endpoint, str(batch.version), batch.role).inc(len(batch))

    # Rows the store refuses are parked in the spool in any mode; with --durable-log every row is.
    spool = Path(settings.data_dir) / "spool"
    recorder: PredictionLog = Recorder(
        store.predictions.write_rows,
        flush_interval=settings.log_flush_interval,
        batch_rows=settings.log_batch_rows,
        max_rows=settings.log_max_queued_rows,
        on_drop=dropped,
        spool=spool,
        durable=settings.durable_log,
    )
    if settings.log_process and not settings.durable_log:
        # The child writes; the in-process recorder takes over while the child is behind.
        recorder = ProcessRecorder(
            recorder,
            data_dir=settings.data_dir,
            db=settings.db,
            spool=spool,
            flush_interval=settings.log_ship_interval,
            batch_rows=settings.log_batch_rows,
        )
    # Rows left in the spool by a crash (or a store outage) go to the store before serving starts.
    recorder.flush()
    metrics.attach_recorder(recorder)
    executor = ThreadPoolExecutor(max_workers=settings.model_threads, thread_name_prefix="driftgate-model")
    cache = ModelCache(store, trust_pickle=settings.trust_pickle)
    shadows = (
        ShadowProcess(data_dir=settings.data_dir, db=settings.db, trust_pickle=settings.trust_pickle)
        if settings.shadow_process
        else None
    )
    plane = DataPlane(store, cache, recorder, metrics, executor, shadows, pipeline_modules=settings.pipeline_modules)
    drift = LiveDrift(store)
    worker = DriftWorker(drift, data_dir=settings.data_dir, db=settings.db, trust_pickle=settings.trust_pickle)
    rollouts_controller = RolloutController(store, plane)

    async def rollback(endpoint: str, reason: str) -> dict[str, Any]:
        """The alert action: end the endpoint's running rollout on the champion."""
        try:
            row = await asyncio.to_thread(rollouts_controller.rollback, endpoint, "alert", reason)
        except DriftgateError as exc:  # no rollout running, or no such endpoint
            return {"ok": False, "detail": exc.message}
        await plane.refresh(endpoint)
        return {"ok": True, "detail": f"rollout {row['id']} rolled back to v{row['baseline']['version']}"}

    async def launch(endpoint: str, body: dict[str, Any], actor: str) -> dict[str, Any]:
        return await start_rollout(rollouts_controller, plane, endpoint, body, actor)

    retrainer = Retrainer(
        store,
        data_dir=settings.data_dir,
        db=settings.db,
        allowed_modules=tuple(settings.train_modules),
        start_rollout=launch,
        concurrency=settings.retrain_concurrency,
    )

    async def retrain(endpoint: str, reason: str) -> dict[str, Any]:
        """The alert action: a retraining run on the endpoint's `retraining` config."""
        try:
            run = await retrainer.start(endpoint, {"reason": f"alert: {reason}"}, trigger="alert", actor="alert")
        except DriftgateError as exc:  # no retraining config, or a run already open
            return {"ok": False, "detail": exc.message}
        return {"ok": True, "detail": f"retraining run {run['id']} started"}

    alerts_engine = AlertEngine(
        store,
        allow=settings.webhook_allow,
        actions={"rollback": rollback, "retrain": retrain},
        registry=metrics.registry,
    )
    # Big windows are computed in the worker's child process, off the serving process's GIL.
    monitor = Monitor(store, drift, worker=worker)
    # Every monitor run's metric points are judged by the alert rules.
    monitor.listeners.append(alerts_engine.evaluate)
    return Services(
        settings,
        store,
        plane,
        recorder,
        metrics,
        TokenCache(store),
        executor,
        drift,
        rollouts_controller,
        monitor,
        alerts_engine,
        retrainer,
        drift_worker=worker,
    )


async def close_services(svc: Services) -> None:
    """Stop what `build_services` started, writing everything queued first: the server's shutdown, and
    short-lived commands that score through the same services (`driftgate batch score`)."""
    await svc.alerts.aclose()
    await svc.retraining.aclose()
    svc.dataplane.close()
    svc.recorder.close()
    if svc.drift_worker is not None:
        svc.drift_worker.close()
    svc.metrics.refresh()
    svc.metrics.close()
    svc.executor.shutdown(wait=False, cancel_futures=True)
    svc.store.close()


async def _follow_store(svc: Services) -> None:
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


async def _drive_rollouts(svc: Services) -> None:
    """Analyse running rollouts and move them on (advance, promote, roll back, pause)."""
    while True:
        await asyncio.sleep(svc.settings.rollout_interval)
        try:
            # Flushed first, so the analysis sees this replica's latest requests.
            moved = await asyncio.to_thread(svc.rollouts.tick, svc.recorder.flush)
            for row in moved:
                await svc.dataplane.refresh(row["endpoint"])
        except Exception as exc:  # a store hiccup must not end the loop
            _loop_failed("rollouts", "rollout analysis failed", exc)
        else:
            _loop_errors.resolved("rollouts", "rollout analysis works again")


async def _monitor_periodically(svc: Services) -> None:
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
                    name, state.stable, interval=interval, redacted=tuple(state.config.redact or ()), guard=state.guard
                )
                _loop_errors.resolved(("monitor", name))
            except Exception as exc:  # one endpoint's failure must neither end the loop nor skip the others
                _loop_failed(("monitor", name), "monitor run failed on endpoint %s", exc, name)


async def _retrain_on_schedule(svc: Services) -> None:
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


async def _apply_retention_periodically(svc: Services) -> None:
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


@contextlib.contextmanager
def _unready_on_sigterm(svc: Services) -> Iterator[None]:
    """Readiness turns false the moment SIGTERM arrives, before uvicorn stops taking connections.

    uvicorn installs its own handler before the lifespan starts; ours wraps it and hands on, so
    in-flight requests still finish and the lifespan's shutdown still flushes the log.
    """
    if threading.current_thread() is not threading.main_thread():  # e.g. a test server in a thread
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        svc.ready = False
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is on_sigterm:
            signal.signal(signal.SIGTERM, previous)


async def _start_grpc(app: FastAPI, svc: Services) -> Any:
    """The Open Inference Protocol's gRPC service on `grpc_port`, on this event loop (imported only
    when asked for: grpc costs start-up time)."""
    from driftgate.api.grpc_server import GrpcServer

    server = GrpcServer(app, svc, svc.settings)
    await server.start()
    return server


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = build_services(settings)
        app.state.services = svc
        await svc.dataplane.load_all()
        # The token table is read now, so that a store outage later serves from it (api/auth.py).
        await svc.tokens.scopes()
        if isinstance(svc.recorder, ProcessRecorder):
            svc.recorder.start()
        # Models and reference objects are long-lived: moving them out of the collector's view cuts
        # full-collection pauses (measured in the serving benchmark: p99 at half load 139 -> 20 ms).
        gc.collect()
        gc.freeze()
        background = [asyncio.create_task(_follow_store(svc)), asyncio.create_task(_drive_rollouts(svc))]
        if settings.monitor_interval > 0:
            background.append(asyncio.create_task(_monitor_periodically(svc)))
        if settings.retention_days is not None or settings.monitoring_retention_days is not None:
            background.append(asyncio.create_task(_apply_retention_periodically(svc)))
        background.append(asyncio.create_task(_retrain_on_schedule(svc)))
        if svc.metrics.multiprocess:
            # With several workers, other workers answer scrapes from what this one last wrote.
            background.append(asyncio.create_task(refresh_every(svc.metrics)))
        grpc_server = None
        svc.ready = True
        try:
            if settings.grpc_port:  # inside the try: a port it cannot bind still closes what started
                grpc_server = await _start_grpc(app, svc)
            with _unready_on_sigterm(svc):
                yield
        finally:
            # Readiness drops first so load balancers stop sending; uvicorn has already let
            # in-flight requests finish; then everything queued is written.
            svc.ready = False
            if grpc_server is not None:
                await grpc_server.stop()  # in-flight gRPC calls finish (bounded) before the log closes
            for task in background:
                task.cancel()
            await close_services(svc)

    app = FastAPI(
        title="driftgate",
        version=__version__,
        description="Serve, roll out, log and monitor ML models.",
        lifespan=lifespan,
    )
    errors.install(app)
    store_errors.install(app)
    for module in (models, endpoints, predict, events, rollouts, monitoring, review, alerts, retraining, v2, system):
        app.include_router(module.router)
    app.include_router(v2.scored)
    app.include_router(mlflow_server.router)
    app.add_middleware(BodyLimit, max_body=settings.max_body_bytes, max_upload=settings.max_upload_bytes)
    return app


def create_app_from_env() -> FastAPI:
    """Entry point for `uvicorn --factory` worker processes: settings come through the environment."""
    # A `--workers` worker whose supervisor is killed drains and exits, as on SIGTERM.
    die_with_spawning_parent(stop_gracefully())
    return create_app(Settings.from_env())
