"""The retraining loop through a real server: labelled traffic -> a run in a subprocess -> a new
version with lineage, judged against the champion on held-out rows -> a rollout when it is better."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftgate.client import Client, ServerError
from tests.conftest import Artifacts, LiveServer, classification_data, make_server

TRAIN = "tests.train_functions:train"
FEATURES = ["x1", "x2", "colour"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = make_server(tmp_path, train_modules=["tests.train_functions"], monitor_interval=0, rollout_interval=0.2)
    yield srv
    srv.stop()


@pytest.fixture
def clf(client: Client, artifacts: Artifacts) -> Client:
    client.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
    client.deploy("clf", "clf", 1)
    return client


def labelled_traffic(client: Client, rows: int, seed: int, flip: bool, as_text: bool = False) -> None:
    """Predictions with their labels; `flip`: the world now says the opposite (concept drift);
    `as_text`: labels sent as "0"/"1" for a model whose classes are the numbers 0 and 1."""
    frame = classification_data(rows, seed)
    for start in range(0, rows, 100):
        part = frame.iloc[start : start + 100]
        ids = client.predict("clf", part[FEATURES].to_dict(orient="records"))["ids"]
        truth = ((1 - part["y"]) if flip else part["y"]).tolist()
        client.feedback("clf", dict(zip(ids, [str(t) for t in truth] if as_text else truth, strict=True)))


def test_a_better_model_is_registered_with_lineage_and_shadowed(clf: Client) -> None:
    labelled_traffic(clf, 400, seed=7, flip=True)
    run = clf.retrain("clf", train=TRAIN, min_rows=100, reason="labels flipped")
    assert run["state"] == "queued" and run["trigger"] == "manual" and run["champion"] == {"model": "clf", "version": 1}
    done = clf.wait_for_run(run["id"], timeout=120)
    assert done["state"] == "succeeded", (done["detail"], done["log"])
    assert done["candidate"] == {"model": "clf", "version": 2}
    assert done["rows"] == {"train": 320, "holdout": 80, "reference": 0}
    evaluation = done["evaluation"]
    assert evaluation["metric"] == "accuracy" and evaluation["better"] is True and evaluation["rows"] == 80
    assert evaluation["champion"] < 0.2 < 0.8 < evaluation["candidate"] and evaluation["p_value"] < 0.001
    assert "shadow rollout" in done["detail"] and done["rollout"] is not None

    rollout = clf.rollout("clf")
    assert rollout["id"] == done["rollout"] and rollout["strategy"] == "shadow" and rollout["state"] == "running"
    assert rollout["candidate"]["version"] == 2 and rollout["spec"]["reason"] == "labels flipped"
    assert rollout["actor"] == "retraining"
    version = clf.model("clf")["versions"][-1]
    assert version["version"] == 2 and version["target"] == "y"
    lineage = version["lineage"]
    assert lineage["retraining_run"] == run["id"] and lineage["parent"] == {"model": "clf", "version": 1}
    assert lineage["train"] == TRAIN and lineage["data"] == "recent" and lineage["rows"]["train"] == 320
    assert version["metrics"]["holdout"]["candidate"] == evaluation["candidate"]
    # The new version serves: its shadow copies are scored while v1 answers.
    assert clf.predict("clf", classification_data(5, 1)[FEATURES].to_dict(orient="records"))["version"] == 1

    runs = clf.retraining_runs("clf")
    assert [r["id"] for r in runs] == [run["id"]] and clf.retraining_runs("other") == []
    history = [h["action"] for h in clf.http.get("/v1/endpoints/clf/history").json()["history"]]
    assert "retrain.start" in history and "retrain.finish" in history and "rollout.start" in history


def test_a_model_no_better_is_registered_but_not_rolled_out(clf: Client) -> None:
    labelled_traffic(clf, 300, seed=8, flip=False)
    run = clf.retrain("clf", train=TRAIN, min_rows=100, min_improvement=0.5, rollout={"strategy": "canary"})
    done = clf.wait_for_run(run["id"], timeout=120)
    assert done["state"] == "rejected", done
    assert done["evaluation"]["better"] is False and done["rollout"] is None
    assert "not rolled out" in done["detail"] and "not better than" in done["detail"]
    assert [v["version"] for v in clf.model("clf")["versions"]] == [1, 2]
    with pytest.raises(ServerError) as caught:
        clf.rollout("clf")
    assert caught.value.status_code == 404


def test_reference_and_recent_trains_on_both(clf: Client) -> None:
    labelled_traffic(clf, 200, seed=9, flip=False)
    run = clf.retrain("clf", train=TRAIN, data="reference_and_recent", min_rows=100, rollout=None)
    done = clf.wait_for_run(run["id"], timeout=120)
    assert done["state"] in ("succeeded", "rejected"), done
    assert done["rows"] == {"train": 2000 + 160, "holdout": 40, "reference": 2000}
    if done["state"] == "succeeded":
        assert "no rollout configured" in done["detail"] and done["rollout"] is None


@pytest.mark.parametrize(
    ("train", "words"),
    [
        ("tests.train_functions:broken", "failed: RuntimeError: no good: 160 rows"),
        ("tests.train_functions:not_a_model", "returned a int, which has no predict()"),
        ("tests.train_functions:absent", "cannot load train function"),
        ("tests.train_functions:time.sleep", "is defined in 'time', outside the packages this server allows"),
    ],
)
def test_a_failing_train_function_fails_the_run_and_changes_nothing(clf: Client, train: str, words: str) -> None:
    labelled_traffic(clf, 200, seed=10, flip=True)
    done = clf.wait_for_run(clf.retrain("clf", train=train, min_rows=100)["id"], timeout=120)
    assert done["state"] == "failed" and words in done["detail"], done
    assert done["candidate"] is None and done["rollout"] is None
    assert [v["version"] for v in clf.model("clf")["versions"]] == [1]
    if "broken" in train:
        assert "Traceback" in done["log"]  # the whole trace is kept with the run
    # The server goes on serving.
    assert clf.predict("clf", classification_data(3, 2)[FEATURES].to_dict(orient="records"))["version"] == 1


def test_too_few_labels_fail_the_run_with_what_to_do(clf: Client) -> None:
    labelled_traffic(clf, 100, seed=11, flip=False)
    clf.predict("clf", classification_data(50, 12)[FEATURES].to_dict(orient="records"))  # no labels
    done = clf.wait_for_run(clf.retrain("clf", train=TRAIN)["id"], timeout=120)
    assert done["state"] == "failed"
    assert "insufficient data: 100 labelled predictions" in done["detail"] and "200 needed" in done["detail"]


def test_one_run_at_a_time_and_the_timeout_kills_it(clf: Client) -> None:
    labelled_traffic(clf, 200, seed=13, flip=False)
    run = clf.retrain("clf", train="tests.train_functions:slow", min_rows=100, timeout_seconds=3)
    with pytest.raises(ServerError) as caught:
        clf.retrain("clf", train=TRAIN, min_rows=100)
    assert caught.value.status_code == 409 and f"run {run['id']}" in str(caught.value)
    done = clf.wait_for_run(run["id"], timeout=60)  # the function sleeps 30 s: killed, not waited out
    assert done["state"] == "failed" and "timed out after 3 s" in done["detail"]
    # Once it has ended, the next run may start.
    assert clf.wait_for_run(clf.retrain("clf", train=TRAIN, min_rows=100)["id"], timeout=120)["state"] != "queued"


def test_bad_requests_name_what_is_wrong(clf: Client) -> None:
    http = clf.http
    cases: list[tuple[str, Any, int, str, str]] = [
        ("clf", {}, 400, "train", "has no retraining config"),
        ("clf", {"train": "os:system"}, 400, "train", "module 'os' is not allowed to train"),
        ("clf", {"train": "no colon"}, 400, "train", "package.module:function"),
        ("clf", {"train": TRAIN, "data": "everything"}, 400, "data", "'all', 'recent' or 'reference_and_recent'"),
        ("clf", {"train": TRAIN, "holdout": 0.9}, 400, "holdout", "less than or equal to 0.5"),
        ("clf", {"train": TRAIN, "rollout": {"strategy": "sideways"}}, 400, "rollout", "rollout strategy"),
        ("clf", {"train": TRAIN, "rollout": {"strategy": "canary", "version": 3}}, 400, "rollout", "must not name"),
        ("clf", {"train": TRAIN, "colour": "red"}, 400, "colour", "Extra inputs"),
        ("clf", [1, 2], 400, "body", ""),
        ("nope", {"train": TRAIN}, 404, "", "no endpoint named 'nope'"),
    ]
    for endpoint, body, status, field, words in cases:
        r = http.post(f"/v1/endpoints/{endpoint}/retrain", json=body)
        assert r.status_code == status, (body, r.text)
        if field:
            assert r.json().get("field") == field, (body, r.text)
        assert words in r.json()["error"], (body, r.text)
    assert http.get("/v1/retraining-runs", params={"limit": 0}).status_code == 400
    assert http.get("/v1/retraining-runs/99").status_code == 404
    assert http.get("/v1/retraining-runs/99999999999").status_code == 404
    assert clf.retraining_runs() == []  # nothing was opened


def test_the_endpoint_config_holds_the_plan_and_an_alert_starts_it(clf: Client) -> None:
    plan = {"train": TRAIN, "min_rows": 100, "rollout": {"strategy": "canary", "steps": [20, 100]}}
    bad = clf.http.put("/v1/endpoints/clf", json={"model": "clf", "version": 1, "retraining": {"train": "os:system"}})
    assert bad.status_code == 400 and bad.json()["field"] == "retraining.train"
    clf.deploy("clf", "clf", 1, retraining=plan)
    assert clf.endpoint("clf")["config"]["retraining"]["train"] == TRAIN
    rule = {
        "name": "accuracy-low",
        "endpoint": "clf",
        "metric": "accuracy",
        "op": "<",
        "threshold": 0.5,
        "actions": ["retrain"],
    }
    assert clf.http.post("/v1/alert-rules", json=rule).status_code == 201
    labelled_traffic(clf, 300, seed=14, flip=True)
    report = clf.http.post("/v1/endpoints/clf/monitor", json={"last": 300}).json()
    assert report["metrics"]["accuracy"] < 0.5
    alert = clf.http.get("/v1/alerts").json()["alerts"][0]
    assert alert["actions"][0]["name"] == "retrain" and alert["actions"][0]["ok"] is True, alert
    run = clf.retraining_runs("clf")[0]
    assert run["trigger"] == "alert" and run["actor"] == "alert"
    done = clf.wait_for_run(run["id"], timeout=120)
    assert done["state"] == "succeeded", (done["detail"], done["log"])
    rollout = clf.rollout("clf")
    assert rollout["strategy"] == "canary" and rollout["steps"] == [20.0, 100.0]
    assert rollout["spec"]["reason"].startswith("alert: ")


def test_a_schedule_starts_runs_on_its_own(tmp_path: Path, artifacts: Artifacts) -> None:
    srv = make_server(tmp_path, train_modules=["tests.train_functions"], monitor_interval=0, retrain_check_interval=0.2)
    try:
        with Client(srv.url) as client:
            client.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
            client.deploy("clf", "clf", 1, retraining={"train": TRAIN, "every_seconds": 3600})
            deadline = time.monotonic() + 30
            while not client.retraining_runs("clf") and time.monotonic() < deadline:
                time.sleep(0.1)
            runs = client.retraining_runs("clf")
            assert len(runs) == 1 and runs[0]["trigger"] == "schedule"
            done = client.wait_for_run(runs[0]["id"], timeout=120)
            assert done["state"] == "failed" and "insufficient data" in done["detail"]  # no labels yet
            time.sleep(1)
            assert len(client.retraining_runs("clf")) == 1  # not again before every_seconds
    finally:
        srv.stop()


def test_features_the_log_redacts_cannot_train(clf: Client) -> None:
    clf.deploy("clf", "clf", 1, redact={"colour": "hash"})
    labelled_traffic(clf, 200, seed=15, flip=True)
    done = clf.wait_for_run(clf.retrain("clf", train=TRAIN, min_rows=100)["id"], timeout=120)
    assert done["state"] == "failed" and "['colour']" in done["detail"], done["detail"]
    assert "redacted by the endpoint config" in done["detail"]
    assert [v["version"] for v in clf.model("clf")["versions"]] == [1]


def test_a_masked_feature_is_still_monitored_and_trains(clf: Client) -> None:
    """'mask' keeps a text readable (e-mail addresses and digits masked): the stored value is a text the
    model can take, so retraining uses it as stored instead of refusing it like 'drop' and 'hash'."""
    clf.deploy("clf", "clf", 1, redact={"colour": "mask"})
    labelled_traffic(clf, 200, seed=15, flip=True)
    # The monitor counts it too: colour is the only categorical feature, and its unseen-category rate exists.
    monitored = clf.http.post("/v1/endpoints/clf/monitor", json={"last": 200}).json()
    assert monitored["metrics"]["unseen_category_rate"] == 0.0
    done = clf.wait_for_run(clf.retrain("clf", train=TRAIN, min_rows=100)["id"], timeout=120)
    assert done["state"] in ("succeeded", "rejected"), done["detail"]
    assert "redacted" not in (done["detail"] or "")


def test_a_server_that_stops_kills_its_run_and_says_so(tmp_path: Path, artifacts: Artifacts) -> None:
    from driftgate.store import Store

    srv = make_server(tmp_path, train_modules=["tests.train_functions"], monitor_interval=0)
    try:
        with Client(srv.url) as client:
            client.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
            client.deploy("clf", "clf", 1)
            labelled_traffic(client, 200, seed=16, flip=False)
            run = client.retrain("clf", train="tests.train_functions:slow", min_rows=100)
            running = srv.app.state.services.retraining._processes
            deadline = time.monotonic() + 30
            while not running and time.monotonic() < deadline:  # its job has started
                time.sleep(0.05)
            processes = list(running.values())
    finally:
        srv.stop()
    assert processes and all(p.poll() is not None for p in processes)  # the job is gone with its server
    store = Store.open(tmp_path / "data")
    try:
        ended = store.retraining.get(run["id"])
    finally:
        store.close()
    assert ended["state"] == "failed" and "server stopped" in ended["detail"]


@pytest.mark.postgres
def test_a_run_on_postgresql_reads_and_registers_through_the_shared_store(
    tmp_path: Path, artifacts: Artifacts, pg_url: str
) -> None:
    srv = make_server(tmp_path, db=pg_url, train_modules=["tests.train_functions"], monitor_interval=0)
    try:
        with Client(srv.url) as client:
            client.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
            client.deploy("clf", "clf", 1)
            labelled_traffic(client, 300, seed=17, flip=True)
            run = client.retrain("clf", train=TRAIN, min_rows=100, rollout={"strategy": "blue_green"})
            done = client.wait_for_run(run["id"], timeout=120)
            assert done["state"] == "succeeded", (done["detail"], done["log"])
            assert done["rows"]["holdout"] == 60 and done["evaluation"]["better"]
            assert client.predict("clf", classification_data(3, 1)[FEATURES].to_dict(orient="records"))["version"] == 2
    finally:
        srv.stop()


def test_labels_sent_as_text_train_and_judge_as_the_champions_classes(clf: Client) -> None:
    labelled_traffic(clf, 300, seed=18, flip=True, as_text=True)
    done = clf.wait_for_run(clf.retrain("clf", train=TRAIN, min_rows=100, rollout=None)["id"], timeout=120)
    assert done["state"] == "succeeded", done["detail"]
    assert done["evaluation"]["champion"] < 0.2 and done["evaluation"]["candidate"] > 0.8
    assert clf.model("clf")["versions"][-1]["output"]["classes"] == [0, 1]  # not ["0", "1"]
