"""Request bodies sent with `Content-Encoding: gzip` or `deflate`, through a real server on loopback
(and tritonclient HTTP's request compression): every body route answers them as it answers the plain
body, big ones through the body decoder process; the decoded size counts against max_body_bytes (a
zip bomb is refused before it is inflated past it); other codings get 415, broken streams 400."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
import tritonclient.http as triton
from starlette.exceptions import HTTPException

from driftgate.api.content_encoding import PIECE_BYTES, Inflating
from tests.conftest import Artifacts, LiveServer, classification_data, make_server

FEATURES = ["x1", "x2", "colour"]
MAX_BODY = 2 * 1024 * 1024
BIG_BODY = 64 * 1024


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, artifacts: Artifacts) -> Iterator[LiveServer]:
    srv = make_server(tmp_path_factory.mktemp("encoding"), max_body_bytes=MAX_BODY, big_body_bytes=BIG_BODY)
    try:
        with httpx.Client(base_url=srv.url, timeout=180) as http:
            files = {"file": ("m.skops", artifacts.skops), "reference": ("ref.csv", artifacts.reference_csv)}
            r = http.post("/v1/models/clf/versions", data={"format": "sklearn", "target": "y"}, files=files)
            assert r.status_code == 201, r.text
            assert http.put("/v1/endpoints/clf", json={"model": "clf", "version": 1}).status_code == 200
        yield srv
    finally:
        srv.stop()


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,  # HTTP's deflate: the zlib format
    "deflate (raw)": raw_deflate,  # what some clients send instead
}


def bodies(rows: pd.DataFrame) -> dict[str, bytes]:
    """One body per route, each the same rows."""
    records = rows.to_dict(orient="records")
    split = {"columns": FEATURES, "data": rows.to_numpy().tolist()}
    n = len(rows)
    v2 = {
        "inputs": [
            {"name": "x1", "shape": [n], "datatype": "FP64", "data": rows["x1"].tolist()},
            {"name": "x2", "shape": [n], "datatype": "FP64", "data": rows["x2"].tolist()},
            {"name": "colour", "shape": [n], "datatype": "BYTES", "data": rows["colour"].tolist()},
        ]
    }
    return {
        "/v1/endpoints/clf/predict": orjson.dumps({"instances": records}),
        "/v1/endpoints/clf/invocations": orjson.dumps({"dataframe_split": split}),
        "/endpoints/clf/invocations": orjson.dumps({"dataframe_records": records}),
        "/v2/models/clf/infer": orjson.dumps(v2),
    }


def predictions(path: str, response: httpx.Response) -> list[Any]:
    assert response.status_code == 200, (path, response.text)
    body = response.json()
    return (
        next(o["data"] for o in body["outputs"] if o["name"] == "predict")
        if path.startswith("/v2")
        else body["predictions"]
    )


def chunks(data: bytes, size: int = 4096) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize("n", [30, 4000], ids=["small", "big"])
def test_compressed_bodies_get_the_answers_plain_ones_get(served: LiveServer, artifacts: Artifacts, n: int) -> None:
    rows = classification_data(n, seed=3)[FEATURES]
    expected = artifacts.model.predict(rows).tolist()  # type: ignore[attr-defined]
    json_type = {"Content-Type": "application/json"}
    with httpx.Client(base_url=served.url, timeout=180) as http:
        for path, body in bodies(rows).items():
            if n > 30:  # decoded, it is a big body: parsed in the body decoder process
                assert len(body) > BIG_BODY
            assert predictions(path, http.post(path, content=body, headers=json_type)) == expected
            for coding, encode in ENCODERS.items():
                headers = {**json_type, "Content-Encoding": coding.split(" ")[0]}
                sent = encode(body)
                assert predictions(path, http.post(path, content=sent, headers=headers)) == expected, coding
                # Streamed in small chunks (chunked transfer, no length): the same answer.
                streamed = http.post(path, content=chunks(sent), headers=headers)
                assert predictions(path, streamed) == expected, coding


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_tritonclient_request_compression(served: LiveServer, artifacts: Artifacts, algorithm: str) -> None:
    rows = classification_data(50, seed=4)[FEATURES]
    inputs = []
    for name, dtype, values in (
        ("x1", "FP64", rows["x1"].to_numpy(np.float64)),
        ("x2", "FP64", rows["x2"].to_numpy(np.float64)),
        ("colour", "BYTES", rows["colour"].to_numpy(dtype=object)),
    ):
        tensor = triton.InferInput(name, [len(rows)], dtype)
        tensor.set_data_from_numpy(values, binary_data=name != "colour")
        inputs.append(tensor)
    with triton.InferenceServerClient(served.url.removeprefix("http://")) as client:
        result = client.infer("clf", inputs, request_compression_algorithm=algorithm)
    np.testing.assert_array_equal(result.as_numpy("predict"), artifacts.model.predict(rows))  # type: ignore[attr-defined]


def test_a_zip_bomb_is_refused_with_413(served: LiveServer) -> None:
    bomb = gzip.compress(b"[" + b" " * (40 * MAX_BODY) + b"]")
    assert len(bomb) < MAX_BODY // 10
    for path in ("/v2/models/clf/infer", "/v1/endpoints/clf/predict", "/endpoints/clf/invocations"):
        r = httpx.post(served.url + path, content=bomb, headers={"Content-Encoding": "gzip"}, timeout=60)
        assert r.status_code == 413, (path, r.text)
        assert f"limit of {MAX_BODY} bytes once decoded" in r.json()["error"]


def test_unknown_codings_get_415_and_broken_streams_400(served: LiveServer) -> None:
    body = bodies(classification_data(5, seed=1)[FEATURES])["/v2/models/clf/infer"]
    url = served.url + "/v2/models/clf/infer"
    for coding in ("br", "zstd", "gzip, gzip"):
        r = httpx.post(url, content=body, headers={"Content-Encoding": coding})
        assert r.status_code == 415 and coding in r.json()["error"], coding
    mlflow = httpx.post(served.url + "/endpoints/clf/invocations", content=body, headers={"Content-Encoding": "br"})
    assert mlflow.status_code == 415 and mlflow.json()["error_code"] == "BAD_REQUEST"  # MLflow's shape there
    plain = httpx.post(url, content=body, headers={"Content-Encoding": "identity"})
    assert plain.status_code == 200
    truncated = httpx.post(url, content=gzip.compress(body)[:-12], headers={"Content-Encoding": "gzip"})
    assert truncated.status_code == 400 and "truncated" in truncated.json()["error"]
    garbage = httpx.post(url, content=b"not gzip at all", headers={"Content-Encoding": "gzip"})
    assert garbage.status_code == 400 and "not valid gzip" in garbage.json()["error"]
    trailing = httpx.post(url, content=zlib.compress(body) + b"xx", headers={"Content-Encoding": "deflate"})
    assert trailing.status_code == 400 and "after the end" in trailing.json()["error"]


def test_inflation_stops_one_piece_past_the_limit() -> None:
    """However far a body would inflate, at most limit + one piece is produced before the refusal."""
    limit = 3 * PIECE_BYTES + 17
    bomb = gzip.compress(b"\0" * (50 * PIECE_BYTES))
    sent = iter(chunks(bomb, 1000))

    async def receive() -> dict[str, Any]:
        chunk = next(sent, b"")
        return {"type": "http.request", "body": chunk, "more_body": bool(chunk)}

    async def drain() -> int:
        inflating, produced = Inflating(receive, "gzip", limit), 0
        with pytest.raises(HTTPException) as caught:
            while True:
                message = await inflating()
                produced += len(message["body"])
                assert message["more_body"], "the whole bomb was inflated"
        assert caught.value.status_code == 413
        return produced

    assert limit - PIECE_BYTES < asyncio.run(drain()) <= limit
