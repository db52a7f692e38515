"""Feedback never answers "unknown" for an id the store cannot confirm: while SQLite is locked by
another connection the predictions' log rows cannot be written, so feedback for them is a 503 with
Retry-After (a client following the contract retries), and accepted once the lock is gone. Labels
are bounded in size."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from driftgate.client import Client
from tests.conftest import Artifacts, LiveServer, make_server

ROW = {"x1": 0.5, "x2": 3.0, "colour": "red"}


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = make_server(tmp_path)
    yield srv
    srv.stop()


@pytest.mark.slow
def test_feedback_answers_503_not_unknown_while_sqlite_is_locked(
    sqlite_server: LiveServer, artifacts: Artifacts
) -> None:
    with Client(sqlite_server.url) as client:
        client.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
        client.deploy("clf", "clf", 1)
    http = httpx.Client(base_url=sqlite_server.url, timeout=60)
    db = sqlite_server.settings.data_dir / "driftgate.db"
    locker = sqlite3.connect(db, timeout=30, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")  # no other connection may write until it ends
        answer = http.post("/v1/endpoints/clf/predict", json={"instances": [ROW, ROW]})
        assert answer.status_code == 200, answer.text
        ids = answer.json()["ids"]
        labels = {"labels": [{"id": pid, "label": 1} for pid in ids]}
        # The rows cannot reach the store: the answer is "retry", never unknown_ids.
        answer = http.post("/v1/endpoints/clf/feedback", json=labels)
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["retry-after"]) >= 1
        assert "unknown_ids" not in answer.json()
        # Outcome events are joined to prediction ids the same way.
        events = {"events": [{"id": pid, "name": "user_retried"} for pid in ids]}
        answer = http.post("/v1/endpoints/clf/events", json=events)
        assert answer.status_code == 503, answer.text
        assert "retry-after" in answer.headers
    finally:
        locker.rollback()
        locker.close()
    # The lock is gone: the parked rows are written and the labels accepted.
    deadline = time.monotonic() + 60
    while (answer := http.post("/v1/endpoints/clf/feedback", json=labels)).status_code == 503:
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.1)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 2, "unknown_ids": []}
    assert http.post("/v1/endpoints/clf/events", json=events).json() == {"accepted": 2, "unknown_ids": []}
    # An id that was never handed out is still reported as unknown once the store can confirm.
    answer = http.post("/v1/endpoints/clf/feedback", json={"labels": [{"id": "0" * 32, "label": 1}]})
    assert answer.json() == {"accepted": 0, "unknown_ids": ["0" * 32]}
    http.close()


def test_oversized_label_is_refused_naming_it(deployed: Client, server: LiveServer) -> None:
    answer = deployed.predict("clf", [ROW])
    pid = answer["ids"][0]
    limit = server.settings.max_label_bytes
    with httpx.Client(base_url=server.url) as http:
        body = {"labels": [{"id": pid, "label": 1}, {"id": pid, "label": "x" * (limit + 1)}]}
        answer = http.post("/v1/endpoints/clf/feedback", json=body)
        assert answer.status_code == 413, answer.text
        assert answer.json()["field"] == "labels[1].label"
        assert str(limit) in answer.json()["error"]
        # Up to the limit is fine (bytes, not characters: a 2-byte character counts twice).
        ok = http.post("/v1/endpoints/clf/feedback", json={"labels": [{"id": pid, "label": "x" * limit}]})
        assert ok.json() == {"accepted": 1, "unknown_ids": []}
        wide = http.post("/v1/endpoints/clf/feedback", json={"labels": [{"id": pid, "label": "é" * (limit // 2 + 1)}]})
        assert wide.status_code == 413
        # A reviewer's decision is stored as a label too.
        review = http.post(f"/v1/review/{pid}", json={"label": "x" * (limit + 1)})
        assert review.status_code == 413 and review.json()["field"] == "label", review.text
