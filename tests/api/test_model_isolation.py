"""A hung model hurts only its own endpoint; a model that crashes natively does not end the server.

Issue 19, items 4 and 8: each endpoint version runs its calls on threads of its own (and sheds once
they are all hung), and `isolation: "process"` runs the model in supervised worker processes.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from driftgate.registry.formats import python_artifact
from driftgate.registry.reference import to_parquet
from driftgate.registry.registry import Registration, register
from driftgate.registry.schema import InputSchema
from driftgate.store import Store, VersionRecord
from tests.conftest import Artifacts, LiveServer, free_port
from tests.helpers import python_model, row, until
from tests.slow_model import ENTERED, GATE, HANG, HEALTHY, SLOW

DRIFTGATE = str(Path(sys.executable).parent / "driftgate")


@pytest.mark.slow
def test_hung_models_do_not_starve_a_healthy_endpoint(stuck_server: LiveServer) -> None:
    with httpx.Client(base_url=stuck_server.url, timeout=60) as http:
        # Four endpoints each get a call that hangs: their callers get 504, the calls go on.
        for name in SLOW:
            assert http.post(f"/v1/endpoints/{name}/predict", json=row(HANG)).status_code == 504
        until(lambda: len(ENTERED) >= 4)

        # The healthy endpoint answers, every time.
        for _ in range(5):
            r = http.post("/v1/endpoints/clf/predict", json=HEALTHY)
            assert r.status_code == 200, r.text

        # A hung endpoint still answers what its free slots can take...
        r = http.post("/v1/endpoints/slow1/predict", json=row(3.0))
        assert r.status_code == 200 and r.json()["predictions"] == [6.0]
        # ...and once every slot of its own is held by a call past its timeout, it sheds at once.
        statuses: list[int] = []
        while not statuses or statuses[-1] == 504:
            assert len(statuses) < 10, statuses
            statuses.append(http.post("/v1/endpoints/slow0/predict", json=row(HANG)).status_code)
        # 3 slots: 1 hung call already, 2 more; then shed (or one more 504 if the request came a hair
        # before the third call was past its timeout, and waited out its own).
        assert statuses[-1] == 503 and statuses[:-1] in ([504, 504], [504, 504, 504]), statuses
        shed = http.post("/v1/endpoints/slow0/predict", json=row(3.0))
        assert shed.status_code == 503
        body = shed.json()
        assert "not answering" in body["error"] and "shed" in body["error"] and body["retry_after_s"] >= 1
        assert int(shed.headers["retry-after"]) == body["retry_after_s"]
        assert http.post("/v1/endpoints/clf/predict", json=HEALTHY).status_code == 200

        metrics = http.get("/metrics").text
        line = next(
            m for m in metrics.splitlines() if m.startswith("driftgate_model_shed_requests_total{") and 'slow0"' in m
        )
        assert 'reason="stuck"' in line and line.endswith(" 2.0")

        # Released, the hung calls end and the endpoint serves again.
        GATE.set()
        until(lambda: http.post("/v1/endpoints/slow0/predict", json=row(2.0)).status_code == 200)


# ---- native crashes, in a real `driftgate serve` ------------------------------------------------

CRASHY = '''
import ctypes
import os
import time

import numpy as np


class Crashy:
    """Answers its worker's pid; x1 == 666 segfaults, 667 aborts, 668 hangs."""

    def predict(self, frame):
        x1 = frame["x1"].to_numpy(dtype=float)
        if (x1 == 666).any():
            ctypes.string_at(0)
        if (x1 == 667).any():
            os.abort()
        if (x1 == 668).any():
            time.sleep(600)
        return np.full(len(frame), float(os.getpid()))
