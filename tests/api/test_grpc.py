"""The Open Inference Protocol over gRPC (`--grpc-port`), driven by tritonclient.grpc against a real
server on loopback: health, metadata, typed and raw tensors, prediction ids usable for REST feedback,
the REST error text under gRPC status codes, bearer tokens in the `authorization` metadata."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2 as tpb
from tritonclient.grpc import service_pb2_grpc as tpb_grpc
from tritonclient.utils import InferenceServerException

from driftgate.api.auth import REFRESH_SECONDS
from driftgate.api.grpc_server import status_code
from driftgate.errors import BadRequest, InvalidInput, ModelFailed, ModelTimeout, NotReady, Overloaded, PayloadTooLarge
from tests.conftest import Artifacts, LiveServer, classification_data, free_port
from tests.helpers import clf_server

FEATURES = ["x1", "x2", "colour"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, artifacts: Artifacts) -> Iterator[LiveServer]:
    """One server for the module (gRPC on a port of its own) with model 'clf' deployed at 'clf'."""
    with clf_server(tmp_path_factory.mktemp("grpc"), artifacts, grpc_port=free_port()) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(served: LiveServer) -> Iterator[triton.InferenceServerClient]:
    c = triton.InferenceServerClient(f"127.0.0.1:{served.settings.grpc_port}")
    yield c
    c.close()


@pytest.fixture(scope="module")
def stub(served: LiveServer) -> Iterator[tpb_grpc.GRPCInferenceServiceStub]:
    """tritonclient's own generated stub, for typed contents (its high-level API sends raw bytes)."""
    channel = grpc.insecure_channel(f"127.0.0.1:{served.settings.grpc_port}")
    yield tpb_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


@pytest.fixture
def rows() -> pd.DataFrame:
    return classification_data(20, seed=11)[FEATURES]


def raw_inputs(rows: pd.DataFrame, x1_type: str = "FP64") -> list[triton.InferInput]:
    n = len(rows)
    columns = {
        "x1": rows["x1"].to_numpy(np.float64 if x1_type == "FP64" else np.int64),
        "x2": rows["x2"].to_numpy(np.float64),
        "colour": rows["colour"].to_numpy(dtype=object),
    }
    inputs = []
    for name, datatype in (("x1", x1_type), ("x2", "FP64"), ("colour", "BYTES")):
        tensor = triton.InferInput(name, [n], datatype)
        tensor.set_data_from_numpy(columns[name])
        inputs.append(tensor)
    return inputs


def typed_request(rows: pd.DataFrame, **overrides: Any) -> tpb.ModelInferRequest:
    n = len(rows)
    x1 = overrides.pop("x1", None) or tpb.ModelInferRequest.InferInputTensor(
        name="x1", datatype="INT64", shape=[n], contents=tpb.InferTensorContents(int64_contents=_ints(rows["x1"]))
    )
    x2 = tpb.ModelInferRequest.InferInputTensor(
        name="x2", datatype="FP64", shape=[n], contents=tpb.InferTensorContents(fp64_contents=rows["x2"].tolist())
    )
    colour = tpb.ModelInferRequest.InferInputTensor(
        name="colour",
        datatype="BYTES",
        shape=[n],
        contents=tpb.InferTensorContents(bytes_contents=[c.encode() for c in rows["colour"]]),
    )
    return tpb.ModelInferRequest(model_name="clf", id="req-1", inputs=[x1, x2, colour], **overrides)


def _ints(values: pd.Series) -> list[int]:
    return [round(v) for v in values]


def rest_infer(served: LiveServer, body: dict[str, Any], token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{served.url}/v2/models/clf/infer", json=body, headers=headers, timeout=30)


def test_health_and_metadata_match_rest(client: triton.InferenceServerClient, served: LiveServer) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("clf")
    assert client.is_model_ready("clf", "1")
    meta = client.get_model_metadata("clf", as_json=True)
    rest = httpx.get(f"{served.url}/v2/models/clf").json()
    assert meta["name"] == rest["name"] == "clf"
    assert meta["versions"] == rest["versions"] == ["1"]
    assert meta["platform"] == rest["platform"]
    for key in ("inputs", "outputs"):
        got = [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in meta[key]]
        assert got == [(t["name"], t["datatype"], t["shape"]) for t in rest[key]]
    server = client.get_server_metadata(as_json=True)
    assert server["name"] == "driftgate"


def test_raw_tensors_give_the_models_answers(
    client: triton.InferenceServerClient, rows: pd.DataFrame, artifacts: Artifacts
) -> None:
    result = client.infer("clf", raw_inputs(rows), request_id="r-7")
    np.testing.assert_array_equal(result.as_numpy("predict"), artifacts.model.predict(rows))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), artifacts.model.predict_proba(rows), rtol=1e-12)
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("clf", "1", "r-7")
    assert len(response.raw_output_contents) == len(response.outputs) == 2  # raw in, raw out

    # INT64 for a numeric feature, and only the output asked for.
    ints = rows.assign(x1=rows["x1"].round())
    wanted = [triton.InferRequestedOutput("predict")]
    result = client.infer("clf", raw_inputs(ints, x1_type="INT64"), outputs=wanted)
    assert [o.name for o in result.get_response().outputs] == ["predict"]
    np.testing.assert_array_equal(result.as_numpy("predict"), artifacts.model.predict(ints))


