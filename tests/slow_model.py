"""A model that hangs until the test lets it go, and a server with four endpoints on it (`slow0`..
`slow3`, timeout_ms 300) beside a healthy one ('clf', timeout_ms 5000): the setup of the slow-model
isolation tests (tests/api/test_model_isolation.py, tests/reliability/test_slow_model_isolation.py),
served by the `stuck_server` fixture of tests/conftest.py."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from driftgate.registry.registry import register
from driftgate.store import Store
from tests.conftest import Artifacts, LiveServer, make_server
from tests.helpers import deploy_clf, python_model

HANG = 1000.0  # an x1 that makes `Blocking` wait for the test to release it
SLOW = [f"slow{i}" for i in range(4)]
HEALTHY = {"instances": [{"x1": 0.5, "x2": 3.0, "colour": "red"}]}

GATE = threading.Event()
_entered_lock = threading.Lock()
ENTERED: list[int] = []  # one entry per call that is hanging (or has hung)


class Blocking:
    """Regression `2 * x1`; a call with x1 == HANG waits for GATE (a hung model, as far as the server knows)."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        x1 = frame["x1"].to_numpy(dtype=float)
        if (x1 == HANG).any():
            with _entered_lock:
                ENTERED.append(1)
            GATE.wait(timeout=120)  # bounded: never outlives a failed test by much
        return 2 * x1


@contextlib.contextmanager
def stuck_site(tmp_path: Path, artifacts: Artifacts) -> Iterator[LiveServer]:
    """The server, its endpoints deployed and 'clf' answering once; every hung call released on exit."""
    GATE.clear()
    ENTERED.clear()
    srv = make_server(tmp_path)  # model_threads=4: the shared pool four hung calls used to fill
    try:
        store: Store = srv.app.state.services.store
        register(store, python_model("blocking", f"{__name__}:Blocking".encode(), artifacts))
        with httpx.Client(base_url=srv.url, timeout=60) as http:
            # Long enough for a healthy model on a loaded machine, short enough that a starved one fails fast.
            deploy_clf(http, artifacts, timeout_ms=5000)
            for name in SLOW:
                config = {"model": "blocking", "version": 1, "timeout_ms": 300}
                assert http.put(f"/v1/endpoints/{name}", json=config).is_success
            assert http.post("/v1/endpoints/clf/predict", json=HEALTHY).status_code == 200  # loaded
        yield srv
    finally:
        GATE.set()
        srv.stop()
