"""The monitor through a real server: metrics, drift, concept drift, time series, the periodic loop."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from driftgate.client import Client
from driftgate.core.points import MetricPoint
from tests.conftest import Artifacts, LiveServer, classification_data, make_server


def _send(client: Client, frame: pd.DataFrame, batch: int = 100) -> list[str]:
    ids: list[str] = []
    for start in range(0, len(frame), batch):
        ids += client.predict("clf", frame.iloc[start : start + batch][["x1", "x2", "colour"]])["ids"]
    return ids


def _monitor(client: Client, **body: Any) -> dict[str, Any]:
    answer = client.http.post("/v1/endpoints/clf/monitor", json=body or None)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _series(client: Client, metric: str, **params: Any) -> list[dict[str, Any]]:
    answer = client.http.get("/v1/endpoints/clf/monitoring", params={"metric": metric, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()["points"]


def test_calm_shifted_then_wrong_labels(server: LiveServer, deployed: Client) -> None:
    heard: list[tuple[str, list[MetricPoint]]] = []

    async def listener(endpoint: str, points: list[MetricPoint]) -> None:
        heard.append((endpoint, points))

    server.app.state.services.monitor.listeners.append(listener)

    t0 = time.time()
    calm = classification_data(1000, seed=7)
    calm_ids = _send(deployed, calm)
    t1 = time.time()
    deployed.feedback("clf", dict(zip(calm_ids, calm["y"].tolist(), strict=True)))
    report = _monitor(deployed, last=1000)
    m = report["metrics"]
    assert m["request_count"] == 1000 and m["error_rate"] == 0.0
    assert m["data_drift_share"] == 0.0 and m["prediction_drift"] == 0.0
    assert m["concept_drift"] == 0.0 and m["accuracy"] > 0.85
    assert m["missing_rate"] == 0.0 and m["unseen_category_rate"] == 0.0 and m["schema_violation_rate"] == 0.0
    assert m["out_of_range_rate"] < 0.01
    assert 0.5 < m["mean_confidence"] <= 1.0 and m["null_output_rate"] == 0.0
    assert m["latency_p50_ms"] <= m["latency_p95_ms"] <= m["latency_p99_ms"]
    assert m["request_rate"] > 0 and 0.8 < m["estimated_accuracy"] <= 1.0
    assert set(report["breakdown"]["class_share"]) == {"0", "1"}
    assert sum(report["breakdown"]["class_share"].values()) == pytest.approx(1.0)
    assert report["breakdown"]["feature_drift"] == {"x1": 0.0, "x2": 0.0, "colour": 0.0}
    assert heard and heard[-1][0] == "clf" and {p.metric for p in heard[-1][1]} >= set(m)

    shifted = classification_data(1000, seed=8)
    shifted["x1"] += 1.5
    shifted_ids = _send(deployed, shifted)
    report = _monitor(deployed, last=1000)
    assert report["breakdown"]["feature_drift"] == {"x1": 1.0, "x2": 0.0, "colour": 0.0}
    assert report["metrics"]["data_drift_share"] == pytest.approx(1 / 3)
    assert report["metrics"]["prediction_drift"] == 1.0
    assert report["metrics"]["out_of_range_rate"] > 2 * m["out_of_range_rate"]
    assert report["metrics"]["concept_drift"] == 0.0  # the shifted rows have no labels yet

    # Against the calm window as baseline instead of the reference: the same feature stands out.
    versus_calm = _monitor(deployed, last=1000, baseline="window", baseline_since=t0, baseline_until=t1)
    assert versus_calm["breakdown"]["feature_drift"]["x1"] == 1.0
    assert versus_calm["window"]["baseline"]["rows"] == 1000

    deployed.feedback("clf", dict(zip(shifted_ids, (1 - shifted["y"]).tolist(), strict=True)))
    report = _monitor(deployed, last=1000)
    assert report["metrics"]["accuracy"] < 0.5  # about 0.9 on the calm window
    assert report["metrics"]["concept_drift"] == 1.0
    concept = report["concept_drift"]
    assert concept["fired"] and concept["detector"] == "ADWIN" and concept["ts"] >= t1

    # The series: one point per run, oldest first, filtered by time.
    points = _series(deployed, "data_drift_share")
    assert len(points) == 4 and [p["ts"] for p in points] == sorted(p["ts"] for p in points)
    assert points[0]["value"] == 0.0 and points[1]["value"] == pytest.approx(1 / 3)
    middle = _series(deployed, "data_drift_share", since=points[1]["ts"], until=points[3]["ts"])
    assert [p["ts"] for p in middle] == [points[1]["ts"], points[2]["ts"]]
    assert [p["value"] for p in _series(deployed, "concept_drift")] == [0.0, 0.0, 0.0, 1.0]
    shares = _series(deployed, "class_share")
    assert {p["detail"]["class"] for p in shares} == {0, 1} and all(p["version"] == 1 for p in shares)

    overview = deployed.http.get("/v1/endpoints/clf/monitoring").json()
    assert {"data_drift_share", "concept_drift", "request_count", "feature_drift"} <= set(overview["metrics"])
    assert overview["latest"]["concept_drift"][0]["value"] == 1.0
    assert len(overview["latest"]["feature_drift"]) == 3

    # GET .../drift still answers the plain drift report.
    drift = deployed.http.get("/v1/endpoints/clf/drift", params={"last": 1000}).json()
    assert {f["name"] for f in drift["features"] if f["drifted"]} == {"x1"}


def test_bad_parameters_and_unknown_endpoint(deployed: Client) -> None:
    _send(deployed, classification_data(50, seed=3))
    http = deployed.http
    assert http.get("/v1/endpoints/nope/monitoring").status_code == 404
    assert http.post("/v1/endpoints/nope/monitor").status_code == 404
    for params, field in (
        ({"metric": "bogus"}, "metric"),
        ({"metric": "error_rate", "since": 10, "until": 5}, "since"),
        # schemathesis: a version past the database's integer range was a 500 (OverflowError)
        ({"metric": "roc_auc", "version": -51196870740574494720}, "version"),
        ({"metric": "roc_auc", "version": 2**63}, "version"),
    ):
        answer = http.get("/v1/endpoints/clf/monitoring", params=params)
        assert answer.status_code == 400 and answer.json()["field"] == field
    for body, field in (
        ({"last": 0}, "last"),
        ({"since": 10, "until": 5}, "since"),
        ({"baseline": "window"}, "baseline_since"),
        ({"baseline": "window", "baseline_since": 9, "baseline_until": 1}, "baseline_since"),
    ):
        answer = http.post("/v1/endpoints/clf/monitor", json=body)
        assert answer.status_code == 400 and answer.json()["field"] == field, (body, answer.text)
    assert http.post("/v1/endpoints/clf/monitor", json={"baseline": "yesterday"}).status_code == 422
    assert http.get("/v1/endpoints/clf/drift", params={"since": 10, "until": 5}).status_code == 400

    # A window too small for drift still gives the software, input and output metrics.
    report = _monitor(deployed, last=5)
    assert report["metrics"]["request_count"] == 5 and "data_drift_share" not in report["metrics"]
    assert "at least" in report["notes"][0]
    empty = _monitor(deployed, since=1.0, until=2.0)
    assert empty["metrics"]["request_count"] == 0 and empty["metrics"]["error_rate"] is None


def test_periodic_monitor_writes_points(tmp_path: Path, artifacts: Artifacts, db_url: str) -> None:
    srv = make_server(tmp_path, db=db_url, monitor_interval=0.5)
    try:
        with Client(srv.url) as client:
            client.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
            client.deploy("clf", "clf", 1)
            deadline = time.monotonic() + 60  # scheduled runs compute in the idle-priority child
            points: list[dict[str, Any]] = []
            while time.monotonic() < deadline and not points:
                _send(client, classification_data(20, seed=int(time.monotonic() * 1000) % 10_000), batch=20)
                time.sleep(0.3)
                points = _series(client, "request_count")
            assert points and points[0]["value"] > 0
            runs = _series(client, "monitor_run")
            assert runs and all(b["ts"] - a["ts"] >= 0.45 for a, b in itertools.pairwise(runs))
            report = srv.app.state.services.store.monitoring.latest_report("clf")
            assert report is not None and report["run"]["trigger"] == "periodic"
    finally:
        srv.stop()
