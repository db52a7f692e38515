"""Repeated errors are logged once with a traceback, then counted; store health changes logged once."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from driftgate.logonce import RepeatedErrors
from driftgate.store.health import StoreHealth, is_unavailable
from tests.conftest import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _boom() -> BaseException:
    try:
        raise RuntimeError("store refused")
    except RuntimeError as exc:
        return exc


def test_first_occurrence_with_traceback_then_counts(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    errors = RepeatedErrors(logging.getLogger("t.logonce"), every=60.0, clock=clock)
    with caplog.at_level(logging.INFO, "t.logonce"):
        for _ in range(1000):
            errors.error("sync", "endpoint sync failed", exc_info=_boom())
            clock.now += 0.01  # 1,000 failures in 10 s
        clock.now = 61.0
        errors.error("sync", "endpoint sync failed", exc_info=_boom())
        errors.error("other", "rollout analysis failed")
        assert errors.resolved("sync", "endpoint sync works again")
        assert not errors.resolved("sync", "endpoint sync works again")  # said once
        errors.error("sync", "endpoint sync failed", exc_info=_boom())
    records = [r for r in caplog.records if r.name == "t.logonce"]
    assert [r.getMessage() for r in records] == [
        "endpoint sync failed",
        "endpoint sync failed (repeated 1000 times in 61 s)",
        "rollout analysis failed",
        "endpoint sync works again (after 1001 failures in 61.0 s)",
        "endpoint sync failed",  # a new outage: in full again
    ]
    # Tracebacks only on the first line of each run, never on the summaries.
    assert [r.exc_info is not None for r in records] == [True, False, False, False, True]
    assert errors.suppressed == 999


def test_keys_are_bounded() -> None:
    errors = RepeatedErrors(logging.getLogger("t.logonce"), max_keys=10)
    for i in range(100):
        errors.error(("route", i), "failed")
    assert len(errors._runs) == 10


def test_store_health_follows_the_engine(caplog: pytest.LogCaptureFixture) -> None:
    """A connection refused marks the store unavailable (logged once); `ok` brings it back."""
    health = StoreHealth()
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    health.watch(engine)
    with caplog.at_level(logging.INFO, "driftgate.store"):
        for _ in range(3):
            with pytest.raises(OperationalError) as info, engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            assert is_unavailable(info.value)
        snapshot = health.snapshot()
        assert snapshot["store"] == "unavailable" and "OperationalError" in snapshot["store_error"]
        assert health.failures == 3
        health.ok()
        assert health.snapshot() == {"store": "ok"}
    lines = [r.getMessage() for r in caplog.records if r.name == "driftgate.store"]
    assert len(lines) == 2 and "unavailable" in lines[0] and "back" in lines[1], lines
    engine.dispose()