def test_typed_contents_give_typed_outputs(
    stub: tpb_grpc.GRPCInferenceServiceStub, rows: pd.DataFrame, artifacts: Artifacts, served: LiveServer
) -> None:
    response = stub.ModelInfer(typed_request(rows))
    ints = rows.assign(x1=rows["x1"].round())
    outputs = {o.name: o for o in response.outputs}
    assert not response.raw_output_contents
    assert outputs["predict"].datatype == "INT64"
    assert list(outputs["predict"].contents.int64_contents) == artifacts.model.predict(ints).tolist()
    proba = np.reshape(outputs["predict_proba"].contents.fp64_contents, list(outputs["predict_proba"].shape))
    np.testing.assert_allclose(proba, artifacts.model.predict_proba(ints), rtol=1e-12)
    assert response.id == "req-1"

    # The same rows over REST V2: the same answer.
    body = {
        "inputs": [
            {"name": "x1", "shape": [len(rows)], "datatype": "INT64", "data": _ints(rows["x1"])},
            {"name": "x2", "shape": [len(rows)], "datatype": "FP64", "data": rows["x2"].tolist()},
            {"name": "colour", "shape": [len(rows)], "datatype": "BYTES", "data": rows["colour"].tolist()},
        ]
    }
    rest = {o["name"]: o for o in rest_infer(served, body).json()["outputs"]}
    assert rest["predict"]["data"] == list(outputs["predict"].contents.int64_contents)

    # A request parameter asks for raw outputs explicitly.
    raw = stub.ModelInfer(typed_request(rows, parameters={"binary_data_output": tpb.InferParameter(bool_param=True)}))
    assert len(raw.raw_output_contents) == 2
    assert np.frombuffer(raw.raw_output_contents[0], "<i8").tolist() == artifacts.model.predict(ints).tolist()


def test_predictions_are_logged_and_take_feedback_over_rest(
    client: triton.InferenceServerClient, rows: pd.DataFrame, served: LiveServer
) -> None:
    result = client.infer("clf", raw_inputs(rows))
    ids = result.get_response().parameters["prediction_ids"].string_param.split(",")
    assert len(ids) == len(set(ids)) == len(rows)
    labels = {"labels": [{"id": pid, "label": 1} for pid in ids]}
    deadline = time.monotonic() + 30
    while True:  # the log is written off the request path: the ids are known once it is flushed
        answer = httpx.post(f"{served.url}/v1/endpoints/clf/feedback", json=labels, timeout=30)
        if answer.status_code == 200 and answer.json()["accepted"] == len(ids):
            break
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.05)
    assert answer.json()["unknown_ids"] == []


def _grpc_error(call: Any) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        call()
    return caught.value


def test_bad_input_is_invalid_argument_with_the_rest_message(
    client: triton.InferenceServerClient, rows: pd.DataFrame, served: LiveServer
) -> None:
    # A numeric feature sent as BYTES.
    inputs = raw_inputs(rows)
    wrong = triton.InferInput("x2", [len(rows)], "BYTES")
    wrong.set_data_from_numpy(np.array(["a"] * len(rows), dtype=object))
    error = _grpc_error(lambda: client.infer("clf", [inputs[0], wrong, inputs[2]]))
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    assert "'x2'" in error.message()
    body = {
        "inputs": [
            {"name": "x1", "shape": [len(rows)], "datatype": "FP64", "data": rows["x1"].tolist()},
            {"name": "x2", "shape": [len(rows)], "datatype": "BYTES", "data": ["a"] * len(rows)},
            {"name": "colour", "shape": [len(rows)], "datatype": "BYTES", "data": rows["colour"].tolist()},
        ]
    }
    rest = rest_infer(served, body)
    assert rest.status_code == 422
    assert error.message() == rest.json()["error"]

    # A missing feature: schema validation in the data plane names it, as over REST.
    error = _grpc_error(lambda: client.infer("clf", inputs[:2]))
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    x2 = {"name": "x2", "shape": [len(rows)], "datatype": "FP64", "data": rows["x2"].tolist()}
    rest = rest_infer(served, {"inputs": [body["inputs"][0], x2]})
    assert rest.status_code == 422
    assert error.message() == rest.json()["error"]
    assert "colour" in error.message()


