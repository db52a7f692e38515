"""Alert rules over HTTP, and alerts delivered to a real webhook receiver on loopback.

The engine holds no event-loop-bound state (each evaluation opens its own HTTP client), so the
tests drive it with `asyncio.run` from the test thread while the server runs in its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from driftgate.alerts.engine import AlertEngine
from driftgate.api.auth import REFRESH_SECONDS
from driftgate.core.points import MetricPoint
from tests.api.conftest import Receiver
from tests.conftest import LiveServer, make_server

RULE = {"name": "drift", "endpoint": "fraud", "metric": "data_drift_share", "op": ">", "threshold": 0.3}


@pytest.fixture
def allowing(tmp_path: Path) -> Iterator[LiveServer]:
    """A server that may call webhooks on 127.0.0.1 (where the receiver listens)."""
    srv = make_server(tmp_path, webhook_allow=["127.0.0.1"])
    # Fast retries for tests; the defaults (4 attempts, 0.5 s base) are what production gets.
    srv.app.state.services.alerts.webhooks.base_delay = 0.01
    yield srv
    srv.stop()


def engine_of(srv: LiveServer) -> AlertEngine:
    return srv.app.state.services.alerts


def evaluate(srv: LiveServer, value: float, metric: str = "data_drift_share") -> list[dict[str, Any]]:
    points = [MetricPoint("fraud", metric, value, ts=0.0)]
    return asyncio.run(engine_of(srv).evaluate("fraud", points))


def test_webhook_alert_end_to_end(allowing: LiveServer, receiver: Receiver) -> None:
    hook = f"{receiver.url}/ok/T000/B000/SECRET"
    with httpx.Client(base_url=allowing.url) as http:
        r = http.post("/v1/alert-rules", json={**RULE, "notify": [{"webhook": hook}, {"log": True}]})
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["id"] and created["created_at"] > 0 and created["created_by"] == "api"
        assert created["notify"] == [{"webhook": hook}, {"log": True}]
        assert created["cooldown_seconds"] == 600 and created["severity"] == "warning" and created["enabled"]

        # Read routes never show a webhook's path: Slack URLs carry their secret there.
        listed = http.get("/v1/alert-rules").json()["rules"]
        assert [r["name"] for r in listed] == ["drift"]
        assert listed[0]["notify"][0] == {"webhook": "http://127.0.0.1/..."}
        assert "SECRET" not in http.get("/v1/alert-rules/drift").text

        fired = evaluate(allowing, 0.42)
        assert len(fired) == 1
        assert receiver.paths() == ["/ok/T000/B000/SECRET"]
        body = receiver.requests[0][1]
        assert body["rule"] == "drift" and body["metric"] == "data_drift_share" and body["endpoint"] == "fraud"
        assert body["value"] == 0.42 and body["threshold"] == 0.3 and body["op"] == ">"
        assert body["severity"] == "warning" and body["alert_id"] == fired[0]["id"]
        assert body["time"].endswith("Z") and body["time"][:2] == "20"
        assert body["text"] == "[warning] driftgate alert 'drift' on endpoint 'fraud': data_drift_share = 0.42 > 0.3"

        alerts = http.get("/v1/alerts", params={"endpoint": "fraud"}).json()["alerts"]
        assert len(alerts) == 1
        hook_delivery, log_delivery = alerts[0]["deliveries"]
        assert hook_delivery == {"target": "http://127.0.0.1", "ok": True, "attempts": 1, "status": 200, "error": None}
        assert log_delivery["target"] == "log" and log_delivery["ok"]
        assert alerts[0]["rule"] == "drift" and alerts[0]["rule_id"] == created["id"]

        # Within the cooldown nothing fires and nothing is sent.
        assert evaluate(allowing, 0.9) == []
        assert len(receiver.requests) == 1
        assert len(http.get("/v1/alerts").json()["alerts"]) == 1
        metrics = http.get("/metrics").text
        assert 'driftgate_alerts_fired_total{endpoint="fraud",rule="drift",severity="warning"} 1.0' in metrics

        assert http.get("/v1/alerts", params={"rule": "other"}).json()["alerts"] == []
        assert http.get("/v1/alerts", params={"limit": 0}).status_code == 400


def test_retry_after_a_5xx(allowing: LiveServer, receiver: Receiver) -> None:
    receiver.scripts["/flaky"] = [500, 200]
    with httpx.Client(base_url=allowing.url) as http:
        rule = {**RULE, "notify": [{"webhook": f"{receiver.url}/flaky"}]}
        assert http.post("/v1/alert-rules", json=rule).status_code == 201
        fired = evaluate(allowing, 0.5)
        assert receiver.paths() == ["/flaky", "/flaky"]
        assert fired[0]["deliveries"] == [
            {"target": "http://127.0.0.1", "ok": True, "attempts": 2, "status": 200, "error": None}
        ]
        assert http.get("/v1/alerts").json()["alerts"][0]["deliveries"][0]["attempts"] == 2


def test_gives_up_after_the_attempts(allowing: LiveServer, receiver: Receiver) -> None:
    receiver.scripts["/down"] = [503]
    receiver.scripts["/bad"] = [400]
    with httpx.Client(base_url=allowing.url) as http:
        rule = {**RULE, "notify": [{"webhook": f"{receiver.url}/down"}, {"webhook": f"{receiver.url}/bad"}]}
        assert http.post("/v1/alert-rules", json=rule).status_code == 201
    down, bad = evaluate(allowing, 0.5)[0]["deliveries"]
    assert down == {"target": "http://127.0.0.1", "ok": False, "attempts": 4, "status": 503, "error": "HTTP 503"}
    # A 4xx other than 429 is the receiver saying no: retrying would not help.
    assert bad == {"target": "http://127.0.0.1", "ok": False, "attempts": 1, "status": 400, "error": "HTTP 400"}
    assert receiver.paths().count("/down") == 4


def test_redirects_are_not_followed(allowing: LiveServer, receiver: Receiver) -> None:
    receiver.scripts["/moved"] = [302]
    with httpx.Client(base_url=allowing.url) as http:
        rule = {**RULE, "notify": [{"webhook": f"{receiver.url}/moved"}]}
        assert http.post("/v1/alert-rules", json=rule).status_code == 201
        evaluate(allowing, 0.5)
        assert receiver.paths() == ["/moved"]  # /target got nothing
        delivery = http.get("/v1/alerts").json()["alerts"][0]["deliveries"][0]
    assert delivery["ok"] is False and delivery["status"] == 302 and delivery["attempts"] == 1
    assert "redirect not followed" in delivery["error"]


def test_unreachable_receiver_is_a_failed_delivery(allowing: LiveServer, receiver: Receiver) -> None:
    url = receiver.url
    receiver.close()
    with httpx.Client(base_url=allowing.url) as http:
        assert http.post("/v1/alert-rules", json={**RULE, "notify": [{"webhook": url}]}).status_code == 201
    delivery = evaluate(allowing, 0.5)[0]["deliveries"][0]
    assert delivery["ok"] is False and delivery["attempts"] == 4 and delivery["status"] is None
    assert "ConnectError" in delivery["error"]


def test_rollback_with_nothing_to_roll_back_is_recorded_as_failed(allowing: LiveServer) -> None:
    with httpx.Client(base_url=allowing.url) as http:
        assert http.post("/v1/alert-rules", json={**RULE, "actions": ["rollback"]}).status_code == 201
        evaluate(allowing, 0.5)
        alert = http.get("/v1/alerts").json()["alerts"][0]
    (action,) = alert["actions"]
    assert action["name"] == "rollback" and action["ok"] is False and "fraud" in action["detail"]


def test_rule_validation_and_ssrf_at_creation(server: LiveServer, receiver: Receiver) -> None:
    """Without --webhook-allow, internal targets are refused when the rule is created."""
    with httpx.Client(base_url=server.url) as http:
        for url, words in [
            ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is link-local; pass --webhook-allow"),
            (f"{receiver.url}/ok", "127.0.0.1 is loopback"),
            ("http://localhost:9/", "loopback"),
            ("http://0x7f000001/", "non-canonical"),
            ("http://user:pw@93.184.216.34/", "user info"),
        ]:
            r = http.post("/v1/alert-rules", json={**RULE, "notify": [{"webhook": url}]})
            assert r.status_code == 400, (url, r.text)
            assert words in r.json()["error"] and r.json()["field"] == "notify"
        for body, field in [
            ({**RULE, "metric": "drift"}, "metric"),
            ({**RULE, "actions": ["retrain", "reboot"]}, "actions"),
            ({**RULE, "op": "~"}, "op"),
            ({**RULE, "surprise": 1}, "surprise"),
            ([RULE], "body"),
        ]:
            r = http.post("/v1/alert-rules", json=body)
            assert r.status_code == 400 and r.json()["field"] == field, r.text
        assert "unknown action 'reboot'" in http.post("/v1/alert-rules", json={**RULE, "actions": ["reboot"]}).text
        assert receiver.requests == []

        assert http.post("/v1/alert-rules", json=RULE).status_code == 201
        r = http.post("/v1/alert-rules", json=RULE)
        assert r.status_code == 409 and "exists" in r.json()["error"]
        assert http.get("/v1/alert-rules/nope").status_code == 404
        assert http.delete("/v1/alert-rules/drift").status_code == 204
        assert http.delete("/v1/alert-rules/drift").status_code == 404
        assert http.get("/v1/alert-rules").json() == {"rules": []}


def test_scopes(server: LiveServer) -> None:
    svc = server.app.state.services
    predict_token = svc.store.tokens.create("predict", "app")
    admin_token = svc.store.tokens.create("admin", "ops")
    svc.tokens._loaded_at -= 2 * REFRESH_SECONDS
    predict = {"Authorization": f"Bearer {predict_token}"}
    admin = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=server.url) as http:
        assert http.post("/v1/alert-rules", json=RULE).status_code == 401
        assert http.post("/v1/alert-rules", json=RULE, headers=predict).status_code == 403
        assert http.post("/v1/alert-rules", json=RULE, headers=admin).status_code == 201
        assert http.get("/v1/alert-rules", headers=predict).status_code == 200
        assert http.get("/v1/alerts", headers=predict).status_code == 200
        assert http.delete("/v1/alert-rules/drift", headers=predict).status_code == 403
        assert http.delete("/v1/alert-rules/drift", headers=admin).status_code == 204
