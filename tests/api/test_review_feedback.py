"""Partial automation defers low-confidence rows to a human; feedback labels join predictions by id."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftgate.client import Client, ServerError
from driftgate.store import Store
from tests.conftest import Artifacts, LiveServer, classification_data

FEATURES = ["x1", "x2", "colour"]
THRESHOLD = 0.9


def oracle(artifacts: Artifacts) -> Any:
    """The fitted scikit-learn pipeline itself, to compare the server against."""
    return artifacts.model


@pytest.fixture
def rows(artifacts: Artifacts) -> pd.DataFrame:
    """Rows of which some, but not all, the model is unsure about."""
    frame = classification_data(40, seed=11)[FEATURES]
    confidence = oracle(artifacts).predict_proba(frame).max(axis=1)
    assert 0 < (confidence < THRESHOLD).sum() < len(frame)
    return frame


@pytest.fixture
def partial(deployed: Client) -> Client:
    answer = deployed.deploy("clf", "clf", 1, automation="partial", review_threshold=THRESHOLD)
    assert answer["config"]["automation"] == "partial"
    return deployed


def store_of(server: LiveServer) -> Store:
    return server.app.state.services.store


def labels_in_store(server: LiveServer, endpoint: str) -> dict[str, object]:
    server.app.state.services.recorder.flush()
    return {r["id"]: r["label"] for r in store_of(server).predictions.window(endpoint)}


def test_partial_automation_defers_unsure_rows(partial: Client, rows: pd.DataFrame, artifacts: Artifacts) -> None:
    proba = oracle(artifacts).predict_proba(rows)
    expected = oracle(artifacts).predict(rows).tolist()
    unsure = proba.max(axis=1) < THRESHOLD

    answer = partial.predict("clf", rows.to_dict(orient="records"))
    assert answer["status"] == ["review" if u else "ok" for u in unsure]
    assert answer["predictions"] == [None if u else p for p, u in zip(expected, unsure, strict=True)]
    # Probabilities are still returned for every row, deferred or not.
    np.testing.assert_allclose(answer["probabilities"], proba, rtol=1e-12)
    assert len(answer["ids"]) == len(rows)

    # The other protocols defer the same rows.
    mlflow = partial.http.post("/v1/endpoints/clf/invocations", json={"dataframe_records": rows.to_dict("records")})
    assert mlflow.json()["predictions"] == answer["predictions"]
    v2 = partial.http.post(
        "/v2/models/clf/infer",
        json={
            "inputs": [
                {"name": "x1", "shape": [len(rows)], "datatype": "FP64", "data": rows["x1"].tolist()},
                {"name": "x2", "shape": [len(rows)], "datatype": "FP64", "data": rows["x2"].tolist()},
                {"name": "colour", "shape": [len(rows)], "datatype": "BYTES", "data": rows["colour"].tolist()},
            ]
        },
    ).json()
    outputs = {o["name"]: o for o in v2["outputs"]}
    assert outputs["status"]["data"] == answer["status"]


def test_review_queue_lists_deferred_rows_and_takes_decisions(
    partial: Client, server: LiveServer, rows: pd.DataFrame, artifacts: Artifacts
) -> None:
    answer = partial.predict("clf", rows.to_dict(orient="records"))
    deferred = {pid: i for i, (pid, s) in enumerate(zip(answer["ids"], answer["status"], strict=True)) if s == "review"}
    proba = oracle(artifacts).predict_proba(rows)
    expected = oracle(artifacts).predict(rows)

    queue = partial.review_queue("clf")
    assert {item["id"] for item in queue} == set(deferred)
    for item in queue:
        i = deferred[item["id"]]
        assert item["endpoint"] == "clf" and item["model"] == "clf" and item["version"] == 1
        assert item["inputs"]["colour"] == rows["colour"].iloc[i]
        assert item["inputs"]["x1"] == pytest.approx(rows["x1"].iloc[i])
        assert item["inputs"]["x2"] == pytest.approx(rows["x2"].iloc[i])
        assert item["model_output"] == expected[i]
        assert item["confidence"] == pytest.approx(proba[i].max())
        assert item["confidence"] < THRESHOLD
    assert partial.review_queue("other") == []
    assert {item["id"] for item in partial.review_queue()} == set(deferred)

    first, second, *_ = queue
    assert partial.review(first["id"], 1) == {"id": first["id"], "label": 1, "endpoint": "clf"}
    assert partial.review(second["id"], "fraud")["label"] == "fraud"
    left = {item["id"] for item in partial.review_queue("clf")}
    assert left == set(deferred) - {first["id"], second["id"]}

    stored = labels_in_store(server, "clf")
    assert stored[first["id"]] == 1
    assert stored[second["id"]] == "fraud"

    # A decision on something that was never predicted is a 404; a structured label is refused.
    with pytest.raises(ServerError) as missing:
        partial.review("no-such-id", 1)
    assert missing.value.status_code == 404
    bad = partial.http.post(f"/v1/review/{first['id']}", json={"label": [1, 2]})
    assert bad.status_code == 422 and "label" in bad.json()["error"]
    assert partial.http.get("/v1/review", params={"limit": 0}).status_code == 400


def test_feedback_accepts_known_ids_and_reports_unknown(deployed: Client, server: LiveServer) -> None:
    rows = classification_data(5, seed=2)[FEATURES].to_dict(orient="records")
    answer = deployed.predict("clf", rows)
    ids = answer["ids"]

    result = deployed.feedback("clf", [(ids[0], 1), (ids[1], 0), ("nope-1", 1), ("nope-2", 0)])
    assert result == {"accepted": 2, "unknown_ids": ["nope-1", "nope-2"]}
    # An id from this endpoint is unknown on another one.
    deployed.deploy("other", "clf", 1)
    assert deployed.feedback("other", [(ids[2], 1)]) == {"accepted": 0, "unknown_ids": [ids[2]]}
    assert deployed.feedback("clf", []) == {"accepted": 0, "unknown_ids": []}

    stored = labels_in_store(server, "clf")
    assert (stored[ids[0]], stored[ids[1]], stored[ids[2]]) == (1, 0, None)


def test_labels_sent_twice_last_write_wins(deployed: Client, server: LiveServer) -> None:
    rows = classification_data(3, seed=4)[FEATURES].to_dict(orient="records")
    ids = deployed.predict("clf", rows)["ids"]

    assert deployed.feedback("clf", [(ids[0], 0), (ids[1], 0)])["accepted"] == 2
    assert deployed.feedback("clf", [(ids[0], 1)])["accepted"] == 1
    # Within one request the later entry for an id wins too.
    assert deployed.feedback("clf", [(ids[1], 1), (ids[1], 0), (ids[2], 1)])["accepted"] == 2
    stored = labels_in_store(server, "clf")
    assert [stored[i] for i in ids] == [1, 0, 1]

    # A review decision and feedback are the same label: the last one wins whatever its source.
    deployed.review(ids[2], 0)
    assert labels_in_store(server, "clf")[ids[2]] == 0


@pytest.mark.parametrize("level", ["human_only", "assist"])
def test_human_levels_defer_every_row_and_hide_or_show_the_model(
    deployed: Client, server: LiveServer, rows: pd.DataFrame, artifacts: Artifacts, level: str
) -> None:
    deployed.deploy("clf", "clf", 1, automation=level)
    answer = deployed.predict("clf", rows.to_dict(orient="records"))
    assert answer["status"] == ["review"] * len(rows)
    assert answer["predictions"] == [None] * len(rows)
    assert "probabilities" not in answer
    queue = deployed.review_queue("clf")
    assert {item["id"] for item in queue} == set(answer["ids"])
    expected = oracle(artifacts).predict(rows).tolist()
    by_id = dict(zip(answer["ids"], expected, strict=True))
    for item in queue:
        # human_only: the model ran in shadow, the person decides unprompted; assist: its answer is shown.
        assert item["model_output"] == (None if level == "human_only" else by_id[item["id"]])
        assert (item["confidence"] is None) == (level == "human_only")
        assert item["answered"] is False
    # The model's output was still logged, so agreement with people can be measured later.
    stored = {r["id"]: r["output"] for r in store_of(server).predictions.window("clf")}
    assert [stored[i] for i in answer["ids"]] == expected


def test_governed_answers_everything_and_queues_a_sample_and_unsure_rows(
    deployed: Client, server: LiveServer, rows: pd.DataFrame, artifacts: Artifacts
) -> None:
    deployed.deploy("clf", "clf", 1, automation="governed", review_threshold=THRESHOLD, review_sample_rate=0.0)
    answer = deployed.predict("clf", rows.to_dict(orient="records"))
    assert answer["status"] == ["ok"] * len(rows)
    assert answer["predictions"] == oracle(artifacts).predict(rows).tolist()
    unsure = oracle(artifacts).predict_proba(rows).max(axis=1) < THRESHOLD
    queue = deployed.review_queue("clf")
    assert {item["id"] for item in queue} == {i for i, u in zip(answer["ids"], unsure, strict=True) if u}
    assert all(item["answered"] for item in queue)
    # A person overturns one: the decision becomes its label and it leaves the queue.
    deployed.review(queue[0]["id"], 1 - queue[0]["model_output"])
    assert len(deployed.review_queue("clf")) == len(queue) - 1
    assert labels_in_store(server, "clf")[queue[0]["id"]] == 1 - queue[0]["model_output"]

    deployed.deploy("clf", "clf", 1, automation="governed", review_sample_rate=1.0)
    sampled = deployed.predict("clf", rows.to_dict(orient="records"))
    assert sampled["status"] == ["ok"] * len(rows)
    assert set(sampled["ids"]) <= {item["id"] for item in deployed.review_queue("clf")}
