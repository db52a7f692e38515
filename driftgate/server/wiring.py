"""Every component of a server, built from the settings: the store, the prediction log, the data plane,
the use cases and the background services. Also used by short-lived commands that score through the
same components (`driftgate batch score`, `driftgate monitor`)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from driftgate.alerts.engine import AlertEngine
from driftgate.api import body_decoder
from driftgate.api.auth import TokenCache
from driftgate.api.services import Services
from driftgate.errors import DriftgateError
from driftgate.monitoring.live import LiveDrift
from driftgate.monitoring.monitor import Monitor
from driftgate.monitoring.worker import DriftWorker
from driftgate.records.log_process import ProcessRecorder
from driftgate.records.recorder import LogBatch, PredictionLog, Recorder
from driftgate.retraining.service import Retrainer
from driftgate.rollout.controller import RolloutController
from driftgate.services.endpoints import EndpointService
from driftgate.services.outcomes import OutcomeService
from driftgate.services.rollouts import RolloutService
from driftgate.serving.dataplane import DataPlane
from driftgate.serving.metrics import ServingMetrics
from driftgate.serving.runtime import ModelCache
from driftgate.serving.shadow_process import ShadowProcess
from driftgate.settings import Settings
from driftgate.store import Store


def build_services(settings: Settings) -> Services:
    store = Store.open(settings.data_dir, settings.db)
    metrics = ServingMetrics.from_env()

    def dropped(batch: LogBatch) -> None:
        metrics.log_dropped.labels(batch.endpoint, str(batch.version), batch.role).inc(len(batch))

    # Rows the store refuses are parked in the spool in any mode; with --durable-log every row is.
    spool = Path(settings.data_dir) / "spool"
    in_process = Recorder(
        store.predictions.write_rows,
        flush_interval=settings.log_flush_interval,
        batch_rows=settings.log_batch_rows,
        max_rows=settings.log_max_queued_rows,
        on_drop=dropped,
        spool=spool,
        durable=settings.durable_log,
    )
    recorder: PredictionLog = in_process
    if settings.log_process and not settings.durable_log:
        # The child writes; the in-process recorder takes over while the child is behind.
        recorder = ProcessRecorder(
            in_process,
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
    worker = DriftWorker(
        drift,
        data_dir=settings.data_dir,
        db=settings.db,
        loader=f"{ModelCache.__module__}:{ModelCache.__qualname__}",  # built in the worker's child
        trust_pickle=settings.trust_pickle,
    )
    rollouts = RolloutService(RolloutController(store, plane), plane)

    retrainer = Retrainer(
        store,
        data_dir=settings.data_dir,
        db=settings.db,
        allowed_modules=tuple(settings.train_modules),
        start_rollout=rollouts.start,
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
        actions={"rollback": rollouts.rollback_on_alert, "retrain": retrain},
        registry=metrics.registry,
    )
    # Big windows are computed in the worker's child process, off the serving process's GIL.
    monitor = Monitor(store, drift, worker=worker)
    # Every monitor run's metric points are judged by the alert rules.
    monitor.listeners.append(alerts_engine.evaluate)
    metrics.watch(plane, monitor, alerts_engine)  # Prometheus: monitor gauges, series at 0
    return Services(
        settings,
        store,
        plane,
        recorder,
        metrics,
        TokenCache(store),
        executor,
        drift,
        rollouts,
        monitor,
        alerts_engine,
        retrainer,
        EndpointService(store, plane, retrainer.check),
        OutcomeService(store, recorder),
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
    body_decoder.stop()
    svc.store.close()
