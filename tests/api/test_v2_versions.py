"""V2 (Open Inference Protocol) calls that name a version, through a real server on loopback with
tritonclient HTTP and gRPC: the version answers (a rollout's candidate included), an unknown one is
404 / NOT_FOUND; readiness is open to probes without a token while every other V2 route keeps its
scope; HEAD on GET routes; Triton's statistics extension."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from driftgate.api.auth import REFRESH_SECONDS
from tests.conftest import Artifacts, LiveServer, classification_data, free_port, make_server

FEATURES = ["x1", "x2", "colour"]


class Served:
    def __init__(self, srv: LiveServer, token: str, champion: Any, candidate: Any) -> None:
        self.srv, self.token, self.champion, self.candidate = srv, token, champion, candidate

    @property
    def auth(self) -> dict[str, str]:
        # A new dict each time: tritonclient adds its own headers to the dict it is given.
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.srv.settings.grpc_port}"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, artifacts: Artifacts) -> Iterator[Served]:
    """Endpoint 'clf' on v1 with a shadow rollout of v2 (trained on inverted labels: it answers the
    opposite class almost always), and a predict token (so routes that need one are closed)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    ref = artifacts.reference
    pre = ColumnTransformer([("num", "passthrough", ["x1", "x2"]), ("cat", OneHotEncoder(), ["colour"])])
    candidate = Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(ref[FEATURES], 1 - ref["y"])
    srv = make_server(tmp_path_factory.mktemp("v2versions"), grpc_port=free_port(), log_flush_interval=0.05)
    try:
        with httpx.Client(base_url=srv.url, timeout=180) as http:
            for blob in (artifacts.skops, sio.dumps(candidate)):
                files = {"file": ("m.skops", blob), "reference": ("ref.csv", artifacts.reference_csv)}
                r = http.post("/v1/models/clf/versions", data={"format": "sklearn", "target": "y"}, files=files)
                assert r.status_code == 201, r.text
            assert http.put("/v1/endpoints/clf", json={"model": "clf", "version": 1}).status_code == 200
            r = http.post("/v1/endpoints/clf/rollouts", json={"strategy": "shadow", "version": 2})
            assert r.status_code in (200, 201), r.text
        token = srv.app.state.services.store.tokens.create("predict", "app")
        srv.app.state.services.tokens._loaded_at -= 2 * REFRESH_SECONDS  # re-read the token table now
        yield Served(srv, token, artifacts.model, candidate)
    finally:
        srv.stop()


@pytest.fixture
def rows() -> pd.DataFrame:
    return classification_data(25, seed=5)[FEATURES]


def http_inputs(rows: pd.DataFrame) -> list[triton_http.InferInput]:
    out = []
    for name, dtype, values in (
        ("x1", "FP64", rows["x1"].to_numpy(np.float64)),
        ("x2", "FP64", rows["x2"].to_numpy(np.float64)),
        ("colour", "BYTES", rows["colour"].to_numpy(dtype=object)),
    ):
        tensor = triton_http.InferInput(name, [len(rows)], dtype)
        tensor.set_data_from_numpy(values)
        out.append(tensor)
    return out


def grpc_inputs(rows: pd.DataFrame) -> list[triton_grpc.InferInput]:
    out = []
    for name, dtype, values in (
        ("x1", "FP64", rows["x1"].to_numpy(np.float64)),
        ("x2", "FP64", rows["x2"].to_numpy(np.float64)),
        ("colour", "BYTES", rows["colour"].to_numpy(dtype=object)),
    ):
        tensor = triton_grpc.InferInput(name, [len(rows)], dtype)
        tensor.set_data_from_numpy(values)
        out.append(tensor)
    return out


def logged_versions(served: Served) -> dict[int, int]:
    svc = served.srv.app.state.services
    svc.recorder.flush()
    counts: dict[int, int] = {}
    for row in svc.store.predictions.window("clf", role="primary"):
        counts[row["version"]] = counts.get(row["version"], 0) + 1
    return counts


def test_a_named_version_answers_over_rest(served: Served, rows: pd.DataFrame) -> None:
    before = logged_versions(served)
    with triton_http.InferenceServerClient(served.srv.url.removeprefix("http://")) as client:
        for version, model in (("2", served.candidate), ("1", served.champion)):
            result = client.infer("clf", http_inputs(rows), model_version=version, headers=served.auth)
            np.testing.assert_array_equal(result.as_numpy("predict"), model.predict(rows))
            assert result.get_response()["model_version"] == version
        unnamed = client.infer("clf", http_inputs(rows), headers=served.auth)
        np.testing.assert_array_equal(unnamed.as_numpy("predict"), served.champion.predict(rows))
        with pytest.raises(InferenceServerException) as caught:
            client.infer("clf", http_inputs(rows), model_version="99", headers=served.auth)
        assert caught.value.status() == "404" and "'99'" in caught.value.message()
    # The candidate's rows are logged as its own answers; the champion's as before.
    after = logged_versions(served)
    assert after.get(2, 0) - before.get(2, 0) == len(rows)
    assert after.get(1, 0) - before.get(1, 0) == 2 * len(rows)


