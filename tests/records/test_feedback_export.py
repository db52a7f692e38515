"""Feedback through a real server; export and retention through the CLI commands."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from driftgate.cli.export import export, retention
from driftgate.client import Client
from driftgate.core.ids import new_ids
from driftgate.core.points import MetricPoint
from driftgate.core.rows import encode
from driftgate.records.recorder import LogBatch
from tests.conftest import LiveServer

ROWS = [{"x1": 0.5, "x2": 3.0, "colour": "red"}, {"x1": -1.0, "x2": 1.0, "colour": "blue"}]


def test_feedback_late_any_order_last_write_wins_unknown_ids(deployed: Client, server: LiveServer) -> None:
    first = deployed.predict("clf", ROWS)["ids"]
    second = deployed.predict("clf", ROWS)["ids"]
    ids = first + second
    # Reversed order, a duplicate within the request (the last one wins), an unknown id.
    answer = deployed.feedback("clf", [(ids[3], 0), (ids[2], 1), (ids[0], 0), (ids[0], 1), ("nope", 1)])
    assert answer == {"accepted": 3, "unknown_ids": ["nope"]}
    assert deployed.feedback("clf", [(ids[0], 0), (ids[1], 1)]) == {"accepted": 2, "unknown_ids": []}
    # A retry of the same request changes nothing.
    assert deployed.feedback("clf", [(ids[0], 0), (ids[1], 1)]) == {"accepted": 2, "unknown_ids": []}
    labels = {r["id"]: r["label"] for r in server.app.state.services.store.predictions.window("clf")}
    assert labels == {ids[0]: 0, ids[1]: 1, ids[2]: 1, ids[3]: 0}


def test_feedback_for_another_endpoint_is_unknown(deployed: Client) -> None:
    ids = deployed.predict("clf", ROWS[:1])["ids"]
    assert deployed.feedback("other", [(ids[0], 1)]) == {"accepted": 0, "unknown_ids": ids}


def test_feedback_rejects_a_malformed_body(deployed: Client) -> None:
    response = deployed.http.post("/v1/endpoints/clf/feedback", json={"labels": [{"label": 1}]})
    assert response.status_code == 400 and "labels[0]" in response.json()["error"]


def test_redacted_fields_never_reach_the_database_file(deployed: Client, server: LiveServer) -> None:
    deployed.deploy("clf", "clf", 1, redact={"colour": "drop", "x1": "hash"})
    deadline = time.monotonic() + 10
    while server.app.state.services.dataplane.state("clf").config.redact is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    deployed.predict("clf", [{"x1": 0.123456789, "x2": 1.0, "colour": "green"}])
    server.app.state.services.recorder.flush()
    row = server.app.state.services.store.predictions.window("clf", last=1)[0]
    assert "colour" not in row["inputs"] and row["inputs"]["x1"].startswith("sha256:")
    for path in (server.settings.data_dir).rglob("*"):
        if path.is_file():
            assert b"0.123456789" not in path.read_bytes(), path


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(export)
    app.command()(retention)
    return app


def _fill(store, now: float) -> list[str]:
    ids = []
    for age_days, version in ((10, 1), (2, 1), (0, 2)):
        frame = pd.DataFrame({"x1": [1.0, 2.0], "colour": ["red", "blue"], "id": ["a", "b"]})
        b = LogBatch("ep", "m", version, "primary", now - age_days * 86400, new_ids(2), frame, [0, 1], None, 1.0, "ok")
        store.predictions.write_rows(encode(b))
        ids += b.ids
    store.predictions.add_labels("ep", [(ids[0], 1), (ids[5], 0)])
    store.predictions.add_labels("ep", [(ids[0], 0)])  # the latest label is exported
    return ids


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_export_with_labels_and_flat_inputs(store, db_url: str, tmp_path: Path, suffix: str) -> None:
    now = time.time()
    ids = _fill(store, now)
    out = tmp_path / f"log.{suffix}"
    args = ["export", "ep", "--output", str(out), "--db", db_url, "--since", str(now - 5 * 86400), "--chunk-rows", "3"]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out) if suffix == "parquet" else pd.read_csv(out)
    assert sorted(frame["id"]) == sorted(ids[2:])
    assert pd.to_datetime(frame["ts"]).is_monotonic_increasing
    assert {"x1", "colour", "input.id", "prediction", "label", "ts"} <= set(frame.columns)
    assert frame.set_index("id").loc[ids[5], "label"] == 0
    assert frame["label"].isna().sum() == 3
    version_2 = CliRunner().invoke(_cli(), ["export", "ep", "-o", str(out), "--db", db_url, "--version", "2"])
    assert version_2.exit_code == 0
    assert len(pd.read_parquet(out) if suffix == "parquet" else pd.read_csv(out)) == 2


def test_export_refuses_an_unknown_format(tmp_path: Path) -> None:
    result = CliRunner().invoke(_cli(), ["export", "ep", "--output", str(tmp_path / "x.json")])
    assert result.exit_code != 0 and "parquet" in result.output


def test_retention_of_monitoring_points_and_reports(store, db_url: str) -> None:
    now = time.time()
    store.monitoring.add_points([MetricPoint("ep", "psi", 0.1, now - d * 86400) for d in (9, 8, 1, 0)])
    store.monitoring.add_report("ep", 1, now - 9 * 86400, {"n": 1})
    store.monitoring.add_report("ep", 1, now - 1 * 86400, {"n": 2})
    ids = _fill(store, now)
    result = CliRunner().invoke(_cli(), ["retention", "--monitoring-days", "5", "--db", db_url])
    assert result.exit_code == 0, result.output
    assert "deleted 2 monitoring points and 1 monitor reports" in result.output
    assert len(store.monitoring.series("ep", "psi")) == 2
    assert store.predictions.known_ids("ep", ids) == set(ids)  # the log has its own retention
    nothing = CliRunner().invoke(_cli(), ["retention", "--db", db_url])
    assert nothing.exit_code != 0 and "--monitoring-days" in nothing.output


def test_retention_deletes_old_rows_and_their_labels(store, db_url: str) -> None:
    ids = _fill(store, time.time())
    result = CliRunner().invoke(_cli(), ["retention", "--days", "5", "--db", db_url])
    assert result.exit_code == 0, result.output
    assert store.predictions.count("ep") == 4
    assert store.predictions.known_ids("ep", ids) == set(ids[2:])
    assert [r["label"] for r in store.predictions.window("ep") if r["label"] is not None] == [0]
