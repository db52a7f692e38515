"""The store: the only place SQL lives. SQLite (WAL) by default, PostgreSQL for scale-out."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import Engine

from driftgate.store.alerts import AlertRepo
from driftgate.store.database import database_url, open_engine
from driftgate.store.endpoints import EndpointRepo
from driftgate.store.events import EventRepo
from driftgate.store.health import StoreHealth
from driftgate.store.models import ModelRepo, VersionRecord
from driftgate.store.monitoring import MonitoringRepo
from driftgate.store.predictions import PredictionRepo
from driftgate.store.retraining import RetrainingRepo
from driftgate.store.rollouts import RolloutRepo
from driftgate.store.tokens import TokenRepo


class Store:
    """All repositories over one engine.

    >>> store = Store.open(data_dir="/tmp/driftgate-doctest")
    >>> store.dialect in ("sqlite", "postgresql")
    True
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Whether the store answers; serving goes on without it (see store/health.py).
        self.health = StoreHealth()
        self.health.watch(engine)
        self.models = ModelRepo(engine)
        self.endpoints = EndpointRepo(engine)
        self.tokens = TokenRepo(engine)
        self.predictions = PredictionRepo(engine)
        self.events = EventRepo(engine)
        self.rollouts = RolloutRepo(engine)
        self.monitoring = MonitoringRepo(engine)
        self.alerts = AlertRepo(engine)
        self.retraining = RetrainingRepo(engine)

    @classmethod
    def open(cls, data_dir: str | Path | None = None, db: str | None = None, *, migrate: bool = True) -> Store:
        """`migrate=False`: a helper process of a server that has already migrated the store."""
        return cls(open_engine(database_url(data_dir, db), migrate=migrate))

    def apply_retention(
        self,
        *,
        prediction_days: float | None = None,
        monitoring_days: float | None = None,
        endpoint: str | None = None,
        now: float | None = None,
    ) -> dict[str, int]:
        """Delete what is older than its retention: prediction log rows with their labels and outcome
        events, and monitoring points and reports (each endpoint keeps its newest report). None keeps
        everything of that kind. Returns the rows deleted per kind."""
        now = time.time() if now is None else now
        deleted = {"predictions": 0, "monitoring_points": 0, "monitor_reports": 0}
        if prediction_days is not None:
            deleted["predictions"] = self.predictions.delete_before(now - prediction_days * 86400, endpoint)
        if monitoring_days is not None:
            points, reports = self.monitoring.delete_before(now - monitoring_days * 86400, endpoint)
            deleted.update(monitoring_points=points, monitor_reports=reports)
        return deleted

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()


__all__ = ["Store", "VersionRecord"]
