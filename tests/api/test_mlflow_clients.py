"""MLflow models and MLflow's own clients against a live server.

Models are saved by mlflow itself (skops, the default; cloudpickle with trust; a pyfunc
`python_model` with an integer column in its signature); clients are MLflow's scoring-server
client and `mlflow.deployments`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from driftgate.client import Client
from driftgate.registry.formats import zip_directory
from tests.conftest import LiveServer, make_server

mlflow = pytest.importorskip("mlflow")
pytestmark = pytest.mark.slow


def _data(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    count = rng.integers(0, 20, n)  # an integer feature: MLflow's signature says "long"
    x = rng.normal(size=n)
    return pd.DataFrame({"count": count, "x": x, "y": ((count / 10 + x) > 1).astype(int)})


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = make_server(tmp_path, mlflow_endpoint="clf")
    yield srv
    srv.stop()


def _register(srv: LiveServer, folder: Path, frame: pd.DataFrame, endpoint: str, **form: Any) -> dict[str, Any]:
    with Client(srv.url) as c:
        out = c.register_model(
            endpoint, zip_directory(folder), "mlflow", reference=frame.to_csv(index=False).encode(), target="y", **form
        )
        c.deploy(endpoint, endpoint, out["version"])
    return out


def _save_sklearn(tmp_path: Path, frame: pd.DataFrame, fmt: str) -> tuple[Path, Any]:
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    features = frame[["count", "x"]]
    model = LogisticRegression().fit(features, frame["y"])
    folder = tmp_path / f"sk-{fmt}"
    signature = infer_signature(features, model.predict(features))
    mlflow.sklearn.save_model(model, str(folder), serialization_format=fmt, signature=signature)
    return folder, model


def test_mlflow_sklearn_classifier_keeps_classes_and_serves_mlflow_clients(server: LiveServer, tmp_path: Path) -> None:
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    frame = _data()
    folder, model = _save_sklearn(tmp_path, frame, "skops")
    version = _register(server, folder, frame, "clf")
    assert version["output"]["kind"] == "classification" and version["output"]["classes"] == [0, 1]

    features = frame[["count", "x"]].head(25)
    port = int(server.url.rsplit(":", 1)[1])
    scoring = ScoringServerClient("127.0.0.1", port)
    scoring.wait_server_ready(timeout=30)
    answer = scoring.invoke(features)  # MLflow's client: its own request encoding and response parsing
    np.testing.assert_array_equal(np.asarray(answer.get_predictions()).ravel(), model.predict(features))

    with httpx.Client(base_url=server.url) as http:
        native = http.post("/v1/endpoints/clf/predict", json={"instances": features.to_dict("records")}).json()
        assert native["predictions"] == model.predict(features).tolist()
        np.testing.assert_allclose(native["probabilities"], model.predict_proba(features), rtol=1e-9)
        assert http.get("/version").status_code == 200 and http.get("/health").status_code == 200

        bad = http.post("/invocations", json={"dataframe_records": [{"count": "many", "x": 1.0}]})
        body = bad.json()
        assert bad.status_code == 422 and body["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "count" in body["message"] and body["message"] == body["error"]
        # The native routes keep the contract's shape.
        assert set(http.post("/v1/endpoints/clf/predict", json={"instances": [{}]}).json()) >= {"error"}


def test_mlflow_deployments_client_predicts(server: LiveServer, tmp_path: Path) -> None:
    from mlflow.deployments import get_deploy_client

    frame = _data()
    folder, model = _save_sklearn(tmp_path, frame, "skops")
    _register(server, folder, frame, "clf")
    client = get_deploy_client(server.url)
    features = frame[["count", "x"]].head(10)
    answer = client.predict(endpoint="clf", inputs={"dataframe_split": features.to_dict(orient="split")})
    assert answer["predictions"] == model.predict(features).tolist()


def test_trusted_cloudpickle_classifier_keeps_probabilities(server: LiveServer, tmp_path: Path) -> None:
    frame = _data()
    folder, model = _save_sklearn(tmp_path, frame, "cloudpickle")
    with Client(server.url) as c, pytest.raises(Exception, match="trust"):
        c.register_model("clf", zip_directory(folder), "mlflow", reference=frame.to_csv(index=False).encode())
    version = _register(server, folder, frame, "clf", trust=True)
    assert version["output"]["classes"] == [0, 1]
    features = frame[["count", "x"]].head(5)
    with Client(server.url) as c:
        answer = c.predict("clf", features)
    np.testing.assert_allclose(answer["probabilities"], model.predict_proba(features), rtol=1e-9)


class CountModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc, name-defined]
    """A pyfunc model whose signature declares `count` as long: pyfunc refuses float64 for it."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        assert model_input["count"].dtype == np.int64
        return (model_input["count"] * 2 + model_input["x"]).to_numpy()


def test_pyfunc_integer_signature_columns_stay_integer(tmp_path: Path) -> None:
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    frame = _data()
    features = frame[["count", "x"]]
    folder = tmp_path / "pyfunc"
    mlflow.pyfunc.save_model(
        str(folder), python_model=CountModel(), signature=infer_signature(features, features["x"].to_numpy())
    )
    srv = make_server(tmp_path, mlflow_endpoint="reg")
    try:
        _register(srv, folder, frame.drop(columns=["y"]).assign(y=features["x"]), "reg", trust=True)
        with httpx.Client(base_url=srv.url) as http:
            r = http.post("/invocations", json={"dataframe_split": features.head(5).to_dict(orient="split")})
            assert r.status_code == 200, r.text
            np.testing.assert_allclose(r.json()["predictions"], (features["count"] * 2 + features["x"]).head(5))
    finally:
        srv.stop()


def test_root_routes_without_a_chosen_endpoint_say_how(tmp_path: Path) -> None:
    srv = make_server(tmp_path)
    try:
        with httpx.Client(base_url=srv.url) as http:
            r = http.post("/invocations", json={"dataframe_split": {"columns": ["x"], "data": [[1]]}})
            assert r.status_code == 404 and "--mlflow-endpoint" in r.json()["message"]
            assert r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
            assert http.get("/ping").status_code == 404
    finally:
        srv.stop()
