"""The alert engine and its repository on real stores (SQLite and PostgreSQL): matching, cooldown
deduplication (within one engine and across replicas), actions, the log notifier and history."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from driftgate.alerts.engine import AlertEngine
from driftgate.alerts.rules import parse_rule
from driftgate.core.points import MetricPoint
from driftgate.errors import Conflict, NotFound
from driftgate.store import Store

T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def add_rule(store: Store, **fields: Any) -> dict[str, Any]:
    body = {"name": "drift", "endpoint": "fraud", "metric": "data_drift_share", "op": ">", "threshold": 0.3, **fields}
    return store.alerts.create_rule(parse_rule(body).stored(), actor="test")


def point(value: float | None, metric: str = "data_drift_share", endpoint: str = "fraud", **kw: Any) -> MetricPoint:
    return MetricPoint(endpoint=endpoint, metric=metric, value=value, ts=T0, **kw)


def engine(store: Store, clock: Clock | None = None, **kw: Any) -> AlertEngine:
    return AlertEngine(store, allow=[], clock=clock or Clock(), attempts=2, base_delay=0.01, **kw)


def test_fires_once_then_not_within_cooldown_then_again(store: Store) -> None:
    add_rule(store, cooldown_seconds=600)
    clock = Clock()
    registry = CollectorRegistry()
    eng = engine(store, clock, registry=registry)

    fired = asyncio.run(eng.evaluate("fraud", [point(0.5)]))
    assert len(fired) == 1
    alert = fired[0]
    assert alert["rule"] == "drift" and alert["endpoint"] == "fraud" and alert["value"] == 0.5
    assert alert["op"] == ">" and alert["threshold"] == 0.3 and alert["severity"] == "warning"
    assert alert["fired_at"] == T0
    assert alert["message"] == "[warning] driftgate alert 'drift' on endpoint 'fraud': data_drift_share = 0.5 > 0.3"
    assert alert["deliveries"] == [{"target": "log", "ok": True, "attempts": 1, "status": None, "error": None}]

    clock.now = T0 + 599
    assert asyncio.run(eng.evaluate("fraud", [point(0.9)])) == []
    clock.now = T0 + 601
    again = asyncio.run(eng.evaluate("fraud", [point(0.7)]))
    assert [a["value"] for a in again] == [0.7]

    history = store.alerts.history()
    assert [a["value"] for a in history] == [0.7, 0.5]  # newest first
    assert history[1]["deliveries"][0]["ok"] is True
    sample = registry.get_sample_value(
        "driftgate_alerts_fired_total", {"rule": "drift", "endpoint": "fraud", "severity": "warning"}
    )
    assert sample == 2.0


def test_cooldown_is_per_endpoint_for_every_endpoint_rules(store: Store) -> None:
    add_rule(store, endpoint=None, metric="error_rate", op=">=", threshold=0.05)
    eng = engine(store)
    assert len(asyncio.run(eng.evaluate("a", [point(0.05, "error_rate", "a")]))) == 1
    assert len(asyncio.run(eng.evaluate("b", [point(0.10, "error_rate", "b")]))) == 1
    assert asyncio.run(eng.evaluate("a", [point(0.2, "error_rate", "a")])) == []
    assert {a["endpoint"] for a in store.alerts.history()} == {"a", "b"}


def test_what_does_not_fire(store: Store) -> None:
    add_rule(store)
    add_rule(store, name="off", enabled=False, threshold=0.0)
    add_rule(store, name="acc", metric="accuracy", op="<", threshold=0.8)
    eng = engine(store)
    points = [
        point(0.2),  # below the threshold
        point(None, "accuracy"),  # no value this run
        point(float("nan"), "accuracy", version=2),
        point(0.99, endpoint="other"),  # another endpoint's point
        point(0.99, "error_rate"),  # a metric no rule watches
    ]
    assert asyncio.run(eng.evaluate("fraud", points)) == []
    # A rule for endpoint 'fraud' does not watch 'other'.
    assert asyncio.run(eng.evaluate("other", [point(0.99, endpoint="other")])) == []
    assert store.alerts.history() == []


def test_endpoint_wide_value_is_judged_first(store: Store) -> None:
    add_rule(store, metric="accuracy", op="<", threshold=0.8)
    fired = asyncio.run(engine(store).evaluate("fraud", [point(0.5, "accuracy", version=2), point(0.7, "accuracy")]))
    assert [a["value"] for a in fired] == [0.7]


def test_event_rate_rules_with_and_without_a_selector(store: Store) -> None:
    add_rule(store, name="retried", metric="event_rate", threshold=0.2, detail={"event": "user_retried"})
    add_rule(store, name="any", metric="event_rate", threshold=0.4)
    clicked, retried = ({"event": "clicked"}, {"event": "user_retried"})
    eng = engine(store)
    # 'clicked' is high but the selector names 'user_retried'; the rule without one fires on 'clicked'.
    fired = asyncio.run(
        eng.evaluate("fraud", [point(0.5, "event_rate", detail=clicked), point(0.1, "event_rate", detail=retried)])
    )
    assert [(a["rule"], a["detail"], a["value"]) for a in fired] == [("any", clicked, 0.5)]
    assert fired[0]["message"].endswith('event_rate{event="clicked"} = 0.5 > 0.4')
    fired = asyncio.run(eng.evaluate("fraud", [point(0.3, "event_rate", detail=retried)]))
    assert [(a["rule"], a["detail"]) for a in fired] == [("retried", retried)]
    assert {a["rule"]: a["detail"] for a in store.alerts.history()} == {"any": clicked, "retried": retried}
    assert store.alerts.get_rule("retried")["detail"] == retried


def test_actions_recorded_never_raised(store: Store) -> None:
    add_rule(store, actions=["rollback"])
    add_rule(store, name="broken", actions=["rollback"], metric="error_rate", threshold=0.1)
    calls: list[tuple[str, str]] = []

    async def rollback(endpoint: str, reason: str) -> dict[str, Any]:
        calls.append((endpoint, reason))
        if "error_rate" in reason:
            raise RuntimeError("no rollout is running")
        return {"ok": True, "rollout": 7}

    eng = engine(store, actions={"rollback": rollback})
    fired = asyncio.run(eng.evaluate("fraud", [point(0.5), point(0.5, "error_rate")]))
    by_rule = {a["rule"]: a for a in fired}
    assert by_rule["drift"]["actions"] == [{"name": "rollback", "ok": True, "detail": {"rollout": 7}}]
    assert by_rule["broken"]["actions"] == [
        {"name": "rollback", "ok": False, "detail": "RuntimeError: no rollout is running"}
    ]
    assert sorted(e for e, _ in calls) == ["fraud", "fraud"]
    assert any("data_drift_share = 0.5 > 0.3" in reason for _, reason in calls)
    stored = {a["rule"]: a for a in store.alerts.history()}
    assert stored["broken"]["actions"][0]["ok"] is False

    # Without a handler the action is recorded as not available.
    store.alerts.delete_rule("drift")
    add_rule(store, name="drift2", actions=["rollback"])
    fired = asyncio.run(engine(store).evaluate("fraud", [point(0.5)]))
    assert fired[0]["actions"] == [{"name": "rollback", "ok": False, "detail": "not available"}]


def test_log_notifier_and_refused_webhook(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    secret = "http://10.0.0.1/services/T000/B000/SECRET"
    add_rule(store, notify=[{"log": True}, {"webhook": secret}])
    with caplog.at_level(logging.WARNING, logger="driftgate.alerts"):
        fired = asyncio.run(engine(store).evaluate("fraud", [point(0.5)]))
    log_delivery, hook = fired[0]["deliveries"]
    assert log_delivery["ok"] is True
    # The address became private after the rule was created (or DNS changed): checked at delivery too.
    assert hook["target"] == "http://10.0.0.1" and hook["ok"] is False and hook["attempts"] == 0
    assert "10.0.0.1 is private" in hook["error"]
    lines = [r.getMessage() for r in caplog.records if r.name == "driftgate.alerts"]
    assert any("driftgate alert 'drift' on endpoint 'fraud'" in line for line in lines)
    assert all("SECRET" not in line for line in lines)
    assert store.alerts.history()[0]["deliveries"] == fired[0]["deliveries"]


def test_replicas_sharing_the_store_record_one_alert(store: Store, db_url: str) -> None:
    """Engines on separate connection pools (as replicas are) racing on one condition fire once."""
    add_rule(store, cooldown_seconds=3600)
    replicas = [Store.open(db=db_url) for _ in range(4)]
    try:
        engines = [engine(s) for s in replicas]
        results: list[list[dict[str, Any]]] = []
        barrier = threading.Barrier(len(engines))

        def run(eng: AlertEngine) -> None:
            barrier.wait()
            results.append(asyncio.run(eng.evaluate("fraud", [point(0.5)])))

        threads = [threading.Thread(target=run, args=(e,)) for e in engines]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=60)
        assert sum(len(r) for r in results) == 1
        assert len(store.alerts.history()) == 1
    finally:
        for s in replicas:
            s.close()


def test_fire_is_serialised_per_rule(store: Store, db_url: str) -> None:
    """The repository's check-and-insert itself, hammered from threads on separate pools."""
    rule = add_rule(store, cooldown_seconds=3600)
    replicas = [Store.open(db=db_url) for _ in range(6)]
    alert = {
        "rule_name": "drift",
        "endpoint": "fraud",
        "metric": "data_drift_share",
        "op": ">",
        "value": 0.5,
        "threshold": 0.3,
        "severity": "warning",
        "fired_at": T0,
        "message": "m",
    }
    ids: list[int | None] = []
    barrier = threading.Barrier(len(replicas))

    def fire(s: Store) -> None:
        barrier.wait()
        for i in range(5):
            ids.append(s.alerts.fire(rule["id"], {**alert, "fired_at": T0 + i}, 3600))

    try:
        threads = [threading.Thread(target=fire, args=(s,)) for s in replicas]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=60)
    finally:
        for s in replicas:
            s.close()
    assert len(ids) == 30 and len([i for i in ids if i is not None]) == 1


