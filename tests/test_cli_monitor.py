"""`driftgate monitor ENDPOINT`: one monitor run on a real SQLite store with the server's own services,
or the newest stored report; tables and JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from driftgate.cli import app
from driftgate.store import Store
from tests.conftest import Artifacts, classification_data


def cli(data: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "--data-dir", str(data)], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def cli_json(data: Path, *args: str, code: int = 0) -> Any:
    status, output = cli(data, *args, "--json")
    assert status == code, output
    return json.loads(output)


@pytest.fixture
def scored(tmp_path: Path, artifacts: Artifacts) -> Path:
    """Endpoint 'clf' (the skops pipeline, reference with target) with 600 logged predictions of
    shifted data: x1 moved by +2, so x1 and the predictions drift and x2 does not."""
    data = tmp_path / "data"
    (tmp_path / "model.skops").write_bytes(artifacts.skops)
    (tmp_path / "reference.csv").write_bytes(artifacts.reference_csv)
    register = ["models", "register", "clf", str(tmp_path / "model.skops"), "--format", "sklearn"]
    code, output = cli(data, *register, "--reference", str(tmp_path / "reference.csv"), "--target", "y")
    assert code == 0, output
    assert cli(data, "deploy", "clf", "--model", "clf", "--version", "1")[0] == 0
    current = classification_data(600, 7)
    current["x1"] += 2.0  # y stays what it was before the shift: the model is now often wrong
    current.drop(columns="y").to_csv(tmp_path / "current.csv", index=False)
    current[["y"]].to_csv(tmp_path / "labels.csv", index=False)
    code, output = cli(data, "batch", "score", "clf", "--input", str(tmp_path / "current.csv"),
                       "--output", str(tmp_path / "out.parquet"))  # fmt: skip
    assert code == 0, output
    return data


@pytest.mark.slow
def test_monitor_runs_once_stores_the_report_and_judges_the_rules(scored: Path) -> None:
    data = scored
    code, output = cli(data, "monitor", "clf", "--last")
    assert code == 2 and "has no monitor report yet" in output and "driftgate monitor clf" in output
    rule = ["alerts", "rules", "create", "drift", "--metric", "data_drift_share", "--op", ">", "--threshold", "0"]
    assert cli(data, *rule, "--endpoint", "clf")[0] == 0

    report = cli_json(data, "monitor", "clf")
    assert report["window"]["endpoint"] == "clf" and report["window"]["rows"] == 600
    features = {f["name"]: f for f in report["features"]}
    assert set(features) == {"x1", "x2", "colour"}
    assert features["x1"]["drifted"] is True and features["x2"]["drifted"] is False
    assert report["dataset"]["n_drifted"] >= 1 and report["prediction"]["drifted"] is True
    assert "estimated_accuracy" in report["performance"]["estimated"]
    assert report["metrics"]["data_drift_share"] == pytest.approx(report["dataset"]["share_drifted"])

    # Stored like a server's run: the newest report is what GET .../monitoring/report answers.
    store = Store.open(data)
    try:
        stored = store.monitoring.latest_report("clf")
        alerts = store.alerts.history(endpoint="clf")
    finally:
        store.close()
    assert stored is not None and stored["run"]["ts"] == report["run"]["ts"]
    assert cli_json(data, "monitor", "clf", "--last") == json.loads(json.dumps(stored))
    # The rule judged the run's points, as the server's monitor does.
    assert [a["rule"] for a in alerts] == ["drift"]
    assert alerts[0]["value"] == pytest.approx(report["dataset"]["share_drifted"])

    code, output = cli(data, "monitor", "clf", "--last")
    assert code == 0, output
    rows = _rows(output)
    assert rows["x1"][-1] == "yes" and rows["x2"][-1] == "no" and rows["(prediction)"][-1] == "yes"
    assert "clf v1, 600 rows" in output and "dataset: yes drifted" in output
    assert "estimated" in output and rows["accuracy"][-1] == "no"  # the estimate's alert flag

    # A window, and a second run without alerts: stored, and the rule's cooldown untouched.
    report = cli_json(data, "monitor", "clf", "--rows", "100", "--no-alerts")
    assert report["window"]["rows"] == 100 and report["window"]["last"] == 100
    assert np.isfinite(report["dataset"]["share_drifted"])

    # Labels arrive: realised performance and the verdicts join the tables.
    ids = pd.read_parquet(data.parent / "out.parquet")["prediction_id"]
    labels = pd.read_csv(data.parent / "labels.csv")["y"]
    store = Store.open(data)
    try:
        store.predictions.add_labels("clf", list(zip(ids, labels.tolist(), strict=True)))
    finally:
        store.close()
    report = cli_json(data, "monitor", "clf", "--no-alerts")
    assert report["performance"]["current"]["n"] == 600
    assert report["concept_drift"]["performance_drift"]["fired"] is True
    code, output = cli(data, "monitor", "clf", "--last")
    assert code == 0, output
    assert "realised (n=600)" in output and "verdicts" in output
    rows = _rows(output)
    assert rows["performance"][:2] == ["drift", "yes"] and rows["concept"][:2] == ["drift", "yes"]


def _rows(output: str) -> dict[str, list[str]]:
    """Table rows by their first word (a later table's row of the same word wins)."""
    return {words[0]: words[1:] for words in (line.split() for line in output.splitlines()) if words}


@pytest.mark.slow
def test_monitor_errors_are_messages(scored: Path) -> None:
    data = scored
    answer = cli_json(data, "monitor", "nope", code=2)
    assert "no endpoint named 'nope'" in answer["error"]
    code, output = cli(data, "monitor", "nope", "--last")
    assert code == 2 and "no endpoint named 'nope'" in output
    code, output = cli(data, "monitor", "clf", "--since", "2030-01-02", "--until", "2030-01-01")
    assert code == 2 and "is after until" in output
    code, output = cli(data, "monitor", "clf", "--last", "--rows", "5")
    assert code == 2 and "takes no window" in output
    # An empty window is a report with a note, not an error.
    report = cli_json(data, "monitor", "clf", "--since", "2030-01-01")
    assert report["window"]["rows"] == 0 and any("no logged predictions" in n for n in report["notes"])
    code, output = cli(data, "monitor", "clf", "--since", "2030-01-01")
    assert code == 0 and "note: no logged predictions" in output
