"""The store against SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import inspect

from driftgate.errors import BadRequest, EndpointNotFound, ModelNotFound
from driftgate.store import Store


def _record(name: str = "m") -> dict:
    return {
        "name": name,
        "format": "sklearn",
        "artifact_kind": "skops",
        "artifact_sha256": "0" * 64,
        "input_schema": {"features": [{"name": "x", "kind": "numeric"}]},
        "output": {"kind": "regression"},
        "target": None,
        "reference_rows": 0,
        "lineage": {},
        "metrics": {},
        "description": None,
    }


def test_migrations_create_every_table(store: Store) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert {"models", "model_versions", "artifacts", "endpoints", "prediction_batches", "labels", "tokens"} <= tables
    assert "alembic_version" in tables


def test_reopening_is_idempotent(db_url: str) -> None:
    Store.open(db=db_url).close()
    again = Store.open(db=db_url)
    assert again.models.names() == []
    again.close()


def test_versions_are_numbered_and_immutable(store: Store) -> None:
    v1 = store.models.add_version(_record(), b"artifact-1", b"reference")
    v2 = store.models.add_version(_record(), b"artifact-2", None)
    assert (v1.version, v2.version) == (1, 2)
    assert store.models.blob("m", 1, "model") == b"artifact-1"
    assert store.models.blob("m", 1, "reference") == b"reference"
    assert store.models.blob("m", 2, "reference") is None
    assert [v.version for v in store.models.versions("m")] == [1, 2]
    assert store.models.resolve("m", "latest") == 2


def test_concurrent_registrations_get_distinct_versions(store: Store) -> None:
    numbers: list[int] = []

    def add() -> None:
        numbers.append(store.models.add_version(_record("c"), b"a", None).version)

    threads = [threading.Thread(target=add) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(numbers) == [1, 2, 3, 4, 5, 6]


def test_aliases(store: Store) -> None:
    store.models.add_version(_record(), b"a", None)
    store.models.add_version(_record(), b"b", None)
    store.models.set_alias("m", "champion", 1)
    store.models.set_alias("m", "champion", 2)
    assert store.models.aliases("m") == {"champion": 2}
    assert store.models.resolve("m", "champion") == 2
    with pytest.raises(BadRequest):
        store.models.set_alias("m", "latest", 1)
    with pytest.raises(ModelNotFound):
        store.models.set_alias("m", "x", 9)
    with pytest.raises(ModelNotFound):
        store.models.resolve("m", "nope")


def test_endpoint_revisions_increase_and_are_audited(store: Store) -> None:
    r1 = store.endpoints.put("e", {"model": "m", "version": 1}, actor="alice", reason="first")
    r2 = store.endpoints.put("e", {"model": "m", "version": 2}, actor="bob", reason="second")
    assert r2 > r1
    assert store.endpoints.get("e") == ({"model": "m", "version": 2}, r2)
    assert store.endpoints.head_revision() == r2
    assert set(store.endpoints.changed_since(r1)) == {"e"}
    assert store.endpoints.changed_since(r2) == {}
    history = store.endpoints.history("e")
    assert [h["actor"] for h in history] == ["bob", "alice"]
    with pytest.raises(EndpointNotFound):
        store.endpoints.get("missing")


def test_tokens_are_stored_hashed(store: Store) -> None:
    token = store.tokens.create("predict", "ci")
    scopes = store.tokens.scopes_by_digest()
    assert list(scopes.values()) == ["predict"]
    assert token not in scopes
    listed = store.tokens.list()
    assert store.tokens.revoke(listed[0]["id"])
    assert store.tokens.scopes_by_digest() == {}
    with pytest.raises(BadRequest):
        store.tokens.create("root")


def _row(pid: str, ts: float, status: str = "ok") -> dict:
    return {
        "id": pid, "endpoint": "e", "model": "m", "version": 1, "role": "primary", "ts": ts,
        "inputs": {"x": 1.0}, "output": 1, "probabilities": [0.2, 0.8], "latency_ms": 1.0,
        "status": status, "error": None,
    }


def test_predictions_and_labels_join_last_write_wins(store: Store) -> None:
    store.predictions.write([_row("a", 1.0), _row("b", 2.0), _row("c", 3.0, "review")])
    store.predictions.write([_row("a", 1.0)])  # a replayed batch is ignored, not an error
    assert store.predictions.count("e") == 3
    assert store.predictions.known_ids("e", ["a", "zz"]) == {"a"}
    store.predictions.add_labels("e", [("a", 0)])
    store.predictions.add_labels("e", [("a", 1), ("b", 0)])
    rows = store.predictions.window("e")
    assert [(r["id"], r["label"]) for r in rows] == [("a", 1), ("b", 0), ("c", None)]
    assert [r["id"] for r in store.predictions.window("e", last=2)] == ["b", "c"]
    assert [r["id"] for r in store.predictions.window("e", since=2.0)] == ["b", "c"]
    assert [r["id"] for r in store.predictions.pending_review("e")] == ["c"]
    store.predictions.add_labels("e", [("c", 1)], source="review")
    assert store.predictions.pending_review("e") == []
