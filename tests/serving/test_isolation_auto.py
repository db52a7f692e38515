"""`isolation: "auto"` (the default): worker processes for every model whose native code driftgate did
not vet, threads for what it loads through its own checks (issue 19 item 8)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from driftgate.core.refs import VersionRef
from driftgate.registry import formats
from driftgate.registry.registry import Registration, register
from driftgate.serving.runtime import ModelCache
from driftgate.store import Store
from tests.conftest import Artifacts, LiveServer, make_server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "data")
    yield s
    s.close()


def _numeric(artifacts: Artifacts) -> bytes:
    return artifacts.reference[["x1", "x2", "y"]].to_csv(index=False).encode()


def test_auto_resolves_by_how_each_version_was_loaded(store: Store, artifacts: Artifacts, tmp_path: Path) -> None:
    ref_csv = artifacts.reference_csv
    xs = artifacts.reference[["x1", "x2"]].to_csv(index=False).encode()
    cases = {
        "skops": (Registration("skops", artifacts.skops, "sklearn", ref_csv, "ref.csv", target="y"), "thread"),
        # Trust skips the type allow-list and the tree checks: nothing vetted any more.
        "skops_trusted": (
            Registration("skops_trusted", artifacts.skops, "sklearn", ref_csv, "ref.csv", target="y", trust=True),
            "process",
        ),
        "pickle": (
            Registration("pickle", artifacts.pickle, "sklearn", ref_csv, "ref.csv", target="y", trust=True),
            "process",
        ),
        "onnx": (Registration("onnx", artifacts.onnx, "onnx", _numeric(artifacts), "ref.csv", target="y"), "process"),
        "python": (
            Registration("python", b"tests.slow_model:Blocking", "python", xs, "ref.csv"),
            "thread",
        ),
    }
    mlflow_sklearn = pytest.importorskip("mlflow.sklearn")
    folder = tmp_path / "mlflow_skops"
    mlflow_sklearn.save_model(artifacts.model, str(folder), serialization_format="skops")
    zipped = formats.zip_directory(folder)
    cases["mlflow_skops"] = (Registration("mlflow_skops", zipped, "mlflow", ref_csv, "ref.csv", target="y"), "thread")
    for registration, _ in cases.values():
        register(store, registration)
    cache = ModelCache(store)
    resolved = {name: cache.get(VersionRef(name, 1)).auto_isolation for name in cases}
    assert resolved == {name: mode for name, (_, mode) in cases.items()}
    # A server started with --trust-pickle loads every skops file with trust, unchecked.
    assert ModelCache(store, trust_pickle=True).get(VersionRef("skops", 1)).auto_isolation == "process"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = make_server(tmp_path)
    yield srv
    srv.stop()


@pytest.mark.slow
def test_the_resolved_mode_is_shown_and_an_explicit_one_is_kept(server: LiveServer, artifacts: Artifacts) -> None:
    store: Store = server.app.state.services.store
    register(store, Registration("onnx", artifacts.onnx, "onnx", _numeric(artifacts), "ref.csv", target="y"))
    register(store, Registration("clf", artifacts.skops, "sklearn", artifacts.reference_csv, "ref.csv", target="y"))
    row = {"instances": [{"x1": 0.5, "x2": 3.0, "colour": "red"}]}  # onnx reads x1, x2 only

    def put(name: str, model: str, **extra: str) -> list[dict[str, object]]:
        r = http.put(f"/v1/endpoints/{name}", json={"model": model, "version": 1, **extra})
        assert r.status_code == 200, r.text
        assert http.get(f"/v1/endpoints/{name}").json()["isolation"] == r.json()["isolation"]
        assert http.post(f"/v1/endpoints/{name}/predict", json=row).status_code == 200
        return r.json()["isolation"]

    with httpx.Client(base_url=server.url, timeout=120) as http:
        assert put("onnx", "onnx") == [{"model": "onnx", "version": 1, "mode": "process"}]
        assert put("onnx", "onnx", isolation="thread") == [{"model": "onnx", "version": 1, "mode": "thread"}]
        assert put("clf", "clf") == [{"model": "clf", "version": 1, "mode": "thread"}]
        assert put("clf", "clf", isolation="process") == [{"model": "clf", "version": 1, "mode": "process"}]
