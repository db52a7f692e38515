"""Retraining runs in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from driftgate.errors import Conflict, NotFound
from driftgate.store import Store

CHAMPION = {"model": "m", "version": 1}


def open_run(store: Store, endpoint: str = "ep", deadline: float = 1e12, now: float | None = None) -> dict:
    return store.retraining.open(
        endpoint, trigger="manual", actor="t", spec={"train": "a:b"}, champion=CHAMPION, deadline=deadline, now=now
    )


def test_one_open_run_per_endpoint(store: Store) -> None:
    first = open_run(store)
    assert first["state"] == "queued" and first["champion"] == CHAMPION and first["spec"] == {"train": "a:b"}
    with pytest.raises(Conflict, match=f"run {first['id']} queued"):
        open_run(store)
    other = open_run(store, endpoint="other")  # other endpoints are independent
    store.retraining.update(first["id"], state="running", started_at=1.0)
    with pytest.raises(Conflict, match="running"):
        open_run(store)
    ended = store.retraining.update(first["id"], state="failed", detail="x", finished_at=2.0)
    assert ended["state"] == "failed" and ended["detail"] == "x"
    second = open_run(store)
    assert [r["id"] for r in store.retraining.list("ep")] == [second["id"], first["id"]]
    assert {r["id"] for r in store.retraining.list()} == {first["id"], second["id"], other["id"]}
    assert store.retraining.list("ep", limit=1)[0]["id"] == second["id"]
    assert store.retraining.last_created("ep") == second["created_at"] and store.retraining.last_created("x") is None


def test_a_run_past_its_deadline_was_abandoned_and_gives_way(store: Store) -> None:
    stale = open_run(store, deadline=100.0, now=50.0)
    fresh = open_run(store, now=200.0)
    assert store.retraining.get(stale["id"])["state"] == "failed"
    assert "abandoned" in store.retraining.get(stale["id"])["detail"]
    assert store.retraining.get(fresh["id"])["state"] == "queued"


def test_an_unknown_run_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="no retraining run 7"):
        store.retraining.get(7)


def test_runs_opened_at_once_make_one_open_run(store: Store) -> None:
    from concurrent.futures import ThreadPoolExecutor

    for attempt in range(10):
        endpoint = f"race{attempt}"
        store.endpoints.put(endpoint, {"model": "m", "version": 1}, actor="t")  # PostgreSQL locks its row
        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(_try_open, [store] * 4, [endpoint] * 4))
        assert outcomes.count("opened") == 1, outcomes
        assert [r["state"] for r in store.retraining.list(endpoint)] == ["queued"]


def _try_open(store: Store, endpoint: str) -> str:
    try:
        open_run(store, endpoint=endpoint)
    except Conflict:
        return "conflict"
    return "opened"
