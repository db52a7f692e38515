"""Overload and hostile bodies through a real server on loopback (issue 19, items 5, 6 and 11):
- no id is handed out for a row the prediction log would drop: a request the log cannot take now
  gets 503 + Retry-After, one that is too big gets 413 naming the setting, and every id that was
  acknowledged accepts feedback;
- big bodies are decoded in another process: liveness answers while they parse, and they get the
  same answers (errors included) as small bodies decoded on the event loop;
- a deeply nested value is a 4xx naming the field on every protocol, never a 500.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from driftgate.api import body_decoder
from driftgate.client import Client
from tests.conftest import Artifacts, LiveServer, classification_data, make_server

FEATURES = ["x1", "x2", "colour"]


def deploy(srv: LiveServer, artifacts: Artifacts) -> Client:
    client = Client(srv.url)
    client.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
    client.deploy("clf", "clf", 1)
    return client


@pytest.fixture
def small_log(tmp_path: Path, artifacts: Artifacts) -> Iterator[tuple[LiveServer, Client]]:
    """A log queue of 1,000 rows that is only written when asked (a flush: feedback does one)."""
    srv = make_server(
        tmp_path, log_process=False, log_flush_interval=3600, log_batch_rows=10**6, log_max_queued_rows=1000
    )
    client = deploy(srv, artifacts)
    yield srv, client
    client.close()
    srv.stop()


def rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    return classification_data(n, seed)[FEATURES].to_dict("records")


def metric(srv: LiveServer, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{srv.url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_a_request_the_log_cannot_take_gets_503_and_every_acknowledged_id_is_stored(
    small_log: tuple[LiveServer, Client],
) -> None:
    srv, client = small_log
    first = client.http.post("/v1/endpoints/clf/predict", json={"instances": rows(600)})
    assert first.status_code == 200
    second = client.http.post("/v1/endpoints/clf/predict", json={"instances": rows(600, 1)})
    # Before admission this was a 200 with 600 ids whose rows were then dropped from the log.
    assert second.status_code == 503, second.text
    assert int(second.headers["retry-after"]) >= 1
    assert "prediction log" in second.json()["error"] and "ids" not in second.json()
    assert metric(srv, "driftgate_shed_requests_total", endpoint="clf", reason="log_full") == 1
    assert metric(srv, "driftgate_shed_rows_total", endpoint="clf", reason="log_full") == 600
    # Every acknowledged id is known (feedback writes the queue first), so the retry now fits.
    ids = first.json()["ids"]
    assert client.feedback("clf", {i: 1 for i in ids}) == {"accepted": 600, "unknown_ids": []}
    retried = client.http.post("/v1/endpoints/clf/predict", json={"instances": rows(600, 1)})
    assert retried.status_code == 200
    assert client.feedback("clf", {i: 0 for i in retried.json()["ids"]}) == {"accepted": 600, "unknown_ids": []}
    assert metric(srv, "driftgate_log_dropped_rows_total") == 0


def test_every_protocol_is_refused_when_the_log_cannot_take_its_rows(small_log: tuple[LiveServer, Client]) -> None:
    """V2 and MLflow requests hold room for their rows as native ones do."""
    srv, client = small_log
    assert client.http.post("/v1/endpoints/clf/invocations", json={"dataframe_records": rows(700)}).status_code == 200
    frame = classification_data(400, 2)
    v2 = {
        "inputs": [
            {"name": "x1", "shape": [400], "datatype": "FP64", "data": frame["x1"].tolist()},
            {"name": "x2", "shape": [400], "datatype": "FP64", "data": frame["x2"].tolist()},
            {"name": "colour", "shape": [400], "datatype": "BYTES", "data": frame["colour"].tolist()},
        ]
    }
    refused = client.http.post("/v2/models/clf/infer", json=v2)
    assert refused.status_code == 503 and "retry-after" in refused.headers
    mlflow = client.http.post("/v1/endpoints/clf/invocations", json={"dataframe_records": rows(400)})
    assert mlflow.status_code == 503 and "retry-after" in mlflow.headers
    assert metric(srv, "driftgate_shed_requests_total", endpoint="clf", reason="log_full") == 2


def test_more_rows_than_the_log_can_ever_hold_get_413_naming_the_setting(
    small_log: tuple[LiveServer, Client],
) -> None:
    srv, client = small_log
    r = client.http.post("/v1/endpoints/clf/predict", json={"instances": rows(1001)})
    assert r.status_code == 413, r.text
    assert "log_max_queued_rows=1000" in r.json()["error"] and r.json()["rows"] == 1001
    assert metric(srv, "driftgate_shed_requests_total", endpoint="clf", reason="log_max_queued_rows") == 1


def test_more_rows_than_max_rows_per_request_get_413_naming_it(tmp_path: Path, artifacts: Artifacts) -> None:
    srv = make_server(tmp_path, max_rows_per_request=50)
    try:
        with deploy(srv, artifacts) as client:
            for protocol, send in SENDERS.items():
                assert send(client, 50).status_code == 200, protocol
                r = send(client, 51)
                assert r.status_code == 413, (protocol, r.text)
                body = r.json()
                assert "max_rows_per_request=50" in body["error"] and body["field"] == "max_rows_per_request"
            shed = metric(srv, "driftgate_shed_rows_total", endpoint="clf", reason="max_rows_per_request")
            assert shed == 3 * 51
    finally:
        srv.stop()


def _native(client: Client, n: int) -> httpx.Response:
    return client.http.post("/v1/endpoints/clf/predict", json={"instances": rows(n)})


def _mlflow(client: Client, n: int) -> httpx.Response:
    frame = classification_data(n, 0)[FEATURES]
    return client.http.post(
        "/v1/endpoints/clf/invocations", content=frame.to_csv(index=False), headers={"content-type": "text/csv"}
    )


def _v2(client: Client, n: int) -> httpx.Response:
    frame = classification_data(n, 0)
    inputs = [
        {"name": "x1", "shape": [n], "datatype": "FP64", "data": frame["x1"].tolist()},
        {"name": "x2", "shape": [n], "datatype": "FP64", "data": frame["x2"].tolist()},
        {"name": "colour", "shape": [n], "datatype": "BYTES", "data": frame["colour"].tolist()},
    ]
    return client.http.post("/v2/models/clf/infer", json={"inputs": inputs})


SENDERS: dict[str, Callable[[Client, int], httpx.Response]] = {"native": _native, "mlflow": _mlflow, "v2": _v2}


def _wait(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_liveness_answers_while_the_decoder_process_holds_big_bodies(tmp_path: Path, artifacts: Artifacts) -> None:
    """Big bodies are decoded in another process (api/body_decoder.py), which shares no GIL with the
    event loop. Here that process is stopped (SIGSTOP) with three bodies in its hands, and liveness
    answers while all three are provably undecoded. Decoded in a thread of the server (before), a
    60 MB body held the GIL, and liveness, for seconds; and there was no decoder process to stop."""
    srv = make_server(tmp_path, big_body_bytes=10_000)
    client = deploy(srv, artifacts)
    body = orjson.dumps({"instances": rows(2000)})  # ~100 kB: "big" for this server
    answers: list[int] = []

    def big() -> int:
        r = httpx.post(
            f"{srv.url}/v1/endpoints/clf/predict", content=body, headers={"content-type": "application/json"},
            timeout=120,
        )  # fmt: skip
        return r.status_code

    threads = [threading.Thread(target=lambda: answers.append(big())) for _ in range(3)]
    decoder = None
    try:
        assert big() == 200  # starts the decoder process
        found = body_decoder.processes()
        assert len(found) == 1 and found[0].pid != os.getpid(), f"no decoder process: {found}"
        decoder = found[0]
        os.kill(decoder.pid, signal.SIGSTOP)
        for t in threads:
            t.start()
        _wait(lambda: body_decoder.in_flight() == 3, "three bodies handed to the decoder")
        live = httpx.get(f"{srv.url}/v2/health/live", timeout=20)
        assert live.status_code == 200 and live.json() == {"live": True}
        assert body_decoder.in_flight() == 3 and answers == []  # all three still undecoded
    finally:
        if decoder is not None:
            os.kill(decoder.pid, signal.SIGCONT)
        for t in threads:
            t.join(timeout=120)
        client.close()
        srv.stop()
    assert answers == [200, 200, 200]
    assert not decoder.is_alive(), "the decoder process outlived the server"


DEEP = "[" * 1000 + "1" + "]" * 1000


# (path, body with the deep value at %s, the field it is in): native, MLflow and V2 shapes.
NATIVE, MLFLOW, V2 = "/v1/endpoints/clf/predict", "/v1/endpoints/clf/invocations", "/v2/models/clf/infer"
DEEP_CASES = [
    (NATIVE, '{"instances": [{"x1": %s, "x2": 1, "colour": "red"}]}', "x1"),
    (NATIVE, '{"instances": [{"x1": 1, "x2": 1, "colour": %s}]}', "colour"),
    (NATIVE, '{"dataframe_split": {"columns": ["x1", "x2", "colour"], "data": [[%s, 1, 2]]}}', "x1"),
    (MLFLOW, '{"dataframe_records": [{"x1": %s, "x2": 1, "colour": "red"}]}', "x1"),
    (MLFLOW, '{"inputs": {"x1": [1], "x2": [1], "colour": [%s]}}', "colour"),
    (V2, '{"inputs": [{"name": "x1", "shape": [1], "datatype": "FP64", "data": [%s]}]}', "x1"),
    (V2, '{"inputs": [{"name": "colour", "shape": [1], "datatype": "BYTES", "data": %s}]}', "colour"),
    (V2, '{"inputs": [{"name": "x1", "shape": [1], "datatype": "INT64", "data": [%s]}]}', "x1"),
]  # fmt: skip


def test_a_deeply_nested_value_is_a_4xx_naming_the_field(deployed: Client) -> None:
    wrong = []
    for path, body, field in DEEP_CASES:
        r = deployed.http.post(path, content=body % DEEP, headers={"content-type": "application/json"})
        answer = r.json()
        named = field in (answer.get("field"), answer.get("feature")) and f"'{field}'" in answer["error"]
        if not (400 <= r.status_code < 500 and named and len(answer["error"]) < 500):
            wrong.append((path, body[:40], r.status_code, answer))
    assert wrong == []


def _v2_body(n: int) -> bytes:
    frame = classification_data(n, 0)
    inputs = [
        {"name": "x1", "shape": [n], "datatype": "FP64", "data": frame["x1"].tolist()},
        {"name": "x2", "shape": [n], "datatype": "FP64", "data": frame["x2"].tolist()},
        {"name": "colour", "shape": [n], "datatype": "BYTES", "data": frame["colour"].tolist()},
    ]
    return orjson.dumps({"inputs": inputs})


def test_big_bodies_get_the_answers_small_ones_get(tmp_path: Path, artifacts: Artifacts) -> None:
    """Each body as sent (decoded on the event loop) and padded with whitespace past `big_body_bytes`
    (decoded in the decoder process): the same status and answer, refusals and errors included."""
    srv = make_server(tmp_path, big_body_bytes=4096, max_rows_per_request=5)
    cases = [(path, (body % DEEP).encode()) for path, body, _field in DEEP_CASES] + [
        (NATIVE, b'{"instances": [nope]}'),  # not JSON
        (NATIVE, b"[1, 2]"),  # not an object
        (NATIVE, b'{"instances": []}'),
        (NATIVE, orjson.dumps({"instances": rows(6)})),  # over max_rows_per_request
        (MLFLOW, orjson.dumps({"dataframe_records": rows(6)})),
        (V2, _v2_body(6)),
        (NATIVE, orjson.dumps({"instances": rows(3)})),
        (MLFLOW, orjson.dumps({"dataframe_records": rows(3)})),
        (V2, _v2_body(3)),
    ]
    differ = []
    try:
        with deploy(srv, artifacts) as client:
            for path, body in cases:
                assert len(body) < 4096
                answers = []
                for sent in (body, body + b" " * 4096):
                    r = client.http.post(path, content=sent, headers={"content-type": "application/json"})
                    answer = r.json()
                    for varies in ("ids", "id", "parameters"):  # prediction ids are new for every request
                        answer.pop(varies, None)
                    answers.append((r.status_code, answer))
                if answers[0] != answers[1]:
                    differ.append((path, body[:60], answers))
            shed = metric(srv, "driftgate_shed_rows_total", endpoint="clf", reason="max_rows_per_request")
    finally:
        srv.stop()
    assert differ == []
    assert shed == 2 * 3 * 6  # each refusal counted, whichever process decoded the body