'''


class Server:
    """`driftgate serve` in its own process (a crash in-process would take pytest down with it)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{free_port()}"
        args = [DRIFTGATE, "serve", "--data-dir", str(data_dir), "--port", self.url.rsplit(":", 1)[1]]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def ready() -> bool:
            assert self.proc.poll() is None, self.proc.stderr.read().decode() if self.proc.stderr else ""
            try:
                return httpx.get(self.url + "/v2/health/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        until(ready, seconds=180)  # a loaded CI machine takes its time to import everything

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.fixture
def crash_site(tmp_path: Path, artifacts: Artifacts) -> Iterator[Server]:
    source = tmp_path / "crashy_model.py"
    source.write_text(textwrap.dedent(CRASHY))
    data_dir = tmp_path / "data"
    store = Store.open(data_dir)
    register(store, python_model("crashy", python_artifact(f"{source}:Crashy"), artifacts))
    register(store, Registration("clf", artifacts.skops, "sklearn", artifacts.reference_csv, "ref.csv", target="y"))
    config = {"model": "crashy", "version": 1, "isolation": "process", "timeout_ms": 3000}
    store.endpoints.put("crashy", config, actor="test")
    store.endpoints.put("clf", {"model": "clf", "version": 1}, actor="test")
    store.close()
    server = Server(data_dir)
    try:
        yield server
    finally:
        server.close()


@pytest.mark.slow
def test_a_model_that_crashes_natively_gets_500_and_the_server_goes_on(crash_site: Server) -> None:
    healthy = {"instances": [{"x1": 0.5, "x2": 3.0, "colour": "red"}]}
    with httpx.Client(base_url=crash_site.url, timeout=60) as http:

        def worker_pid() -> int | None:
            r = http.post("/v1/endpoints/crashy/predict", json=row(1.0))
            assert r.status_code in (200, 503, 504), r.text  # 503/504 only while a worker starts
            return int(r.json()["predictions"][0]) if r.status_code == 200 else None

        pids = [until(worker_pid)]
        assert pids[0] != crash_site.proc.pid  # the model runs in a worker process

        for x1, signame in ((666.0, "SIGSEGV"), (667.0, "SIGABRT")):
            r = http.post("/v1/endpoints/crashy/predict", json=row(x1))
            assert r.status_code == 500, r.text
            message = r.json()["error"]
            assert "crashed" in message and signame in message, message
            assert crash_site.proc.poll() is None  # the server lives
            assert http.post("/v1/endpoints/clf/predict", json=healthy).status_code == 200
            assert not _alive(pids[-1])
            pids.append(until(worker_pid))  # a fresh worker answers
            assert pids[-1] not in pids[:-1]

        # A hung call past timeout_ms: 504, its worker stopped, the next one answers.
        assert http.post("/v1/endpoints/crashy/predict", json=row(668.0)).status_code == 504
        until(lambda: not _alive(pids[-1]))
        pids.append(until(worker_pid))

        metrics = http.get("/metrics").text
        failures = {
            line.split('reason="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("driftgate_model_worker_failures_total{") and 'endpoint="crashy"' in line
        }
        assert failures == {"crash": 2.0, "hang": 1.0}

        # The worker dies with the server, even one killed with SIGKILL.
        worker = pids[-1]
        assert _alive(worker)
        crash_site.proc.send_signal(signal.SIGKILL)
        crash_site.proc.wait(timeout=30)
        until(lambda: not _alive(worker), seconds=10)


@pytest.mark.slow
def test_worker_processes_end_with_a_sigterm(crash_site: Server) -> None:
    with httpx.Client(base_url=crash_site.url, timeout=60) as http:

        def worker_pid() -> int | None:
            r = http.post("/v1/endpoints/crashy/predict", json=row(1.0))
            return int(r.json()["predictions"][0]) if r.status_code == 200 else None

        worker = until(worker_pid)
    crash_site.proc.send_signal(signal.SIGTERM)
    assert crash_site.proc.wait(timeout=60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    until(lambda: not _alive(worker), seconds=10)


# ---- the default config: a model driftgate did not vet runs in a worker process ------------------

# A trusted pickle (cloudpickled by value, so the worker needs no module of ours): nothing about its
# native code was checked, so `isolation: "auto"` (the default) must put it in a worker process.
CRASHY_ESTIMATOR = """
import ctypes
import os

import numpy as np


class CrashyRegressor:
    feature_names_in_ = np.array(["x1", "x2"], dtype=object)

    def predict(self, X):
        x1 = np.asarray(X["x1"], dtype=float)
        if (x1 == 666).any():
            ctypes.string_at(0)
        return np.full(len(x1), float(os.getpid()))


class CrashesElsewhere(CrashyRegressor):
    # Scores in the process that built it (registration checks it there); segfaults anywhere else.

    home = os.getpid()

    def predict(self, X):
        if os.getpid() != self.home:
            ctypes.string_at(0)
        return super().predict(X)


class RecordsItsLoads(CrashyRegressor):
    # Each process that loads it appends its pid to a file.

    def __init__(self, path):
        self.path = path

    def __setstate__(self, state):
        self.__dict__.update(state)
        with open(self.path, "a") as f:
            f.write(f"{os.getpid()} ")
"""


def _trusted_pickle(cls: str = "CrashyRegressor", *args: Any) -> bytes:
    import types

    import cloudpickle

    module = types.ModuleType("crashy_estimator")  # not in sys.modules: cloudpickle takes the class by value
    exec(compile(CRASHY_ESTIMATOR, "crashy_estimator.py", "exec"), module.__dict__)
    return bytes(cloudpickle.dumps(getattr(module, cls)(*args)))


def store_unchecked(store: Store, name: str, artifact: bytes, reference: pd.DataFrame) -> VersionRecord:
    """A trusted pickle regression version written straight to the store, as registration would have
    stored it (a store from an older driftgate, or one edited by hand, may hold anything): nothing
    loads or checks it here."""
    record = {
        "name": name,
        "format": "sklearn",
        "artifact_kind": "pickle",
        "artifact_sha256": hashlib.sha256(artifact).hexdigest(),
        "input_schema": InputSchema.infer(reference).to_dict(),
        "output": {"kind": "regression"},
        "target": None,
        "reference_rows": len(reference),
        "lineage": {"trusted": True},
        "metrics": {},
        "description": None,
    }
    return store.models.add_version(record, artifact, to_parquet(reference))


@pytest.fixture
def default_site(tmp_path: Path, artifacts: Artifacts) -> Iterator[Server]:
    data_dir = tmp_path / "data"
    store = Store.open(data_dir)
    reference = artifacts.reference[["x1", "x2"]].to_csv(index=False).encode()
    register(store, Registration("pickled", _trusted_pickle(), "sklearn", reference, "ref.csv", trust=True))
    register(store, Registration("clf", artifacts.skops, "sklearn", artifacts.reference_csv, "ref.csv", target="y"))
    # Default configs: no `isolation` anywhere.
    store.endpoints.put("pickled", {"model": "pickled", "version": 1}, actor="test")
    store.endpoints.put("clf", {"model": "clf", "version": 1}, actor="test")
    store.close()
    server = Server(data_dir)
    try:
        yield server
    finally:
        server.close()


@pytest.mark.slow
def test_with_the_default_config_a_segfault_in_an_unvetted_model_costs_one_request(default_site: Server) -> None:
    healthy = {"instances": [{"x1": 0.5, "x2": 3.0, "colour": "red"}]}
    with httpx.Client(base_url=default_site.url, timeout=60) as http:
        views = {name: http.get(f"/v1/endpoints/{name}").json() for name in ("pickled", "clf")}
        assert views["pickled"]["config"]["isolation"] == "auto"
        assert views["pickled"]["isolation"] == [{"model": "pickled", "version": 1, "mode": "process"}]
        assert views["clf"]["isolation"] == [{"model": "clf", "version": 1, "mode": "thread"}]

        def worker_pid() -> int | None:
            r = http.post("/v1/endpoints/pickled/predict", json=row(1.0))
            assert r.status_code in (200, 503), r.text  # 503 only while a worker starts
            return int(r.json()["predictions"][0]) if r.status_code == 200 else None

        first = until(worker_pid)
        assert first != default_site.proc.pid
        r = http.post("/v1/endpoints/pickled/predict", json=row(666.0))
        assert r.status_code == 500, r.text
        message = r.json()["error"]
        assert "crashed" in message and "SIGSEGV" in message, message
        assert default_site.proc.poll() is None  # the server lives
        assert http.post("/v1/endpoints/clf/predict", json=healthy).status_code == 200
        assert not _alive(first)
        second = until(worker_pid)  # a fresh worker answers
        assert second not in (first, default_site.proc.pid)


@pytest.mark.slow
def test_with_the_default_config_a_rollout_candidate_that_segfaults_on_its_warm_up_is_refused(
    default_site: Server, artifacts: Artifacts
) -> None:
    store = Store.open(default_site.data_dir)
    try:
        # Registration would refuse it now (it crashes in the worker that checks it): stored as is.
        store_unchecked(store, "pickled", _trusted_pickle("CrashesElsewhere"), artifacts.reference[["x1", "x2"]])
    finally:
        store.close()
    with httpx.Client(base_url=default_site.url, timeout=120) as http:
        r = http.post("/v1/endpoints/pickled/rollouts", json={"strategy": "canary", "version": 2})
        assert r.status_code == 400, r.text
        message = r.json()["error"]
        assert "reference rows" in message and "SIGSEGV" in message, message
        assert default_site.proc.poll() is None  # the server lives
        assert http.post("/v1/endpoints/pickled/predict", json=row(1.0)).status_code == 200
        assert http.get("/v1/endpoints/pickled").json()["rollout"] is None
