"""The store: the only place SQL lives. SQLite (WAL) by default, PostgreSQL for scale-out."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from driftgate.store.alerts import AlertRepo
from driftgate.store.database import database_url, open_engine
from driftgate.store.endpoints import EndpointRepo
from driftgate.store.events import EventRepo
from driftgate.store.models import ModelRepo, VersionRecord
from driftgate.store.monitoring import MonitoringRepo
from driftgate.store.predictions import PredictionRepo
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
        self.models = ModelRepo(engine)
        self.endpoints = EndpointRepo(engine)
        self.tokens = TokenRepo(engine)
        self.predictions = PredictionRepo(engine)
        self.events = EventRepo(engine)
        self.rollouts = RolloutRepo(engine)
        self.monitoring = MonitoringRepo(engine)
        self.alerts = AlertRepo(engine)

    @classmethod
    def open(cls, data_dir: str | Path | None = None, db: str | None = None, *, migrate: bool = True) -> Store:
        """`migrate=False`: a helper process of a server that has already migrated the store."""
        return cls(open_engine(database_url(data_dir, db), migrate=migrate))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()


__all__ = ["Store", "VersionRecord"]
