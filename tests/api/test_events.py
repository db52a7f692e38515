"""Outcome events through a real server: stored once per prediction and name, validated field by field,
counted per monitor window as `event_rate`, and alertable per event."""

from __future__ import annotations

from typing import Any

import pytest

from driftgate.client import Client, ServerError
from driftgate.core.events import MAX_EVENTS
from driftgate.store import Store
from tests.conftest import LiveServer, classification_data


def _send(client: Client, n: int, seed: int, batch: int = 50) -> list[str]:
    frame = classification_data(n, seed=seed)[["x1", "x2", "colour"]]
    ids: list[str] = []
    for start in range(0, n, batch):
        ids += client.predict("clf", frame.iloc[start : start + batch])["ids"]
    return ids


def _store(server: LiveServer) -> Store:
    return server.app.state.services.store


def test_events_are_accepted_once_per_prediction_and_name(deployed: Client, server: LiveServer) -> None:
    ids = _send(deployed, 4, seed=1)
    answer = deployed.events(
        "clf",
        [
            (ids[0], "user_retried"),
            {"id": ids[0], "name": "user_retried", "ts": 5.0},  # a repeat within the request: the first wins
            (ids[1], "clicked", 1_700_000_000.5),
            ("nope", "clicked"),
            ("nope", "user_retried"),
        ],
    )
    assert answer == {"accepted": 2, "unknown_ids": ["nope"]}
    stored = _store(server).events.for_predictions(ids)
    assert set(stored) == {ids[0], ids[1]} and stored[ids[1]] == {"clicked": 1_700_000_000.5}
    first = stored[ids[0]]["user_retried"]
    assert first > 1_700_000_000  # "now", not the repeat's 5.0

    # A retried request is accepted again and changes nothing.
    assert deployed.events("clf", [(ids[0], "user_retried", 7.0)]) == {"accepted": 1, "unknown_ids": []}
    assert _store(server).events.for_predictions([ids[0]])[ids[0]] == {"user_retried": first}
    # Ids belong to their endpoint; an empty list is fine.
    assert deployed.events("other", [(ids[2], "clicked")]) == {"accepted": 0, "unknown_ids": [ids[2]]}
    assert deployed.events("clf", []) == {"accepted": 0, "unknown_ids": []}


@pytest.mark.parametrize(
    ("body", "status", "field", "words"),
    [
        ({"labels": []}, 400, "events", '{"events": [{"id"'),
        ({"events": {"id": "a"}}, 400, "events", '{"events": [{"id"'),
        ({"events": ["a"]}, 400, "events[0]", "must be an object"),
        ({"events": [{"id": "a", "name": "ok"}, {"name": "x"}]}, 400, "events[1].id", "prediction id"),
        ({"events": [{"id": 7, "name": "x"}]}, 400, "events[0].id", "got 7"),
        ({"events": [{"id": "a"}]}, 400, "events[0].name", "starting with a letter; got None"),
        ({"events": [{"id": "a", "name": "user retried"}]}, 400, "events[0].name", "'user retried'"),
        ({"events": [{"id": "a", "name": "x" * 65}]}, 400, "events[0].name", "1-64 letters"),
        ({"events": [{"id": "a", "name": "_x"}]}, 400, "events[0].name", "starting with a letter"),
        ({"events": [{"id": "a", "name": "x", "ts": "today"}]}, 400, "events[0].ts", "epoch seconds"),
        ({"events": [{"id": "a", "name": "x", "ts": True}]}, 400, "events[0].ts", "epoch seconds"),
        ({"events": [{"id": "a", "name": "x", "ts": -1}]}, 400, "events[0].ts", ">= 0"),
        ({"events": [{"id": "a", "name": "x", "when": 1}]}, 400, "events[0]", "unknown field 'when'"),
        ({"events": [{"id": "a", "name": "x"}] * (MAX_EVENTS + 1)}, 413, "events", f"at most {MAX_EVENTS}"),
    ],
)
def test_bad_events_name_the_field(deployed: Client, body: dict[str, Any], status: int, field: str, words: str) -> None:
    answer = deployed.http.post("/v1/endpoints/clf/events", json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["field"] == field and words in answer.json()["error"], answer.json()


def test_invalid_json_is_400(deployed: Client) -> None:
    answer = deployed.http.post("/v1/endpoints/clf/events", content=b"{", headers={"content-type": "application/json"})
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["error"]


def _monitor(client: Client, **body: Any) -> dict[str, Any]:
    answer = client.http.post("/v1/endpoints/clf/monitor", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_monitor_counts_events_per_window_and_alerts_per_event(deployed: Client, server: LiveServer) -> None:
    rule = {
        "name": "retries",
        "endpoint": "clf",
        "metric": "event_rate",
        "detail": {"event": "user_retried"},
        "op": ">",
        "threshold": 0.25,
    }
    assert deployed.http.post("/v1/alert-rules", json=rule).status_code == 201
    old, new = _send(deployed, 100, seed=2), _send(deployed, 100, seed=3)
    retried, clicked = new[::3], old[60:70]  # 34 of the newest 100 rows; 10 in the older rows' second call
    deployed.events("clf", [(pid, "user_retried") for pid in retried] + [(pid, "clicked") for pid in clicked])

    report = _monitor(deployed, last=200)
    assert report["breakdown"]["event_rate"] == {"clicked": 0.05, "user_retried": 0.17}
    assert "event_rate" not in report["metrics"]
    assert deployed.http.get("/v1/alerts").json()["alerts"] == []

    # No 'clicked' event in the newest 100 rows: the name seen before is carried on at 0.
    report = _monitor(deployed, last=100)
    assert report["breakdown"]["event_rate"] == {"clicked": 0.0, "user_retried": 0.34}
    alerts = deployed.http.get("/v1/alerts").json()["alerts"]
    assert [(a["rule"], a["detail"], a["value"]) for a in alerts] == [("retries", {"event": "user_retried"}, 0.34)]
    assert 'event_rate{event="user_retried"} = 0.34 > 0.25' in alerts[0]["message"]

    # 130 rows: the window starts inside a 50-row call (rows sharing one time stamp) and still counts
    # exactly the events of its own rows.
    window = {r["id"] for r in _store(server).predictions.window("clf", last=130)}
    report = _monitor(deployed, last=130)
    assert report["breakdown"]["event_rate"] == {
        "clicked": pytest.approx(len(window & set(clicked)) / 130),
        "user_retried": pytest.approx(34 / 130),
    }

    series = deployed.http.get("/v1/endpoints/clf/monitoring", params={"metric": "event_rate"}).json()["points"]
    assert [(p["detail"]["event"], p["value"]) for p in series[:2]] == [("clicked", 0.05), ("user_retried", 0.17)]
    assert len(series) == 6 and all(p["version"] == 1 for p in series)


def test_client_errors_are_server_errors(deployed: Client) -> None:
    with pytest.raises(ServerError) as caught:
        deployed.events("clf", [("a", "bad name")])
    assert caught.value.status_code == 400 and caught.value.details["field"] == "events[0].name"
