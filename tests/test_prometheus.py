"""examples/prometheus against the real Prometheus (Debian's `prometheus` package, installed by
scripts/prometheus): promtool checks the config and the rules and runs the rules' unit tests, and a real
Prometheus scrapes a live driftgate server, evaluates the rules and answers queries on its HTTP API."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from driftgate.client import Client
from tests.api.test_monitoring import _send
from tests.conftest import LiveServer, classification_data, free_port

EXAMPLES = Path(__file__).parents[1] / "examples" / "prometheus"
WAIT_S = 60.0


def tool(name: str) -> str:
    """The path of a Prometheus binary. CI installs the package (scripts/prometheus), so there a missing
    binary fails; elsewhere the test is skipped, saying how to install it."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: scripts/prometheus installs Debian's prometheus package")
        pytest.skip(f"{name} is not installed: run scripts/prometheus (Debian's prometheus package)")
    return path


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], cwd=EXAMPLES, capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_config_and_rules_and_their_unit_tests_pass() -> None:
    for args in (
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "rules.yml"),
        ("test", "rules", "rules_test.yml"),
    ):
        done = promtool(*args)
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    names = {
        r.get("record") or r.get("alert")
        for g in yaml.safe_load((EXAMPLES / "rules.yml").read_text())["groups"]
        for r in g["rules"]
    }
    # What the issue asks the rules to cover: drift, error ratio, p99, estimated accuracy drop.
    assert {
        "DriftgateDataDrift",
        "DriftgateHighErrorRatio",
        "DriftgateHighLatencyP99",
        "DriftgateEstimatedAccuracyDrop",
    } <= names


@pytest.fixture
def prometheus(tmp_path: Path, server: LiveServer) -> Iterator[str]:
    """A real Prometheus on loopback scraping `server` every second, with examples' rules loaded."""
    binary = tool("prometheus")
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(EXAMPLES / "rules.yml")],
        "scrape_configs": [
            {
                "job_name": "driftgate",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [server.url.removeprefix("http://")]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        log.close()


def wait_for(what: str, probe: Callable[[], Any], log: Path) -> Any:
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            found = probe()
        except httpx.TransportError:  # Prometheus still starting
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"Prometheus never showed {what}; its log:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def query(prom: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=10)
    answer.raise_for_status()
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


@pytest.mark.slow
def test_real_prometheus_scrapes_monitoring_and_requests(
    deployed: Client, server: LiveServer, prometheus: str, tmp_path: Path
) -> None:
    log = tmp_path / "prometheus.log"
    shifted = classification_data(600, seed=8)
    shifted["x1"] += 1.5
    _send(deployed, shifted)
    answer = deployed.http.post("/v1/endpoints/clf/monitor", json={"last": 600})
    assert answer.status_code == 200, answer.text
    statistic = next(f for f in answer.json()["features"] if f["name"] == "x1")["statistic"]

    drifted = wait_for(
        "the drift gauge",
        lambda: query(prometheus, 'driftgate_feature_drifted{endpoint="clf", model="clf", version="1", feature="x1"}'),
        log,
    )
    assert float(drifted[0]["value"][1]) == 1.0
    (sample,) = query(prometheus, 'driftgate_feature_drift_statistic{endpoint="clf", feature="x1"}')
    assert float(sample["value"][1]) == pytest.approx(statistic)
    requests = wait_for(
        "the HTTP request counter",
        lambda: query(
            prometheus,
            'driftgate_http_requests_total{route="/v1/endpoints/{endpoint}/predict", method="POST", status="200"}',
        ),
        log,
    )
    assert float(requests[0]["value"][1]) == 6  # 600 rows in batches of 100
    # The target is up (Prometheus asks for OpenMetrics first) and the example rules evaluate on what driftgate exports.
    (target,) = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
    assert target["health"] == "up", target
    wait_for("the recording rule", lambda: query(prometheus, 'driftgate:features_drifted:count{endpoint="clf"}'), log)
    firing = wait_for(
        "the feature drift alert",
        lambda: [
            a
            for a in httpx.get(f"{prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
            if a["labels"]["alertname"] == "DriftgateFeatureDrift" and a["state"] == "firing"
        ],
        log,
    )
    assert firing[0]["labels"]["feature"] == "x1"
    rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    broken = [r for g in rules for r in g["rules"] if r.get("health") == "err"]
    assert not broken, broken


GRAFANA = Path(__file__).parents[1] / "examples" / "grafana" / "driftgate-dashboard.json"


def _grafana_exprs() -> dict[str, list[str]]:
    """Each panel's queries, with the dashboard's variables as Grafana would fill them for "All"."""
    import json

    filled = {"$job": ".*", "$endpoint": ".*", "$version": ".*", "$__rate_interval": "30s"}
    panels: dict[str, list[str]] = {}
    for panel in json.loads(GRAFANA.read_text())["panels"]:
        exprs = [t["expr"] for t in panel.get("targets", []) if t.get("expr")]
        for key, value in filled.items():
            exprs = [e.replace(key, value) for e in exprs]
        if exprs:
            panels[panel["title"]] = exprs
    return panels


@pytest.mark.slow
def test_every_grafana_panel_shows_data_on_a_healthy_server(
    deployed: Client, server: LiveServer, prometheus: str, tmp_path: Path
) -> None:
    """The issue's "No data" panels: on a healthy server with traffic and one monitor run, a real
    Prometheus answers at least one query of every panel of examples/grafana with data."""
    log = tmp_path / "prometheus.log"
    panels = _grafana_exprs()
    assert len(panels) >= 19  # every panel of the dashboard that queries something
    # A healthy server that is watched: one alert rule (its counter exists at 0 before it ever fires).
    rule = {"name": "drift", "endpoint": "clf", "metric": "data_drift_share", "op": ">", "threshold": 0.9}
    assert deployed.http.post("/v1/alert-rules", json={**rule, "notify": [{"log": True}]}).status_code == 201
    calm = classification_data(600, seed=3)
    _send(deployed, calm)
    answer = deployed.http.post("/v1/endpoints/clf/monitor", json={"last": 600})
    assert answer.status_code == 200, answer.text

    def empty_panels() -> list[str]:
        _send(deployed, calm.head(100))  # traffic goes on, so rates have two samples
        return [title for title, exprs in panels.items() if not any(query(prometheus, e) for e in exprs)]

    deadline = time.monotonic() + WAIT_S
    missing = list(panels)
    while missing and time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):  # Prometheus still starting
            missing = empty_panels()
        time.sleep(1)
    assert not missing, f"panels with no data: {missing}; Prometheus log:\n{log.read_text()[-2000:]}"