def test_a_named_version_answers_over_grpc(served: Served, rows: pd.DataFrame) -> None:
    headers = {"authorization": f"Bearer {served.token}"}
    with triton_grpc.InferenceServerClient(served.grpc_target) as client:
        for version, model in (("2", served.candidate), ("1", served.champion)):
            result = client.infer("clf", grpc_inputs(rows), model_version=version, headers=headers)
            np.testing.assert_array_equal(result.as_numpy("predict"), model.predict(rows))
            assert result.get_response().model_version == version
        with pytest.raises(InferenceServerException) as caught:
            client.infer("clf", grpc_inputs(rows), model_version="99", headers=headers)
        assert caught.value.status() == "StatusCode.NOT_FOUND" and "'99'" in caught.value.message()
        assert client.get_model_metadata("clf", "2", headers=headers).versions == ["1", "2"]
        assert client.is_model_ready("clf", "2") and not _ready_or_not_found(client, "99")


def _ready_or_not_found(client: triton_grpc.InferenceServerClient, version: str) -> bool:
    try:
        return bool(client.is_model_ready("clf", version))
    except InferenceServerException as exc:
        assert exc.status() == "StatusCode.NOT_FOUND"
        return False


def test_version_metadata_and_readiness(served: Served) -> None:
    url = served.srv.url
    meta = httpx.get(f"{url}/v2/models/clf/versions/2", headers=served.auth)
    assert meta.status_code == 200 and meta.json()["versions"] == ["1", "2"]
    missing = httpx.get(f"{url}/v2/models/clf/versions/99", headers=served.auth)
    assert missing.status_code == 404 and "'99'" in missing.json()["error"]
    # Probes carry no token: readiness answers without one, per version too.
    assert httpx.get(f"{url}/v2/models/clf/ready").json() == {"name": "clf", "ready": True}
    assert httpx.get(f"{url}/v2/models/clf/versions/2/ready").status_code == 200
    assert httpx.get(f"{url}/v2/models/clf/versions/99/ready").status_code == 404
    with triton_http.InferenceServerClient(url.removeprefix("http://")) as client:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("clf") and client.is_model_ready("clf", "2")
        assert not client.is_model_ready("clf", "99") and not client.is_model_ready("nope")
    # Everything else keeps its scope.
    for path in ("/v2/models/clf", "/v2/models/clf/versions/2", "/v2/models/clf/stats"):
        assert httpx.get(f"{url}{path}").status_code == 401, path
    assert httpx.post(f"{url}/v2/models/clf/versions/2/infer", json={"inputs": []}).status_code == 401


def test_head_answers_like_get_without_a_body(served: Served) -> None:
    url = served.srv.url
    for path in ("/v2/health/live", "/v2/health/ready", "/v2", "/v2/models/clf/ready", "/metrics", "/ping"):
        get, head = httpx.get(f"{url}{path}"), httpx.head(f"{url}{path}")
        assert head.status_code == get.status_code, path
        assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"], path
    assert httpx.head(f"{url}/v2/models/clf").status_code == 401  # a scoped route stays scoped
    assert httpx.head(f"{url}/v2/models/clf", headers=served.auth).status_code == 200
    assert httpx.head(f"{url}/v2/models/clf/versions/99/ready").status_code == 404


def test_statistics_count_each_version(served: Served, rows: pd.DataFrame) -> None:
    with triton_http.InferenceServerClient(served.srv.url.removeprefix("http://")) as client:

        def stats(version: str = "") -> dict[str, Any]:
            return client.get_inference_statistics("clf", version, headers=served.auth)

        before = {s["version"]: s for s in stats()["model_stats"]}
        assert set(before) == {"1", "2"}
        for _ in range(3):
            client.infer("clf", http_inputs(rows), model_version="2", headers=served.auth)
        [after] = stats("2")["model_stats"]
        assert after["name"] == "clf" and after["version"] == "2"
        assert after["inference_count"] - before["2"]["inference_count"] == 3 * len(rows)
        success = after["inference_stats"]["success"]
        assert success["count"] - before["2"]["inference_stats"]["success"]["count"] == 3
        assert success["ns"] > before["2"]["inference_stats"]["success"]["ns"]
        assert after["execution_count"] > before["2"]["execution_count"]
        assert after["inference_stats"]["compute_infer"]["count"] == after["execution_count"]
        assert "statistics" in client.get_server_metadata()["extensions"]
        everything = client.get_inference_statistics(headers=served.auth)["model_stats"]
        assert {(s["name"], s["version"]) for s in everything} == {("clf", "1"), ("clf", "2")}
        with pytest.raises(InferenceServerException) as caught:
            stats("99")
        assert caught.value.status() == "404"
