"""A model driftgate did not vet never runs in the server process: not to register it, not to serve it
(issue 19 item 8). A file that crashes its native library on load fails its upload or its deploy with
an error naming the crash, and the server goes on."""

from __future__ import annotations

import ctypes
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from driftgate.core.refs import VersionRef
from driftgate.registry.registry import Registration, register
from driftgate.registry.schema import Columns, InputSchema
from driftgate.serving.isolation import Scores
from driftgate.serving.runtime import LoadedVersion
from driftgate.store import Store
from tests.api.test_model_isolation import Server, _trusted_pickle, store_unchecked
from tests.conftest import Artifacts
from tests.helpers import row, until

HEALTHY = {"instances": [{"x1": 0.5, "x2": 3.0, "colour": "red"}]}


class _SegfaultsOnLoad:
    """Unpickling this calls `ctypes.string_at(0)`: a native crash while the artifact loads."""

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        return ctypes.string_at, (0,)


LOADS_INTO_SEGFAULT = pickle.dumps(_SegfaultsOnLoad())


def _site(tmp_path: Path, artifacts: Artifacts, *, with_endpoint: bool) -> Server:
    """A server with a healthy skops endpoint and a stored version whose load segfaults (with an
    endpoint on it too, when `with_endpoint`)."""
    data_dir = tmp_path / "data"
    store = Store.open(data_dir)
    register(store, Registration("clf", artifacts.skops, "sklearn", artifacts.reference_csv, "ref.csv", target="y"))
    store.endpoints.put("clf", {"model": "clf", "version": 1}, actor="test")
    store_unchecked(store, "stored_boom", LOADS_INTO_SEGFAULT, artifacts.reference[["x1", "x2"]])
    if with_endpoint:
        store.endpoints.put("stored_boom", {"model": "stored_boom", "version": 1}, actor="test")
    store.close()
    return Server(data_dir)


@pytest.fixture
def site(tmp_path: Path, artifacts: Artifacts) -> Iterator[Server]:
    server = _site(tmp_path, artifacts, with_endpoint=False)
    try:
        yield server
    finally:
        server.close()


@pytest.mark.slow
def test_an_upload_whose_load_segfaults_is_refused_and_the_server_goes_on(site: Server, artifacts: Artifacts) -> None:
    reference = artifacts.reference[["x1", "x2"]].to_csv(index=False).encode()
    with httpx.Client(base_url=site.url, timeout=120) as http:
        r = http.post(
            "/v1/models/boom/versions",
            data={"format": "sklearn", "trust": "true"},
            files={"file": ("m.pkl", LOADS_INTO_SEGFAULT), "reference": ("ref.csv", reference)},
        )
        assert r.status_code == 400, r.text
        message = r.json()["error"]
        assert "WorkerCrashed" in message and "SIGSEGV" in message, message
        assert site.proc.poll() is None  # the server lives
        assert http.get("/v1/models/boom").status_code == 404  # nothing stored
        assert http.post("/v1/endpoints/clf/predict", json=HEALTHY).status_code == 200


@pytest.mark.slow
def test_an_endpoint_on_a_version_whose_load_segfaults_is_refused_and_the_server_goes_on(site: Server) -> None:
    with httpx.Client(base_url=site.url, timeout=120) as http:
        r = http.put("/v1/endpoints/boom", json={"model": "stored_boom", "version": 1})
        assert r.status_code == 400, r.text
        message = r.json()["error"]
        assert "SIGSEGV" in message and "stored_boom:1" in message, message
        assert site.proc.poll() is None  # the server lives
        assert http.get("/v1/endpoints/boom").status_code == 404  # nothing stored
        assert http.post("/v1/endpoints/clf/predict", json=HEALTHY).status_code == 200


