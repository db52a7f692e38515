"""Label-free estimates and concept drift through a real server: every row of the window counts, the
model's own decision drives every metric, and a covariate shift is not called concept drift."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftgate.client import Client

pytestmark = pytest.mark.slow
FEATURES = ["x1", "x2"]


def _data(n: int, seed: int, centre: float) -> pd.DataFrame:
    """P(y=1 | x) = sigmoid(2.5 x1 + 0.5 x2), the same for every window: only P(x) moves."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(centre, 1.0, n), rng.normal(0.0, 1.0, n)
    p = 1 / (1 + np.exp(-(2.5 * x1 + 0.5 * x2)))
    return pd.DataFrame({"x1": x1, "x2": x2, "y": (rng.random(n) < p).astype(int)})


def _register(client: Client, model: Any, reference: pd.DataFrame, name: str) -> None:
    import skops.io as sio

    model.fit(reference[FEATURES], reference["y"])
    buffer = io.StringIO()
    reference.to_csv(buffer, index=False)
    client.register_model(name, sio.dumps(model), "sklearn", reference=buffer.getvalue().encode(), target="y")
    client.deploy(name, name, 1)


def _send(client: Client, endpoint: str, frame: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    ids: list[str] = []
    outputs: list[Any] = []
    for start in range(0, len(frame), 500):
        answer = client.predict(endpoint, frame.iloc[start : start + 500][FEATURES])
        ids += answer["ids"]
        outputs += answer["predictions"]
    return ids, np.asarray(outputs)


def _monitor(client: Client, endpoint: str, last: int) -> dict[str, Any]:
    answer = client.http.post(f"/v1/endpoints/{endpoint}/monitor", json={"last": last})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_estimate_uses_every_row_and_covariate_shift_is_not_concept_drift(client: Client) -> None:
    from sklearn.linear_model import LogisticRegression

    _register(client, LogisticRegression(), _data(4000, 1, 1.5), "m")
    calm = _data(2000, 2, 1.5)
    ids, _ = _send(client, "m", calm)
    client.feedback("m", dict(zip(ids, calm["y"].tolist(), strict=True)))
    report = _monitor(client, "m", 2000)
    assert report["metrics"]["concept_drift"] == 0.0

    # Pure covariate shift: rows move to the decision boundary, labels from the same P(y|x). Accuracy
    # falls (the error stream rises) and the estimate expected it: data and performance drift, no
    # concept drift.
    shifted = _data(3000, 3, 0.0)
    ids, outputs = _send(client, "m", shifted)
    client.feedback("m", dict(zip(ids, shifted["y"].tolist(), strict=True)))
    report = _monitor(client, "m", 3000)
    metrics, concept = report["metrics"], report["concept_drift"]
    assert metrics["data_drift_share"] > 0 and metrics["accuracy"] < 0.85
    assert metrics["estimated_accuracy"] == pytest.approx(metrics["accuracy"], abs=0.03)
    assert metrics["concept_drift"] == 0.0, concept
    assert concept["data_drift"]["fired"] and concept["performance_drift"]["fired"]
    assert concept["evidence"]["test"] == "estimate_gap" and not concept["evidence"]["fired"]
    for name in ("estimated_roc_auc", "estimated_f1", "estimated_precision", "estimated_recall"):
        assert 0.0 < metrics[name] <= 1.0
    band = report["performance"]["estimated"]["bands"]["estimated_accuracy"]
    assert band["lower"] < band["value"] < band["upper"] and band["alert_below"] is not None

    # Labelling only the 10 % most confident rows of a window: the estimate still covers every row.
    window = _data(5000, 4, 0.5)
    ids, outputs = _send(client, "m", window)
    truth = float(np.mean(outputs == window["y"].to_numpy()))
    frame = pd.DataFrame({"x1": window["x1"], "x2": window["x2"]})
    confidence = np.abs(frame["x1"] * 2.5 + frame["x2"] * 0.5)
    confident = np.argsort(-confidence.to_numpy())[:500]
    client.feedback("m", {ids[i]: int(window["y"].iloc[i]) for i in confident})
    report = _monitor(client, "m", 5000)
    assert report["metrics"]["accuracy"] > truth + 0.05  # the labelled rows are the easy ones
    assert report["performance"]["estimated"]["n"] == 5000
    assert report["metrics"]["estimated_accuracy"] == pytest.approx(truth, abs=0.02)


def test_the_models_own_cut_drives_answers_and_estimates(client: Client) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import FixedThresholdClassifier

    reference = _data(4000, 5, 0.8)
    model = FixedThresholdClassifier(LogisticRegression(), threshold=0.795)
    _register(client, model, reference, "cut")
    window = _data(3000, 6, 0.5)
    ids, outputs = _send(client, "cut", window)
    assert (outputs == model.predict(window[FEATURES])).all()  # served: the model's predict, not argmax
    client.feedback("cut", dict(zip(ids, window["y"].tolist(), strict=True)))
    report = _monitor(client, "cut", 3000)
    metrics = report["metrics"]
    assert metrics["accuracy"] == pytest.approx(float(np.mean(outputs == window["y"].to_numpy())))
    assert metrics["estimated_accuracy"] == pytest.approx(metrics["accuracy"], abs=0.03)
    assert metrics["concept_drift"] == 0.0
