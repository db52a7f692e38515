"""The loop closed: a monitor run finds drift, an alert rule fires once to a real webhook receiver,
and its action rolls the running rollout back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from driftgate.client import Client
from tests.api.conftest import Receiver
from tests.conftest import Artifacts, LiveServer, classification_data, make_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = make_server(tmp_path, webhook_allow=["127.0.0.1"], monitor_interval=0)
    yield srv
    srv.stop()


def test_drift_alert_notifies_once_and_rolls_the_rollout_back(
    client: Client, server: LiveServer, artifacts: Artifacts, receiver: Receiver
) -> None:
    for _ in range(2):
        client.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
    client.deploy("clf", "clf", 1)
    client.start_rollout("clf", "shadow", 2)
    rule = {
        "name": "drift-rollback",
        "endpoint": "clf",
        "metric": "data_drift_share",
        "op": ">",
        "threshold": 0.3,
        "cooldown_seconds": 600,
        "notify": [{"webhook": f"{receiver.url}/hook"}],
        "actions": ["rollback"],
    }
    assert client.http.post("/v1/alert-rules", json=rule).status_code == 201

    calm = classification_data(400, 21)[["x1", "x2", "colour"]]
    client.predict("clf", calm.to_dict(orient="records"))
    report = client.http.post("/v1/endpoints/clf/monitor").json()
    assert report["metrics"]["data_drift_share"] <= 0.3
    assert client.http.get("/v1/alerts").json()["alerts"] == []

    shifted = calm.assign(x1=calm["x1"] + 3, x2=calm["x2"] * 0.2)
    client.predict("clf", shifted.to_dict(orient="records"))
    report = client.http.post("/v1/endpoints/clf/monitor", json={"last": 400}).json()
    assert report["metrics"]["data_drift_share"] > 0.3

    alerts = client.http.get("/v1/alerts").json()["alerts"]
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["rule"] == "drift-rollback" and alert["endpoint"] == "clf"
    assert alert["deliveries"][0]["ok"] is True
    assert alert["actions"][0]["name"] == "rollback" and alert["actions"][0]["ok"] is True
    assert receiver.paths() == ["/hook"]
    assert receiver.requests[0][1]["metric"] == "data_drift_share" and receiver.requests[0][1]["text"]

    rollout = client.rollout("clf")
    assert rollout["state"] == "rolled_back" and "data_drift_share" in rollout["reason"]
    history = client.http.get("/v1/endpoints/clf/history").json()["history"]
    assert history[0]["action"] == "rollout.rollback" and history[0]["actor"] == "alert"

    # Within the cooldown the same finding fires nothing more.
    client.http.post("/v1/endpoints/clf/monitor", json={"last": 400})
    assert len(client.http.get("/v1/alerts").json()["alerts"]) == 1
    assert len(receiver.requests) == 1
