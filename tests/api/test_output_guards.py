"""Output guards through a real server: counted, deferred to review, monitored and alertable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftgate.client import Client
from driftgate.monitoring.guards import OutputLimits, check_outputs
from tests.api.test_metrics import scrape, total
from tests.conftest import Artifacts, LiveServer, classification_data, make_server

FEATURES = ["x1", "x2", "colour"]
GUARD = {"classes": [0], "min_confidence": 0.8}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = make_server(tmp_path, pipeline_modules=["tests.pipeline_steps"], log_flush_interval=0.05)
    yield srv
    srv.stop()


@pytest.fixture
def rows() -> pd.DataFrame:
    return classification_data(60, seed=21)[FEATURES]


def oracle(artifacts: Artifacts, rows: pd.DataFrame, guard: dict[str, Any]) -> tuple[np.ndarray, dict[str, int]]:
    """(violating rows, violations per kind) of the fitted model itself."""
    limits = OutputLimits(classes=tuple(guard["classes"]), min_confidence=guard["min_confidence"])
    result = check_outputs(limits, artifacts.model.predict(rows), artifacts.model.predict_proba(rows))
    assert 0 < result.violating.sum() < len(rows)
    return result.violating, result.counts()


def test_count_answers_every_row_and_counts_each_guard(
    deployed: Client, server: LiveServer, artifacts: Artifacts, rows: pd.DataFrame
) -> None:
    deployed.deploy("clf", "clf", 1, output_guard=GUARD)
    assert total(scrape(server.url), "driftgate_output_guard_violations_total", endpoint="clf") == 0
    answer = deployed.predict("clf", rows.to_dict("records"))
    assert answer["predictions"] == artifacts.model.predict(rows).tolist()
    assert "status" not in answer
    _, counts = oracle(artifacts, rows, GUARD)
    families = scrape(server.url)
    for kind in ("classes", "min_confidence"):
        got = total(families, "driftgate_output_guard_violations_total", endpoint="clf", version="1", guard=kind)
        assert got == counts[kind]
    assert total(families, "driftgate_output_guard_violations_total", guard="range") == 0


def test_review_defers_violations_to_the_review_queue(
    deployed: Client, server: LiveServer, artifacts: Artifacts, rows: pd.DataFrame
) -> None:
    post = {"post": [{"name": "names", "function": "tests.pipeline_steps:label_names"}]}
    deployed.deploy("clf", "clf", 1, output_guard={**GUARD, "action": "review"}, pipeline=post)
    violating, _ = oracle(artifacts, rows, GUARD)
    answer = deployed.predict("clf", rows.to_dict("records"))
    names = ["fraud" if p else "legit" for p in artifacts.model.predict(rows)]
    assert answer["status"] == ["review" if v else "ok" for v in violating]
    assert answer["predictions"] == [None if v else n for n, v in zip(names, violating, strict=True)]

    queue = deployed.review_queue("clf")
    deferred = {pid for pid, v in zip(answer["ids"], violating, strict=True) if v}
    assert {item["id"] for item in queue} == deferred
    assert all(item["answered"] is False and item["model_output"] in (0, 1) for item in queue)
    families = scrape(server.url)
    assert total(families, "driftgate_review_rows_total", endpoint="clf") == len(deferred)


def test_governed_audits_every_violation(
    deployed: Client, server: LiveServer, artifacts: Artifacts, rows: pd.DataFrame
) -> None:
    deployed.deploy("clf", "clf", 1, automation="governed", review_sample_rate=0.0, output_guard=GUARD)
    violating, _ = oracle(artifacts, rows, GUARD)
    answer = deployed.predict("clf", rows.to_dict("records"))
    assert answer["status"] == ["ok"] * len(rows)
    queue = deployed.review_queue("clf")
    assert {item["id"] for item in queue} == {pid for pid, v in zip(answer["ids"], violating, strict=True) if v}
    assert all(item["answered"] for item in queue)


def test_monitor_reports_the_violation_rate_and_a_rule_can_alert_on_it(
    deployed: Client, server: LiveServer, artifacts: Artifacts, rows: pd.DataFrame
) -> None:
    deployed.deploy("clf", "clf", 1, output_guard=GUARD)
    deployed.predict("clf", rows.to_dict("records"))
    rule = {
        "name": "guarded",
        "endpoint": "clf",
        "metric": "output_guard_violation_rate",
        "op": ">",
        "threshold": 0.05,
        "notify": [{"log": True}],
    }
    assert deployed.http.post("/v1/alert-rules", json=rule).status_code == 201

    report = deployed.http.post("/v1/endpoints/clf/monitor", json={}).json()
    violating, counts = oracle(artifacts, rows, GUARD)
    assert report["metrics"]["output_guard_violation_rate"] == pytest.approx(violating.mean())
    series = deployed.http.get("/v1/endpoints/clf/monitoring", params={"metric": "output_guard_violation_rate"})
    point = series.json()["points"][-1]
    assert point["value"] == pytest.approx(violating.mean())
    assert point["detail"]["by_guard"] == pytest.approx({k: c / len(rows) for k, c in counts.items()})
    alerts = deployed.http.get("/v1/alerts", params={"endpoint": "clf"}).json()["alerts"]
    assert [(a["rule"], a["metric"]) for a in alerts] == [("guarded", "output_guard_violation_rate")]

    # Without a guard the metric is not reported.
    deployed.deploy("clf", "clf", 1)
    report = deployed.http.post("/v1/endpoints/clf/monitor", json={}).json()
    assert "output_guard_violation_rate" not in report["metrics"]


def test_regression_range_guard(client: Client, server: LiveServer, artifacts: Artifacts, rows: pd.DataFrame) -> None:
    client.register_model("reg", artifacts.regression_skops, "sklearn", reference=artifacts.reference_csv)
    client.deploy("reg", "reg", 1, output_guard={"min": -2.0, "max": 2.0, "action": "review"})
    expected = client.predict("reg", rows.to_dict("records"))
    outside = [abs(p) > 2.0 if p is not None else True for p in expected["predictions"]]
    assert expected["status"] == ["review" if o else "ok" for o in outside]
    assert 0 < sum(outside) < len(rows)
    assert all(p is None for p, o in zip(expected["predictions"], outside, strict=True) if o)
    families = scrape(server.url)
    assert total(families, "driftgate_output_guard_violations_total", endpoint="reg", guard="range") == sum(outside)


@pytest.mark.parametrize(
    ("model", "guard", "field", "words"),
    [
        ("reg", {"min_confidence": 0.5}, "output_guard.min_confidence", "needs a classifier"),
        ("clf", {"min": 1.0, "max": 0.0}, "output_guard", "must not be above max"),
        ("clf", {"action": "review"}, "output_guard", "at least one of"),
        ("clf", {"classes": []}, "output_guard.classes", "at least 1 item"),
        ("clf", {"min_confidence": 1.5}, "output_guard.min_confidence", "less than or equal to 1"),
        ("clf", {"min": 0, "action": "block"}, "output_guard.action", "'count' or 'review'"),
    ],
)
def test_bad_guards_are_refused_at_put(
    deployed: Client, artifacts: Artifacts, model: str, guard: dict[str, Any], field: str, words: str
) -> None:
    deployed.register_model("reg", artifacts.regression_skops, "sklearn", reference=artifacts.reference_csv)
    r = deployed.http.put("/v1/endpoints/clf", json={"model": model, "version": 1, "output_guard": guard})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field and words in r.json()["error"], r.json()
    assert deployed.endpoint("clf")["config"]["output_guard"] is None
