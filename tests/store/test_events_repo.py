"""Outcome events on SQLite and PostgreSQL alike: tied to primary predictions, stored once, counted
per window in the log's (time, id) order, deleted with their predictions; the 0003 migration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, inspect, text

from driftgate.core.events import OutcomeEvent
from driftgate.core.points import MetricPoint
from driftgate.store import Store
from driftgate.store.database import MIGRATIONS
from driftgate.store.events import RowKey, Target


def _row(pid: str, ts: float, *, version: int = 1, role: str = "primary", endpoint: str = "e") -> dict[str, Any]:
    return {
        "id": pid, "endpoint": endpoint, "model": "m", "version": version, "role": role, "ts": ts,
        "inputs": {"x": 1.0}, "output": 1, "latency_ms": 1.0, "status": "ok",
    }  # fmt: skip


def test_events_tie_to_primary_rows_of_the_endpoint_once(store: Store) -> None:
    store.predictions.write(
        [_row("a", 1.0), _row("b", 2.0, version=2), _row("s", 2.0, role="shadow"), _row("o", 3.0, endpoint="other")]
    )
    targets = store.events.targets("e", ["a", "b", "s", "o", "zz"])
    assert targets == {"a": Target(1.0, "m", 1), "b": Target(2.0, "m", 2)}

    store.events.add("e", [OutcomeEvent("a", "user_retried", 10.0), OutcomeEvent("zz", "user_retried", 10.0)], targets)
    # A retried request, and a second name for the same prediction.
    store.events.add("e", [OutcomeEvent("a", "user_retried", 99.0), OutcomeEvent("a", "clicked", 11.0)], targets)
    assert store.events.for_predictions(["a", "b", "zz"]) == {"a": {"user_retried": 10.0, "clicked": 11.0}}
    store.events.add("e", [], targets)


def test_counts_follow_the_window_order_through_tied_times(store: Store) -> None:
    # Ten rows share ts 5.0 (one batch call): a window may start or end inside them.
    ids = [f"r{i:02d}" for i in range(20)]
    times = [float(i) if i < 5 else 5.0 if i < 15 else float(i) for i in range(20)]
    store.predictions.write([_row(pid, ts) for pid, ts in zip(ids, times, strict=True)])
    store.predictions.write([_row("v2", 6.0, version=2)])
    targets = store.events.targets("e", [*ids, "v2"])
    store.events.add("e", [OutcomeEvent(pid, "retried", 50.0) for pid in ids if int(pid[1:]) % 2 == 0], targets)
    store.events.add("e", [OutcomeEvent(pid, "clicked", 50.0) for pid in ids[8:12]], targets)
    store.events.add("e", [OutcomeEvent("v2", "retried", 50.0)], targets)

    for last in (3, 8, 12, 20):
        window = store.predictions.window("e", last=last)
        window = [r for r in window if r["version"] == 1]
        counts = store.events.count_window(
            "e", model="m", version=1, first=RowKey(window[0]["ts"], window[0]["id"]),
            last=RowKey(window[-1]["ts"], window[-1]["id"]),
        )  # fmt: skip
        in_window = {r["id"] for r in window}
        expected = {
            "retried": sum(1 for pid in in_window if int(pid[1:]) % 2 == 0),
            "clicked": len(in_window & set(ids[8:12])),
        }
        assert counts == {k: v for k, v in expected.items() if v}, last
    assert store.events.count_window("e", model="m", version=2, first=RowKey(0.0, ""), last=RowKey(99.0, "")) == {
        "retried": 1
    }


def test_retention_deletes_events_with_their_predictions(store: Store) -> None:
    store.predictions.write([_row("old", 1.0), _row("new", 100.0)])
    targets = store.events.targets("e", ["old", "new"])
    store.events.add("e", [OutcomeEvent("old", "retried", 2.0), OutcomeEvent("new", "retried", 101.0)], targets)
    assert store.predictions.delete_before(50.0) == 1
    assert store.events.for_predictions(["old", "new"]) == {"new": {"retried": 101.0}}


def _migrate(engine: Engine, step: Callable[[Config, str], None], revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        step(config, revision)


def test_0003_upgrades_a_0002_database_and_downgrades(db_url: str) -> None:
    engine = create_engine(db_url)
    _migrate(engine, command.upgrade, "0002")
    assert "outcome_events" not in inspect(engine).get_table_names()
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO alert_rules (id, name, endpoint, metric, op, threshold, severity, cooldown_seconds, notify, "
            "actions, enabled, created_at, created_by) VALUES ('r1', 'old', NULL, 'error_rate', '>', 0.1, 'warning', "
            "600, '[]', '[]', true, 1.0, 'api')"
        )
    engine.dispose()

    store = Store.open(db=db_url)  # migrates to head
    assert store.alerts.get_rule("old")["detail"] is None
    indexes = {i["name"] for i in inspect(store.engine).get_indexes("outcome_events")}
    assert "ix_outcome_events_endpoint_prediction_ts" in indexes
    store.monitoring.add_points([MetricPoint("e", "event_rate", 0.5, 1.0, 1, {"event": "retried"})])
    store.close()

    engine = create_engine(db_url)
    _migrate(engine, command.downgrade, "0002")
    assert "outcome_events" not in inspect(engine).get_table_names()
    assert "detail" not in {c["name"] for c in inspect(engine).get_columns("alert_rules")}
    engine.dispose()


def test_0005_carries_the_log_over_to_one_row_per_request_and_back(db_url: str) -> None:
    engine = create_engine(db_url)
    _migrate(engine, command.upgrade, "0004")
    old_id = "018f3a2b4c5d" + "ab" * 10  # the old shape: 12 digits of time, 20 random
    rows = [
        (old_id, "primary", '{"x": 1.5, "c": "a"}', "1", "[0.25, 0.75]", "ok", None),
        ("legacy-review", "primary", '{"x": 2.0, "c": "b"}', "0", "[0.9, 0.1]", "review", None),
        ("shadow-1", "shadow", '{"x": 1.5, "c": "a"}', "0", "[0.6, 0.4]", "ok", old_id),
    ]
    with engine.begin() as conn:
        for i, (pid, role, inputs, output, proba, status, parent) in enumerate(rows):
            conn.execute(
                text(
                    "INSERT INTO predictions (id, endpoint, model, version, role, ts, inputs, output, probabilities, "
                    "latency_ms, status, error, parent_id) VALUES (:id, 'ep', 'm', 1, :role, :ts, :inputs, :output, "
                    ":proba, 2.5, :status, NULL, :parent)"
                ),
                {
                    "id": pid,
                    "role": role,
                    "ts": 10.0 + i,
                    "inputs": inputs,
                    "output": output,
                    "proba": proba,
                    "status": status,
                    "parent": parent,
                },
            )
        conn.execute(
            text(
                "INSERT INTO labels (prediction_id, endpoint, label, source, ts) "
                "VALUES (:id, 'ep', '1', 'feedback', 20)"
            ),
            {"id": old_id},
        )
    engine.dispose()

    store = Store.open(db=db_url)  # migrates to head
    assert "predictions" not in inspect(store.engine).get_table_names()
    window = store.predictions.window("ep", last=10)
    assert [(p["id"], p["inputs"], p["output"], p["label"]) for p in window] == [
        (old_id, {"x": 1.5, "c": "a"}, 1, 1),
        ("legacy-review", {"x": 2.0, "c": "b"}, 0, None),
    ]
    assert [p["id"] for p in store.predictions.pending_review("ep")] == ["legacy-review"]
    assert store.predictions.known_ids("ep", [old_id, "shadow-1", old_id[:-1] + "0", "nope"]) == {old_id, "shadow-1"}
    shadow = store.predictions.get("shadow-1")
    assert shadow is not None and shadow["parent_id"] == old_id and shadow["probabilities"] == [0.6, 0.4]
    store.close()

    engine = create_engine(db_url)
    _migrate(engine, command.downgrade, "0004")
    with engine.connect() as conn:
        back = conn.execute(text("SELECT id, role, status, parent_id, latency_ms FROM predictions ORDER BY ts")).all()
    assert [tuple(r) for r in back] == [
        (old_id, "primary", "ok", None, 2.5),
        ("legacy-review", "primary", "review", None, 2.5),
        ("shadow-1", "shadow", "ok", old_id, 2.5),
    ]
    assert "ix_predictions_parent" in {i["name"] for i in inspect(engine).get_indexes("predictions")}
    _migrate(engine, command.upgrade, "head")
    engine.dispose()