def test_typed_contents_errors_name_the_field(stub: tpb_grpc.GRPCInferenceServiceStub, rows: pd.DataFrame) -> None:
    n = len(rows)
    cases = {
        # Declared FP64, sent in the INT64 field.
        "contents.fp64_contents": tpb.ModelInferRequest.InferInputTensor(
            name="x1", datatype="FP64", shape=[n], contents=tpb.InferTensorContents(int64_contents=[1] * n)
        ),
        # One value short of the shape.
        f"expected {n} values": tpb.ModelInferRequest.InferInputTensor(
            name="x1", datatype="FP64", shape=[n], contents=tpb.InferTensorContents(fp64_contents=[1.0] * (n - 1))
        ),
    }
    for expected, x1 in cases.items():
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(typed_request(rows, x1=x1))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "input 'x1'" in caught.value.details() and expected in caught.value.details()


def test_unknown_model_or_version_is_not_found(client: triton.InferenceServerClient, rows: pd.DataFrame) -> None:
    for call in (
        lambda: client.is_model_ready("nope"),
        lambda: client.get_model_metadata("nope"),
        lambda: client.infer("nope", raw_inputs(rows)),
        lambda: client.infer("clf", raw_inputs(rows), model_version="99"),
    ):
        assert _grpc_error(call).status() == "StatusCode.NOT_FOUND"


def test_tokens_travel_in_the_authorization_metadata(tmp_path: Path, artifacts: Artifacts, rows: pd.DataFrame) -> None:
    with clf_server(tmp_path, artifacts, grpc_port=free_port()) as srv:
        token = srv.app.state.services.store.tokens.create("predict", "app")
        srv.app.state.services.tokens._loaded_at -= 2 * REFRESH_SECONDS  # re-read the token table now
        with triton.InferenceServerClient(f"127.0.0.1:{srv.settings.grpc_port}") as client:
            error = _grpc_error(lambda: client.infer("clf", raw_inputs(rows)))
            assert error.status() == "StatusCode.UNAUTHENTICATED"
            rest = httpx.post(f"{srv.url}/v2/models/clf/infer", json={"inputs": []})
            assert rest.status_code == 401 and error.message() == rest.json()["error"]
            wrong = {"authorization": "Bearer not-a-token"}
            error = _grpc_error(lambda: client.infer("clf", raw_inputs(rows), headers=wrong))
            assert error.status() == "StatusCode.UNAUTHENTICATED"
            assert _grpc_error(lambda: client.get_model_metadata("clf")).status() == "StatusCode.UNAUTHENTICATED"
            # Health and readiness stay open, as probes carry no token.
            assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("clf")

            good = {"authorization": f"Bearer {token}"}
            result = client.infer("clf", raw_inputs(rows), headers=good)
            np.testing.assert_array_equal(result.as_numpy("predict"), artifacts.model.predict(rows))
            assert client.get_model_metadata("clf", headers=good).name == "clf"


def test_status_codes_follow_the_rest_status() -> None:
    assert status_code(BadRequest("x")) == grpc.StatusCode.INVALID_ARGUMENT
    assert status_code(InvalidInput("x")) == grpc.StatusCode.INVALID_ARGUMENT
    assert status_code(PayloadTooLarge("x")) == grpc.StatusCode.INVALID_ARGUMENT
    assert status_code(Overloaded("x")) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status_code(NotReady("x")) == grpc.StatusCode.UNAVAILABLE
    assert status_code(ModelTimeout("x")) == grpc.StatusCode.DEADLINE_EXCEEDED
    assert status_code(ModelFailed("x")) == grpc.StatusCode.INTERNAL