@pytest.mark.slow
def test_a_server_starts_with_an_endpoint_on_such_a_version_and_serves_the_others(
    tmp_path: Path, artifacts: Artifacts
) -> None:
    server = _site(tmp_path, artifacts, with_endpoint=True)  # used to die here, loading every version itself
    try:
        with httpx.Client(base_url=server.url, timeout=120) as http:
            r = http.post("/v1/endpoints/stored_boom/predict", json=row(1.0))
            assert r.status_code == 503, r.text  # its worker cannot load the model
            assert http.post("/v1/endpoints/clf/predict", json=HEALTHY).status_code == 200
            assert server.proc.poll() is None
    finally:
        server.close()


# ---- where an unvetted model is loaded: each load writes its process id to a file -------------------


def _loaders(path: Path) -> set[int]:
    return {int(line) for line in path.read_text().split()} if path.exists() else set()


@pytest.fixture
def recorded_site(tmp_path: Path, artifacts: Artifacts) -> Iterator[tuple[Server, Path]]:
    loads = tmp_path / "loads.txt"
    data_dir = tmp_path / "data"
    store = Store.open(data_dir)
    reference = artifacts.reference[["x1", "x2"]].to_csv(index=False).encode()
    artifact = _trusted_pickle("RecordsItsLoads", str(loads))
    register(store, Registration("recorded", artifact, "sklearn", reference, "ref.csv", trust=True))
    register(store, Registration("clf", artifacts.skops, "sklearn", artifacts.reference_csv, "ref.csv", target="y"))
    store.endpoints.put("clf", {"model": "clf", "version": 1}, actor="test")
    store.close()
    server = Server(data_dir)
    try:
        yield server, loads
    finally:
        server.close()


@pytest.mark.slow
def test_an_unvetted_model_is_loaded_only_in_worker_processes(recorded_site: tuple[Server, Path]) -> None:
    server, loads = recorded_site
    # Registration loaded and checked it, in a process of its own: not the registering one.
    registered = _loaders(loads)
    assert len(registered) == 1 and os.getpid() not in registered
    with httpx.Client(base_url=server.url, timeout=120) as http:
        # The default config (`isolation: "auto"`).
        assert http.put("/v1/endpoints/recorded", json={"model": "recorded", "version": 1}).status_code == 200

        def worker_pid() -> int | None:
            r = http.post("/v1/endpoints/recorded/predict", json=row(1.0))
            assert r.status_code in (200, 503), r.text  # 503 only while a worker starts
            return int(r.json()["predictions"][0]) if r.status_code == 200 else None

        worker = until(worker_pid)
        rows = {"instances": [{"x1": float(i), "x2": 1.0} for i in range(20)]}
        assert http.post("/v1/endpoints/recorded/predict", json=rows).status_code == 200
        # A small window's drift report is computed in the server: the reference rows score in the workers.
        r = http.get("/v1/endpoints/recorded/drift")
        assert r.status_code == 200, r.text
        assert server.proc.poll() is None
    loaders = _loaders(loads) - registered
    assert worker in loaders
    assert server.proc.pid not in loaders  # never loaded in the server
    # The worker the PUT loaded it in (to refuse a model that crashes on load) is the one that serves.
    assert [int(pid) for pid in loads.read_text().split()][1] == worker


def test_a_version_without_its_model_scores_through_its_workers_in_calls_of_a_batch_at_most() -> None:
    calls: list[int] = []

    def score(columns: Columns) -> Scores:  # what a worker pool's `score` takes and answers
        calls.append(len(columns["x1"]))
        x = np.asarray(columns["x1"], dtype=float)
        return 2 * x, np.stack([x, 1 - x], axis=1)

    described = LoadedVersion(VersionRef("m", 1), InputSchema.from_names(["x1"]), {"kind": "regression"}, None, "onnx")
    frame = pd.DataFrame({"x1": np.arange(7.0)})
    with pytest.raises(RuntimeError, match="not loaded in this process"):
        described.score(frame)
    preds, proba = described.scored_by(score, max_rows=3).score(frame)
    assert calls == [3, 3, 1]  # a drift report's reference sample must not run past the endpoint's timeout
    assert preds.tolist() == [2.0 * i for i in range(7)]
    assert proba is not None and proba[:, 0].tolist() == list(np.arange(7.0))
