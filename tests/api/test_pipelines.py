"""Pipeline endpoints through a real server: pre and post steps, their failures, metrics and config."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from driftgate.client import Client, ServerError
from driftgate.core.refs import VersionRef
from tests import pipeline_steps
from tests.api.test_metrics import scrape, total
from tests.conftest import Artifacts, LiveServer, classification_data, free_port, make_server
from tests.test_cli import DRIFTGATE, _wait_ready

STEPS = "tests.pipeline_steps"
PIPELINE = {
    "pre": [{"name": "colour", "function": f"{STEPS}:lower_colour"}, {"name": "hours", "function": f"{STEPS}:hours"}],
    "post": [{"name": "names", "function": f"{STEPS}:label_names"}],
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = make_server(tmp_path, pipeline_modules=[STEPS], log_flush_interval=0.05)
    yield srv
    srv.stop()


def raw_rows(n: int, seed: int) -> pd.DataFrame:
    """Rows as the application sends them: minutes instead of hours, colours in capitals."""
    data = classification_data(n, seed)
    return pd.DataFrame({"x1": data["x1"], "x2_minutes": data["x2"] * 60, "COLOUR": data["colour"].str.upper()})


def step(name: str, function: str) -> dict[str, str]:
    return {"name": name, "function": f"{STEPS}:{function}"}


def logged(server: LiveServer, endpoint: str = "clf", role: str | None = "primary") -> list[dict[str, Any]]:
    server.app.state.services.recorder.flush()
    return server.app.state.services.store.predictions.window(endpoint, role=role)


def until(check: Callable[[], Any], seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_pre_and_post_steps_answer_and_the_log_keeps_the_model_view(
    deployed: Client, server: LiveServer, artifacts: Artifacts
) -> None:
    described = deployed.deploy("clf", "clf", 1, pipeline=PIPELINE)
    assert described["config"]["pipeline"] == PIPELINE
    raw = raw_rows(25, seed=3)
    inputs = pipeline_steps.model_inputs(raw)
    model = artifacts.model
    expected = [pipeline_steps.LABELS[int(p)] for p in model.predict(inputs)]

    answer = deployed.predict("clf", raw.to_dict(orient="records"))
    assert answer["predictions"] == expected
    np.testing.assert_allclose(answer["probabilities"], model.predict_proba(inputs), rtol=1e-12)
    assert answer["classes"] == [0, 1]  # the model's classes, which the probabilities line up with

    # The other protocols take the same raw columns.
    mlflow = deployed.http.post("/v1/endpoints/clf/invocations", json={"dataframe_records": raw.to_dict("records")})
    assert mlflow.json()["predictions"] == expected
    tensors = [
        {"name": "x1", "shape": [len(raw)], "datatype": "FP64", "data": raw["x1"].tolist()},
        {"name": "x2_minutes", "shape": [len(raw)], "datatype": "FP64", "data": raw["x2_minutes"].tolist()},
        {"name": "COLOUR", "shape": [len(raw)], "datatype": "BYTES", "data": raw["COLOUR"].tolist()},
    ]
    v2 = deployed.http.post("/v2/models/clf/infer", json={"inputs": tensors}).json()
    assert next(o for o in v2["outputs"] if o["name"] == "predict")["data"] == expected

    # The log holds the model's inputs (after the pre steps) and the model's own output.
    rows = {r["id"]: r for r in logged(server)}
    for i, pid in enumerate(answer["ids"]):
        row = rows[pid]
        assert row["status"] == "ok"
        assert row["inputs"]["colour"] == inputs["colour"].iloc[i]
        assert row["inputs"]["x2"] == pytest.approx(inputs["x2"].iloc[i])
        assert set(row["inputs"]) == {"x1", "x2", "colour"}
        assert row["output"] == int(model.predict(inputs.iloc[[i]])[0])

    # Each step reports its own calls and rows in the endpoint's description.
    view = deployed.endpoint("clf")["pipeline"]
    assert [s["name"] for s in view["pre"]] == ["colour", "hours"] and view["post"][0]["name"] == "names"
    for s in (*view["pre"], *view["post"]):
        assert (s["calls"], s["errors"], s["invalid"], s["rows"]) == (3, 0, 0, 75)
        assert s["mean_latency_ms"] > 0
    assert view["pre"][0]["function"] == f"{STEPS}:lower_colour"


def test_step_metrics_parse_as_prometheus_text(deployed: Client, server: LiveServer) -> None:
    deployed.deploy(
        "clf", "clf", 1, pipeline={**PIPELINE, "pre": [*PIPELINE["pre"], step("guard", "explode_on_negative")]}
    )
    families = scrape(server.url)
    # Series exist from the moment the pipeline is applied, before any call.
    assert total(families, "driftgate_step_calls_total", endpoint="clf", step="hours") == 0
    for n in (1, 4, 2):
        deployed.predict("clf", raw_rows(n, seed=n).to_dict(orient="records"))
    with pytest.raises(ServerError):
        deployed.predict("clf", raw_rows(3, seed=9).assign(x1=-500.0).to_dict(orient="records"))

    families = scrape(server.url)
    pre = {"endpoint": "clf", "stage": "pre", "role": "primary"}
    assert total(families, "driftgate_step_calls_total", step="colour", status="ok", **pre) == 4
    assert total(families, "driftgate_step_rows_total", step="colour", **pre) == 10
    assert total(families, "driftgate_step_latency_seconds_count", step="hours", **pre) == 4
    assert total(families, "driftgate_step_latency_seconds_sum", step="hours", **pre) > 0
    assert total(families, "driftgate_step_calls_total", step="guard", status="ok", **pre) == 3
    assert total(families, "driftgate_step_calls_total", step="guard", status="error", **pre) == 1
    post = {"endpoint": "clf", "stage": "post", "role": "primary", "step": "names"}
    assert total(families, "driftgate_step_calls_total", status="ok", **post) == 3
    assert total(families, "driftgate_step_rows_total", **post) == 7
    # The model keeps its own latency histogram.
    assert total(families, "driftgate_model_latency_seconds_count", endpoint="clf") == 3


def test_a_broken_step_is_a_500_naming_it_logged_and_the_server_keeps_serving(
    deployed: Client, server: LiveServer
) -> None:
    pipeline = {"pre": [*PIPELINE["pre"], step("guard", "explode_on_negative")], "post": [step("buggy", "broken_post")]}
    deployed.deploy("clf", "clf", 1, pipeline=pipeline)
    bad = raw_rows(3, seed=1).assign(x1=[0.0, -500.0, 1.0])
    r = deployed.http.post("/v1/endpoints/clf/predict", json={"instances": bad.to_dict("records")})
    assert r.status_code == 500
    assert r.json() == {
        "error": "pre step 'guard' failed: ValueError: x1 below -100 cannot be cleaned",
        "step": "guard",
    }

    good = raw_rows(2, seed=2)
    r = deployed.http.post("/v1/endpoints/clf/predict", json={"instances": good.to_dict("records")})
    assert r.status_code == 500
    assert r.json()["error"] == "post step 'buggy' failed: RuntimeError: post-processing bug"
    assert r.json()["step"] == "buggy"

    failures = [row for row in logged(server) if row["status"] == "error"]
    assert len(failures) == 5
    pre_failed = [f for f in failures if "guard" in f["error"]]
    post_failed = [f for f in failures if "buggy" in f["error"]]
    assert len(pre_failed) == 3 and len(post_failed) == 2
    # A pre step failed before there were model inputs: the rows as sent are logged.
    assert {f["inputs"]["COLOUR"] for f in pre_failed} == set(bad["COLOUR"])
    # A post step failed after the model: its inputs are logged, the answer that never went out is not.
    assert all(set(f["inputs"]) == {"x1", "x2", "colour"} and f["output"] is None for f in post_failed)
    families = scrape(server.url)
    assert total(families, "driftgate_requests_total", endpoint="clf", status="error") == 2

    deployed.deploy("clf", "clf", 1, pipeline=PIPELINE)
    assert len(deployed.predict("clf", good.to_dict("records"))["predictions"]) == 2


def test_a_failing_step_never_logs_a_redacted_value(
    deployed: Client, server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    deployed.deploy("clf", "clf", 1, redact={"email": "drop"}, pipeline={"pre": [step("parse", "quote_email")]})
    rows = raw_rows(1, seed=1).assign(email="someone@example.com").to_dict("records")
    with caplog.at_level("WARNING", logger="driftgate.serving"):
        r = deployed.http.post("/v1/endpoints/clf/predict", json={"instances": rows})
    assert r.status_code == 500 and "someone@example.com" in r.json()["error"]  # the caller sent it
    assert "pre step 'parse' failed" in caplog.text and "someone@example.com" not in caplog.text
    (failed,) = logged(server)
    assert "email" not in failed["inputs"] and "someone@example.com" not in failed["error"]


@pytest.mark.parametrize(
    ("pre", "status", "step_name", "words"),
    [
        ([step("drop", "drop_x1")], 422, "drop", ["model input after pre step 'drop'", "missing feature(s) 'x1'"]),
        ([step("customer", "require_customer")], 422, "customer", ["pre step 'customer': expected a 'customer'"]),
        ([step("head", "first_row_only")], 500, "head", ["pre step 'head' returned 1 rows; expected one per"]),
        ([step("dicts", "not_a_frame")], 500, "dicts", ["returned a list; expected a pandas DataFrame"]),
    ],
)
def test_pre_step_contract_errors_name_the_step(
    deployed: Client, server: LiveServer, pre: list[dict[str, str]], status: int, step_name: str, words: list[str]
) -> None:
    deployed.deploy("clf", "clf", 1, pipeline={"pre": [*PIPELINE["pre"], *pre]})
    rows = raw_rows(2, seed=5).to_dict("records")
    r = deployed.http.post("/v1/endpoints/clf/predict", json={"instances": rows})
    assert r.status_code == status
    body = r.json()
    assert body["step"] == step_name
    for word in words:
        assert word in body["error"]
    # The caller's mistakes (422) are refused before the model and not logged; a step's own failure is.
    assert len(logged(server)) == (0 if status == 422 else 2)


def test_bad_step_at_put_is_refused_and_the_old_config_keeps_serving(deployed: Client, server: LiveServer) -> None:
    deployed.deploy("clf", "clf", 1, pipeline=PIPELINE)
    revision = deployed.endpoint("clf")["revision"]
    cases = [
        ({"pre": [step("x", "no_such_function")]}, "pipeline.pre.0.function", "has no attribute 'no_such_function'"),
        ({"post": [step("n", "NOT_CALLABLE")]}, "pipeline.post.0.function", "is a int, expected a function"),
        ({"pre": [{"name": "os", "function": "os:getcwd"}]}, "pipeline.pre.0.function", "module 'os' is not allowed"),
        ({"pre": [{"name": "m", "function": f"{STEPS}_gone:f"}]}, "pipeline.pre.0.function", "is not allowed"),
        ({"pre": [{"name": "bad name", "function": f"{STEPS}:hours"}]}, "pipeline.pre.0.name", "step name"),
        ({"pre": [step("a", "hours"), step("a", "hours")]}, "pipeline", "unique"),
        ({"pre": [], "post": []}, "pipeline", "at least one step"),
        ({"middle": []}, "pipeline.middle", "Extra inputs"),
    ]
    for pipeline, field, words in cases:
        r = deployed.http.put("/v1/endpoints/clf", json={"model": "clf", "version": 1, "pipeline": pipeline})
        assert r.status_code == 400, (pipeline, r.text)
        assert r.json()["field"] == field and words in r.json()["error"], r.json()
    current = deployed.endpoint("clf")
    assert current["revision"] == revision and current["config"]["pipeline"] == PIPELINE
    assert len(deployed.predict("clf", raw_rows(3, seed=4).to_dict("records"))["predictions"]) == 3


def test_a_server_allows_no_step_modules_by_default(artifacts: Artifacts, tmp_path: Path) -> None:
    srv = make_server(tmp_path / "plain")
    try:
        with Client(srv.url) as plain:
            plain.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
            r = plain.http.put("/v1/endpoints/clf", json={"model": "clf", "version": 1, "pipeline": PIPELINE})
            assert r.status_code == 400
            assert "--pipeline-module" in r.json()["error"] and r.json()["step"] == "colour"
            assert plain.http.get("/v1/endpoints/clf").status_code == 404  # nothing stored
    finally:
        srv.stop()


def test_shadow_versions_go_through_the_same_steps(client: Client, server: LiveServer, artifacts: Artifacts) -> None:
    for _ in range(2):
        client.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
    pipeline = {**PIPELINE, "post": [*PIPELINE["post"], step("loud", "shout")]}
    # The shadow is scored by an idle-priority child: on a loaded machine it may start (imports) and
    # score long after the primary answers. The test is about the steps, not that child's speed: it
    # waits until the child has loaded the shadow version, and the shadow's time limit is the longest
    # allowed, so that a starved child is late, never a `timeout` row (this test failed so under load).
    client.deploy("clf", "clf", 1, pipeline=pipeline, timeout_ms=600_000)
    client.start_rollout("clf", "shadow", 2)
    shadow_process = server.app.state.services.dataplane.shadow_process
    if shadow_process is not None:
        shadow_process.load(VersionRef("clf", 2))
    raw = raw_rows(6, seed=8)
    answer = client.predict("clf", raw.to_dict("records"))
    assert answer["version"] == 1 and set(answer["predictions"]) <= {"LEGIT", "FRAUD"}

    shadows = until(lambda: [r for r in logged(server, role=None) if r["role"] == "shadow"], seconds=240)
    assert len(shadows) == 6 and all(r["status"] == "ok" and r["version"] == 2 for r in shadows), shadows
    inputs = pipeline_steps.model_inputs(raw)
    assert sorted(r["inputs"]["x2"] for r in shadows) == pytest.approx(sorted(inputs["x2"]))
    families = until(
        lambda: (
            (f := scrape(server.url))
            and total(f, "driftgate_step_calls_total", step="loud", role="shadow", status="ok") == 1
            and f
        )
    )
    # The pre steps ran once for the request; the post steps once per version that scored it.
    assert total(families, "driftgate_step_calls_total", step="hours", status="ok") == 1
    assert total(families, "driftgate_step_calls_total", step="names", role="primary", status="ok") == 1


def test_sticky_routing_reads_the_key_before_the_pre_steps(
    client: Client, server: LiveServer, artifacts: Artifacts
) -> None:
    for _ in range(2):
        client.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
    client.deploy("clf", "clf", 1, pipeline={**PIPELINE, "pre": [step("customer", "require_customer")]})
    client.start_rollout("clf", "canary", 2, steps=[50, 100], sticky_key="customer", auto=False)
    raw = raw_rows(40, seed=6)
    records = [
        {"customer": f"c{i}", "x1": r["x1"], "x2": r["x2_minutes"] / 60, "colour": r["COLOUR"].lower()}
        for i, r in enumerate(raw.to_dict("records"))
    ]
    answer = client.predict("clf", records)
    assert set(answer["versions"]) == {1, 2}  # rows split by their key, though the step drops it
    again = client.predict("clf", records)
    assert again["versions"] == answer["versions"]
    by_id = {r["id"]: r for r in logged(server)}
    assert all("customer" not in by_id[pid]["inputs"] for pid in answer["ids"])


def test_a_slow_step_is_bounded_by_the_endpoint_timeout(deployed: Client, server: LiveServer) -> None:
    deployed.deploy("clf", "clf", 1, timeout_ms=100, pipeline={"pre": [step("slow", "slow"), *PIPELINE["pre"]]})
    r = deployed.http.post("/v1/endpoints/clf/predict", json={"instances": raw_rows(1, seed=1).to_dict("records")})
    assert r.status_code == 504 and "pre-processing" in r.json()["error"]
    assert [row["status"] for row in logged(server)] == ["timeout"]


def test_post_steps_cannot_change_what_is_logged(deployed: Client, server: LiveServer, artifacts: Artifacts) -> None:
    deployed.deploy("clf", "clf", 1, pipeline={"pre": PIPELINE["pre"], "post": [step("vandal", "vandal")]})
    raw = raw_rows(5, seed=12)
    answer = deployed.predict("clf", raw.to_dict("records"))
    assert answer["predictions"] == [0] * 5  # the vandal's answer
    inputs = pipeline_steps.model_inputs(raw)
    np.testing.assert_allclose(answer["probabilities"], artifacts.model.predict_proba(inputs), rtol=1e-12)
    rows = {r["id"]: r for r in logged(server)}
    assert [rows[i]["output"] for i in answer["ids"]] == artifacts.model.predict(inputs).tolist()
    assert [rows[i]["inputs"]["x1"] for i in answer["ids"]] == pytest.approx(inputs["x1"].tolist())


@pytest.mark.slow
def test_step_metrics_add_up_over_workers(tmp_path: Path, artifacts: Artifacts) -> None:
    """`serve --workers 2`: /metrics and the endpoint's description count every worker's step calls."""
    port = free_port()
    root = Path(__file__).resolve().parents[2]
    args = ["serve", "--workers", "2", "--port", str(port), "--data-dir", str(tmp_path / "data")]
    proc = subprocess.Popen(
        [*DRIFTGATE, *args, "--pipeline-module", STEPS],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root), "COLUMNS": "200"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        with Client(url) as c:
            c.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
            c.deploy("clf", "clf", 1, pipeline=PIPELINE)
        body = {"instances": raw_rows(2, seed=1).to_dict("records")}

        def predict() -> int:
            # A fresh connection per request: the kernel hands connections to either worker.
            r = httpx.post(f"{url}/v1/endpoints/clf/predict", json=body, headers={"Connection": "close"}, timeout=30)
            assert r.status_code in (200, 404), r.text  # 404: a worker that has not synced the endpoint yet
            return r.status_code

        until(lambda: all(predict() == 200 for _ in range(20)))
        # Workers share one listening socket: a worker still loading the endpoint on a busy machine
        # accepts nothing meanwhile, so 20 answers in a row may all come from the other; a late 404
        # never reaches the steps, and the sums below count only answered requests.
        for _ in range(60):
            predict()
        ok = total(scrape(url), "driftgate_requests_total", endpoint="clf", status="ok")
        assert ok >= 20
        families = scrape(url)
        for name in ("colour", "hours", "names"):
            assert total(families, "driftgate_step_calls_total", step=name, status="ok") == ok
            assert total(families, "driftgate_step_rows_total", step=name) == 2 * ok
        for _ in range(6):  # whichever worker answers
            view = httpx.get(f"{url}/v1/endpoints/clf", headers={"Connection": "close"}).json()["pipeline"]
            assert [s["calls"] for s in (*view["pre"], *view["post"])] == [ok] * 3
    finally:
        proc.terminate()
        proc.wait(timeout=60)