@pytest.mark.slow
def test_cli_serve_grpc_port_with_two_workers(tmp_path: Path, artifacts: Artifacts, rows: pd.DataFrame) -> None:
    """`driftgate serve --grpc-port P --workers 2`: every worker listens on P (SO_REUSEPORT) and answers."""
    port, grpc_port = free_port(), free_port()
    data = ["--data-dir", str(tmp_path / "data")]
    driftgate = str(Path(sys.executable).parent / "driftgate")
    model, ref = tmp_path / "m.skops", tmp_path / "ref.csv"
    model.write_bytes(artifacts.skops)
    ref.write_bytes(artifacts.reference_csv)
    register = ["models", "register", "clf", str(model), "--format", "sklearn", "--reference", str(ref)]
    subprocess.run([driftgate, *register, *data], check=True, capture_output=True)
    subprocess.run(
        [driftgate, "deploy", "clf", "--model", "clf", "--version", "1", *data], check=True, capture_output=True
    )
    args = ["serve", "--port", str(port), "--grpc-port", str(grpc_port), "--workers", "2", "--monitor-interval", "0"]
    proc = subprocess.Popen([driftgate, *args, *data], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while len(_listeners(grpc_port)) < 2:  # each worker binds the port in its own lifespan
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, f"listening on the gRPC port: {_listeners(grpc_port)}"
            time.sleep(0.1)
        assert len(_listeners(grpc_port)) == 2
        for _ in range(4):  # new channels are new connections, spread over the workers by the kernel
            with triton.InferenceServerClient(f"127.0.0.1:{grpc_port}") as client:
                result = client.infer("clf", raw_inputs(rows))
                np.testing.assert_array_equal(result.as_numpy("predict"), artifacts.model.predict(rows))
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out


def _listeners(port: int) -> set[int]:
    """Pids of the processes with a listening TCP socket on `port` (from `ss`)."""
    if shutil.which("ss") is None:
        pytest.skip("needs ss (iproute2) to see which processes listen")
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return {int(pid) for pid in re.findall(r"pid=(\d+)", out)}


# KServe's Python SDK (`pip install kserve`, ~70 packages, a few minutes) is not a dev dependency: its
# protobuf messages share names with tritonclient's, so the two cannot be imported in one process. The
# client runs in a child process: this interpreter if it has kserve, else $KSERVE_PYTHON.
KSERVE_CLIENT = """
import asyncio, json, sys
import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest

async def main(url, binary, rows):
    async with InferenceGRPCClient(url, timeout=30, retries=0) as client:
        out = {"ready": [await client.is_server_live(), await client.is_server_ready(),
                         await client.is_model_ready("clf")]}
        inputs = []
        for name, datatype in (("x1", "FP64"), ("x2", "FP64"), ("colour", "BYTES")):
            tensor = InferInput(name, [len(rows[name])], datatype)
            tensor.set_data_from_numpy(np.array(rows[name], dtype=object if datatype == "BYTES" else None),
                                       binary_data=binary)
            inputs.append(tensor)
        answer = await client.infer(InferRequest(model_name="clf", infer_inputs=inputs, request_id="k-1"))
        out["id"] = answer.id
        out["outputs"] = {o.name: o.as_numpy().tolist() for o in answer.outputs}
        print(json.dumps(out))

asyncio.run(main(sys.argv[1], sys.argv[2] == "raw", json.loads(sys.argv[3])))
"""


def _kserve_python() -> str:
    if importlib.util.find_spec("kserve") is not None:
        return sys.executable
    other = os.environ.get("KSERVE_PYTHON")
    installed = Path(__file__).parents[2] / ".venvs" / "kserve" / "bin" / "python"  # scripts/kserve
    if not other and installed.exists():
        other = str(installed)
    if not other:
        pytest.skip("KServe's SDK is not installed (scripts/kserve, or set KSERVE_PYTHON to an interpreter with it)")
    return other


@pytest.mark.slow
@pytest.mark.parametrize("form", ["typed", "raw"])
def test_kserve_grpc_client(form: str, served: LiveServer, rows: pd.DataFrame, artifacts: Artifacts) -> None:
    python = _kserve_python()
    url = f"127.0.0.1:{served.settings.grpc_port}"
    payload = json.dumps({name: rows[name].tolist() for name in FEATURES})
    done = subprocess.run(
        [python, "-c", KSERVE_CLIENT, url, form, payload], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["ready"] == [True, True, True]
    assert answer["id"] == "k-1"
    assert answer["outputs"]["predict"] == artifacts.model.predict(rows).tolist()
    np.testing.assert_allclose(answer["outputs"]["predict_proba"], artifacts.model.predict_proba(rows), rtol=1e-12)
