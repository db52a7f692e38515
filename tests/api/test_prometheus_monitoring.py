"""Prometheus sees monitoring: gauges from monitor runs, counters at 0, HTTP answers by route,
OpenMetrics on request, the optional `metrics` token scope (issue 21)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from driftgate.api.auth import REFRESH_SECONDS
from driftgate.client import Client, ServerError
from driftgate.core.points import MetricPoint
from driftgate.serving.monitor_metrics import MonitorGauges
from driftgate.store import Store
from tests.api.test_metrics import two_workers  # noqa: F401 (a fixture)
from tests.api.test_monitoring import _send
from tests.conftest import Artifacts, LiveServer, classification_data, make_server

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    """The one sample named `name` whose labels include `labels`, None if there is none."""
    hits = [v for (n, ls), v in found.items() if n == name and set(labels.items()) <= ls]
    assert len(hits) <= 1, (name, labels, hits)
    return hits[0] if hits else None


def scrape(url: str, **headers: str) -> Samples:
    answer = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    return samples(answer.text)


# ---- the gauges from one monitor run's points ------------------------------------------------------


def run_points(version: int, ts: float, *, labelled: bool) -> list[MetricPoint]:
    """Points as `Monitor.compute` writes them (names and details as in monitoring/measures.py)."""

    def p(metric: str, v: float | None, **detail: object) -> MetricPoint:
        return MetricPoint("fraud", metric, v, ts, version, dict(detail))

    points = [
        p("error_rate", 0.02),
        p("latency_p99_ms", 41.0, calls=10),
        p("missing_rate", 0.1, by_feature={"amount": 0.2, "country": 0.0}),
        p("class_share", 0.7, **{"class": 0}),
        p("class_share", 0.3, **{"class": 1}),
        p("data_drift_share", 0.5, drifted=True, n_drifted=1),
        p("feature_drift", 1.0, feature="amount", statistic=0.4, threshold=0.1, p_value=1e-9, drifted=True),
        p("feature_drift", 0.0, feature="country", statistic=0.01, threshold=0.1, p_value=0.8, drifted=False),
        p("prediction_drift", 1.0, feature="__prediction__", statistic=0.3, p_value=0.001, drifted=True),
        p("estimated_roc_auc", 0.81, lower=0.78, upper=0.84, reference=0.9),
        p("concept_drift", 0.0, fired=False),
        p("event_rate", 0.05, event="user_retried"),
        p("mean_confidence", None),  # not finite: no sample
    ]
    if labelled:
        points.append(p("roc_auc", 0.79, labelled=200.0))
    return points


def test_gauges_follow_each_run_and_the_versions_served() -> None:
    registry = CollectorRegistry()
    served = {("fraud", 1): "gbm", ("fraud", 2): "gbm"}
    gauges = MonitorGauges(
        registry,
        lambda endpoint, version: served.get((endpoint, version)),
        lambda: {(e, m, str(v)) for (e, v), m in served.items()},
    )
    gauges.record("fraud", run_points(1, 1000.0, labelled=True))
    gauges.record("fraud", run_points(2, 1001.0, labelled=False))
    found = samples(generate_latest(registry).decode())
    v1 = {"endpoint": "fraud", "model": "gbm", "version": "1"}
    assert value(found, "driftgate_data_drift_share", **v1) == 0.5
    assert value(found, "driftgate_data_drifted", **v1) == 1.0
    assert value(found, "driftgate_feature_drifted", **v1, feature="amount") == 1.0
    assert value(found, "driftgate_feature_drifted", **v1, feature="country") == 0.0
    assert value(found, "driftgate_feature_drift_statistic", **v1, feature="amount") == 0.4
    assert value(found, "driftgate_feature_drift_p_value", **v1, feature="country") == 0.8
    assert value(found, "driftgate_feature_drift_threshold", **v1, feature="amount") == 0.1
    assert value(found, "driftgate_prediction_drift", **v1) == 1.0
    assert value(found, "driftgate_prediction_drift_p_value", **v1) == 0.001
    assert value(found, "driftgate_estimated_roc_auc", **v1) == 0.81
    assert value(found, "driftgate_estimated_roc_auc_lower", **v1) == 0.78
    assert value(found, "driftgate_estimated_roc_auc_reference", **v1) == 0.9
    assert value(found, "driftgate_realised_roc_auc", **v1) == 0.79
    assert value(found, "driftgate_concept_drift", **v1) == 0.0
    assert value(found, "driftgate_monitor_metric", **v1, metric="error_rate") == 0.02
    assert value(found, "driftgate_monitor_metric", **v1, metric="latency_p99_ms") == 41.0
    assert value(found, "driftgate_monitor_metric", **v1, metric="mean_confidence") is None
    assert value(found, "driftgate_monitor_feature_metric", **v1, metric="missing_rate", feature="amount") == 0.2
    assert value(found, "driftgate_monitor_class_share", **v1, **{"class": "1"}) == 0.3
    assert value(found, "driftgate_monitor_event_rate", **v1, event="user_retried") == 0.05
    assert value(found, "driftgate_monitor_last_run_timestamp_seconds", **v1) == 1000.0
    assert value(found, "driftgate_monitor_last_run_timestamp_seconds", version="2") == 1001.0
    assert value(found, "driftgate_realised_roc_auc", version="2") is None

    # A later run of v1 without labels: its realised series goes, the others take the new values.
    gauges.record("fraud", run_points(1, 1002.0, labelled=False))
    found = samples(generate_latest(registry).decode())
    assert value(found, "driftgate_realised_roc_auc", **v1) is None
    assert value(found, "driftgate_monitor_last_run_timestamp_seconds", **v1) == 1002.0

    # v1 is no longer served: every series of it goes; v2's stay. A run of an unserved version adds none.
    del served[("fraud", 1)]
    gauges.prune()
    gauges.record("fraud", run_points(7, 1003.0, labelled=True))
    found = samples(generate_latest(registry).decode())
    assert not [k for k in found if ("version", "1") in k[1] or ("version", "7") in k[1]]
    assert value(found, "driftgate_data_drift_share", version="2") == 0.5
    assert gauges.held() == {("fraud", "gbm", "2")}


# ---- through a live server ----------------------------------------------------------------------


def test_monitor_run_and_counters_seen_by_a_scrape(deployed: Client, server: LiveServer, artifacts: Artifacts) -> None:
    rule = {
        "name": "drift",
        "endpoint": "clf",
        "metric": "data_drift_share",
        "op": ">",
        "threshold": 0.2,
        "severity": "warning",
        "cooldown_seconds": 600,
    }
    assert deployed.http.post("/v1/alert-rules", json=rule).status_code == 201
    # Before any prediction or alert: every counter a ratio or increase() needs is there, at 0.
    found = scrape(server.url)
    clf1 = {"endpoint": "clf", "version": "1", "role": "primary"}
    for status in ("ok", "error", "timeout", "shed"):
        assert value(found, "driftgate_requests_total", **clf1, status=status) == 0, status
    assert value(found, "driftgate_log_dropped_rows_total", **clf1) == 0
    assert value(found, "driftgate_review_rows_total", endpoint="clf") == 0
    assert value(found, "driftgate_shed_requests_total", endpoint="clf", reason="log_full") == 0
    assert value(found, "driftgate_model_shed_requests_total", **clf1, reason="stuck") == 0
    fired = {"rule": "drift", "endpoint": "clf", "severity": "warning"}
    assert value(found, "driftgate_alerts_fired_total", **fired) == 0
    assert value(found, "driftgate_served_version", endpoint="clf", model="clf", version="1", role="primary") == 1
    assert value(found, "driftgate_data_drift_share", endpoint="clf") is None  # no monitor run yet

    shifted = classification_data(600, seed=8)
    shifted["x1"] += 1.5
    _send(deployed, shifted)
    answer = deployed.http.post("/v1/endpoints/clf/monitor", json={"last": 600})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    found = scrape(server.url)
    key = {"endpoint": "clf", "model": "clf", "version": "1"}
    assert value(found, "driftgate_data_drift_share", **key) == pytest.approx(report["metrics"]["data_drift_share"])
    assert value(found, "driftgate_feature_drifted", **key, feature="x1") == 1.0
    x1 = next(f for f in report["features"] if f["name"] == "x1")
    assert value(found, "driftgate_feature_drift_statistic", **key, feature="x1") == pytest.approx(x1["statistic"])
    assert value(found, "driftgate_feature_drift_p_value", **key, feature="x1") == pytest.approx(x1["p_value"])
    assert value(found, "driftgate_prediction_drift", **key) == report["metrics"]["prediction_drift"]
    estimated = report["metrics"]["estimated_accuracy"]
    assert value(found, "driftgate_estimated_accuracy", **key) == pytest.approx(estimated)
    assert value(found, "driftgate_monitor_metric", **key, metric="error_rate") == 0.0
    assert value(found, "driftgate_monitor_last_run_timestamp_seconds", **key) == pytest.approx(report["run"]["ts"])
    assert value(found, "driftgate_alerts_fired_total", **fired) == 1
    assert value(found, "driftgate_requests_total", **clf1, status="ok") == 6

    # Version 2 replaces version 1: v1's monitoring series and served-version series go.
    deployed.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
    deployed.deploy("clf", "clf", 2)
    found = scrape(server.url)
    assert value(found, "driftgate_data_drift_share", **key) is None
    assert value(found, "driftgate_served_version", endpoint="clf", version="1") is None
    assert value(found, "driftgate_requests_total", endpoint="clf", version="2", status="error") == 0


def test_http_answers_counted_by_route_template(deployed: Client, server: LiveServer) -> None:
    with httpx.Client(base_url=server.url) as http:
        assert http.post("/v1/endpoints/clf/predict", json={"instances": [{"x1": 1.0}]}).status_code == 422
        assert http.post("/v1/endpoints/nope/predict", json={"instances": [{"x1": 1.0}]}).status_code == 404
        big = b"x" * (server.settings.max_body_bytes + 1)
        assert http.post("/v1/endpoints/clf/predict", content=big).status_code == 413
        assert http.get("/no/such/path").status_code == 404
    found = scrape(server.url)
    route = "/v1/endpoints/{endpoint}/predict"
    requests = "driftgate_http_requests_total"
    assert value(found, requests, method="POST", route=route, status="422") == 1
    assert value(found, requests, method="POST", route=route, status="404") == 1
    assert value(found, requests, method="POST", route=route, status="413") == 1
    assert value(found, requests, method="GET", route="unmatched", status="404") == 1
    assert value(found, requests, method="PUT", route="/v1/endpoints/{endpoint}", status="200") == 1
    # Nothing carries a raw path.
    assert not [k for k in found if k[0] == requests and ("route", "/v1/endpoints/nope/predict") in k[1]]


def test_openmetrics_when_asked(deployed: Client, server: LiveServer) -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    answer = httpx.get(f"{server.url}/metrics", headers={"Accept": accept})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(answer.text)}
    assert families["driftgate_requests"].type == "counter"
    assert families["driftgate_served_version"].type == "gauge"
    # Without the Accept header (or refusing OpenMetrics): the classic text format.
    for headers in ({}, {"Accept": "application/openmetrics-text;q=0, text/plain"}):
        plain = httpx.get(f"{server.url}/metrics", headers=headers)
        assert plain.headers["content-type"].startswith("text/plain") and "# EOF" not in plain.text


def _tokens(server: LiveServer) -> dict[str, str]:
    store: Store = server.app.state.services.store
    tokens = {scope: store.tokens.create(scope, scope) for scope in ("predict", "admin", "metrics")}
    server.app.state.services.tokens._loaded_at -= 2 * REFRESH_SECONDS  # re-read the table now
    return tokens


def test_metrics_scope_when_the_server_asks_for_it(tmp_path: Path) -> None:
    server = make_server(tmp_path, metrics_auth=True)
    try:
        with httpx.Client(base_url=server.url) as http:
            assert http.get("/metrics").status_code == 200  # no token in the store yet: open, as the API
            tokens = _tokens(server)
            assert http.get("/metrics").status_code == 401
            assert http.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
            auth = {scope: {"Authorization": f"Bearer {t}"} for scope, t in tokens.items()}
            assert http.get("/metrics", headers=auth["predict"]).status_code == 403
            assert http.get("/metrics", headers=auth["metrics"]).status_code == 200
            assert http.get("/metrics", headers=auth["admin"]).status_code == 200
            # The metrics scope opens /metrics and nothing else.
            assert http.get("/v1/endpoints", headers=auth["metrics"]).status_code == 403
            assert http.get("/v1/endpoints", headers=auth["predict"]).status_code == 200
    finally:
        server.stop()


def test_metrics_stay_open_by_default(server: LiveServer) -> None:
    _tokens(server)
    with httpx.Client(base_url=server.url) as http:
        deadline = time.monotonic() + 10
        while http.get("/v1/models").status_code != 401:  # the tokens apply...
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert http.get("/metrics").status_code == 200  # ...and /metrics stays open, as before


@pytest.mark.slow
def test_two_workers_every_scrape_shows_the_monitor_run(
    two_workers: tuple[str, subprocess.Popen[str]],  # noqa: F811 (the fixture imported above)
    artifacts: Artifacts,
) -> None:
    """With `--workers 2` the gauges are file-backed: whichever worker ran the monitor and whichever
    answers the scrape, the run's values are there, and the counters exist at 0."""
    url, _ = two_workers
    with Client(url) as c:
        c.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
        c.deploy("clf", "clf", 1)
        shifted = classification_data(600, seed=8)
        shifted["x1"] += 1.5
        deadline = time.monotonic() + 30
        while True:  # until the worker that answers knows the endpoint
            try:
                _send(c, shifted)
                break
            except ServerError as exc:
                assert exc.status_code == 404 and time.monotonic() < deadline, exc
                time.sleep(0.2)
        answer = c.http.post("/v1/endpoints/clf/monitor", json={"last": 600})
        assert answer.status_code == 200, answer.text
    share = answer.json()["metrics"]["data_drift_share"]
    key = {"endpoint": "clf", "model": "clf", "version": "1"}
    counter = {"endpoint": "clf", "version": "1", "status": "error"}
    # The counters at 0 come from a worker that serves the endpoint, at a scrape it answers; on a loaded
    # machine the other worker may not have loaded the endpoint yet (it follows the store within a poll).
    deadline = time.monotonic() + 60
    while value(scrape(url, Connection="close"), "driftgate_requests_total", **counter) is None:
        assert time.monotonic() < deadline, "no worker created the request counters at 0"
        time.sleep(0.2)
    for _ in range(12):  # fresh connections: either worker answers
        found = scrape(url, Connection="close")
        assert value(found, "driftgate_data_drift_share", **key) == pytest.approx(share)
        assert value(found, "driftgate_feature_drifted", **key, feature="x1") == 1.0
        assert value(found, "driftgate_requests_total", **counter) == 0


def test_a_shadow_rollout_has_its_series_at_0(deployed: Client, server: LiveServer, artifacts: Artifacts) -> None:
    deployed.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
    deployed.start_rollout("clf", "shadow", 2)
    found = scrape(server.url)
    assert value(found, "driftgate_served_version", endpoint="clf", version="1", role="primary") == 1
    assert value(found, "driftgate_served_version", endpoint="clf", version="2", role="shadow") == 1
    shadow = {"endpoint": "clf", "version": "2", "role": "shadow"}
    assert value(found, "driftgate_requests_total", **shadow, status="error") == 0
    assert value(found, "driftgate_requests_total", **shadow, status="shed") is None  # shadows are never shed
    assert value(found, "driftgate_shadow_dropped_rows_total", endpoint="clf", version="2") == 0
    # No series for a role nothing is counted under.
    assert not [k for k in found if k[0] == "driftgate_requests_total" and ("role", "standby") in k[1]]
