"""Drift of live traffic through a real server: calm windows stay quiet, shifted ones flag the feature."""

from __future__ import annotations

import pandas as pd

from driftgate.client import Client
from tests.conftest import classification_data


def _send(client: Client, frame: pd.DataFrame, batch: int = 100) -> list[str]:
    ids: list[str] = []
    for start in range(0, len(frame), batch):
        ids += client.predict("clf", frame.iloc[start : start + batch][["x1", "x2", "colour"]])["ids"]
    return ids


def test_calm_then_shifted_window(deployed: Client) -> None:
    calm = classification_data(1000, seed=7)
    _send(deployed, calm)
    report = deployed.http.get("/v1/endpoints/clf/drift", params={"last": 1000}).json()
    assert report["window"]["rows"] == 1000
    assert not report["dataset"]["drifted"], [f["name"] for f in report["features"] if f["drifted"]]
    assert {f["name"] for f in report["features"]} == {"x1", "x2", "colour"}
    assert "estimated_accuracy" in report["performance"]["estimated"]

    shifted = classification_data(1000, seed=8)
    shifted["x1"] += 1.5
    ids = _send(deployed, shifted)
    report = deployed.http.post("/v1/endpoints/clf/monitor").json()  # default window: both, mixed
    report = deployed.http.get("/v1/endpoints/clf/drift", params={"last": 1000}).json()
    drifted = {f["name"] for f in report["features"] if f["drifted"]}
    assert drifted == {"x1"}
    assert report["dataset"]["drifted"]
    assert report["prediction"]["drifted"]

    deployed.feedback("clf", dict(zip(ids, shifted["y"].tolist(), strict=True)))
    labelled = deployed.http.get("/v1/endpoints/clf/drift", params={"last": 1000}).json()
    assert labelled["window"]["labelled"] == 1000
    assert "accuracy" in labelled["performance"]["current"]


def test_drift_needs_enough_rows_and_a_known_endpoint(deployed: Client) -> None:
    answer = deployed.http.get("/v1/endpoints/clf/drift", params={"last": 5})
    assert answer.status_code == 400 and "at least" in answer.json()["error"]
    assert deployed.http.get("/v1/endpoints/nope/drift").status_code == 404
    assert deployed.http.get("/v1/endpoints/clf/drift", params={"last": 0}).status_code == 400
