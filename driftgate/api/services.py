"""What the routes reach through `request.app.state.services`: built once per app."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fastapi import Request

from driftgate.alerts.engine import AlertEngine
from driftgate.api.auth import TokenCache
from driftgate.monitoring.live import LiveDrift
from driftgate.monitoring.monitor import Monitor
from driftgate.monitoring.worker import DriftWorker
from driftgate.records.recorder import PredictionLog
from driftgate.retraining.service import Retrainer
from driftgate.services.endpoints import EndpointService
from driftgate.services.outcomes import OutcomeService
from driftgate.services.rollouts import RolloutService
from driftgate.serving.dataplane import DataPlane
from driftgate.serving.metrics import ServingMetrics
from driftgate.settings import Settings
from driftgate.store import Store


@dataclass
class Services:
    settings: Settings
    store: Store
    dataplane: DataPlane
    recorder: PredictionLog
    metrics: ServingMetrics
    tokens: TokenCache
    executor: ThreadPoolExecutor
    drift: LiveDrift
    rollouts: RolloutService
    monitor: Monitor
    alerts: AlertEngine
    retraining: Retrainer
    endpoints: EndpointService
    outcomes: OutcomeService
    ready: bool = False
    drift_worker: DriftWorker | None = None
    """Runs big drift windows in a child process (see monitoring/worker.py); None: all in-thread."""


def services(request: Request) -> Services:
    return request.app.state.services