def test_rule_repository(store: Store) -> None:
    created = add_rule(store)
    assert created["id"] and created["created_by"] == "test" and created["created_at"] > 0
    assert store.alerts.get_rule("drift") == created
    with pytest.raises(Conflict, match="'drift' exists"):
        add_rule(store, metric="error_rate")
    add_rule(store, name="all", endpoint=None)
    add_rule(store, name="other", endpoint="other")
    assert [r["name"] for r in store.alerts.rules()] == ["all", "drift", "other"]
    assert [r["name"] for r in store.alerts.rules(endpoint="fraud")] == ["all", "drift"]
    store.alerts.delete_rule("drift")
    with pytest.raises(NotFound):
        store.alerts.get_rule("drift")
    with pytest.raises(NotFound):
        store.alerts.delete_rule("drift")
    # A deleted rule's id fires nothing.
    assert store.alerts.fire(created["id"], {"endpoint": "fraud", "fired_at": T0}, 0) is None


def test_history_filters(store: Store) -> None:
    add_rule(store, endpoint=None, cooldown_seconds=0)
    add_rule(store, name="acc", endpoint=None, metric="accuracy", op="<", threshold=0.9, cooldown_seconds=0)
    clock = Clock()
    eng = engine(store, clock)
    for i, endpoint in enumerate(["a", "b", "a"]):
        clock.now = T0 + 10 * i
        asyncio.run(eng.evaluate(endpoint, [point(0.5, endpoint=endpoint), point(0.5, "accuracy", endpoint)]))
    history = store.alerts.history
    assert len(history()) == 6
    assert {a["endpoint"] for a in history(endpoint="a")} == {"a"} and len(history(endpoint="a")) == 4
    assert {a["rule"] for a in history(rule="acc")} == {"acc"} and len(history(rule="acc")) == 3
    assert [a["fired_at"] for a in history(rule="acc", since=T0 + 10)] == [T0 + 20, T0 + 10]
    assert [a["fired_at"] for a in history(rule="acc", until=T0 + 10)] == [T0 + 10, T0]
    assert len(history(limit=2)) == 2 and history(limit=2)[0]["fired_at"] == T0 + 20
    assert history(endpoint="nowhere") == []


def test_httpx_request_logs_show_no_webhook_path(caplog: pytest.LogCaptureFixture) -> None:
    import httpx

    import driftgate.alerts.notify  # noqa: F401 - installs the filter

    record = logging.LogRecord(
        "httpx",
        logging.INFO,
        __file__,
        1,
        'HTTP Request: %s %s "%s %d %s"',
        ("POST", httpx.URL("https://hooks.slack.com/services/T0/B0/SECRET"), "HTTP/1.1", 200, "OK"),
        None,
    )
    for f in logging.getLogger("httpx").filters:
        f.filter(record)
    assert record.getMessage() == 'HTTP Request: POST https://hooks.slack.com/... "HTTP/1.1 200 OK"'
