"""The issue-22 models as the demo and benchmarks build them (driftgate.demo.media_models), served
by a real server on loopback: the skops spam pipeline (text), the ONNX digit MLP (8x8 image) and
the WordSpotter python model (1 s audio clip), each registered with its declared schema (media.md
section 1) and scored on generated data over native JSON, V2 REST and V2 gRPC (tritonclient: BYTES
for text, FP32 tensors for images and audio). The served answers are the models' own answers."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from driftgate.client import Client
from driftgate.demo import media_data, media_models
from driftgate.registry import formats
from driftgate.registry.registry import Registration, register
from tests.conftest import LiveServer, free_port, make_server
from tests.media_fixtures import register_artifact

pytestmark = pytest.mark.slow


@dataclass
class Served:
    server: LiveServer
    artifacts: dict[str, media_models.MediaArtifact]
    local: dict[str, formats.ModelAdapter]  # the same artifacts loaded here, to compare answers


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("media-models")
    artifacts = media_models.write_artifacts(tmp / "artifacts", reference_rows=60)
    server = make_server(tmp, grpc_port=free_port())
    try:
        with Client(server.url, timeout=180) as client:
            for kind in ("text", "image"):
                register_artifact(client, artifacts[kind])
            art = artifacts["audio"]  # format 'python' registers from the local side only
            store = server.app.state.services.store
            reference = art.reference.read_bytes()
            registration = Registration(
                art.name, art.artifact.encode(), "python", reference, art.reference.name, "label",
                schema=art.schema.read_text(),
            )  # fmt: skip
            register(store, registration)
            for art in artifacts.values():
                client.deploy(art.name, art.name, 1)
        local = {}
        for kind, art in artifacts.items():
            data = art.artifact.encode() if art.format == "python" else Path(art.artifact).read_bytes()
            local[kind] = formats.load(data, formats.detect_kind(data, art.format))
        yield Served(server, artifacts, local)
    finally:
        server.stop()


def _texts() -> pd.DataFrame:
    return media_data.emails(40, seed=21)


def _images() -> tuple[np.ndarray, np.ndarray]:
    return media_data.digit_images(30, seed=22, split="test")


def _clips() -> tuple[np.ndarray, np.ndarray]:
    clips, words = media_data.audio_clips(6, seed=23, silence_share=0.3)
    assert (words == "").any() and (words != "").any()
    return clips, words


def _local(served: Served, kind: str, column: str, values: Any) -> list[Any]:
    frame = pd.DataFrame({column: pd.Series(list(values), dtype=object)})
    if kind == "image":  # the ONNX graph's own input: the 64 pixels
        frame = pd.DataFrame(np.asarray(values, dtype=np.float32).reshape(len(values), -1))
    return [v.item() if isinstance(v, np.generic) else v for v in served.local[kind].predict(frame)[0]]


def _b64(array: np.ndarray) -> dict[str, str]:
    return {"b64": base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode(), "dtype": "float32"}


def test_the_versions_carry_their_declared_schemas(served: Served) -> None:
    with httpx.Client(base_url=served.server.url, timeout=60) as http:
        for art in served.artifacts.values():
            version = http.get(f"/v1/models/{art.name}/versions/1").json()
            (declared,) = json.loads(art.schema.read_text())["features"]
            (feature,) = version["schema"]["features"]
            assert {k: feature[k] for k in declared} == declared, (art.name, feature)
            assert version["output"]["kind"] == "classification"
        assert http.get("/v1/models/words/versions/1").json()["output"]["classes"] == ["", *media_data.WORDS]


def test_native_json(served: Served) -> None:
    texts = _texts()
    images, digits = _images()
    clips, words = _clips()
    with Client(served.server.url, timeout=180) as client:
        spam = client.predict("spam", [{"text": t} for t in texts["text"]])["predictions"]
        assert spam == _local(served, "text", "text", texts["text"])
        assert np.mean(np.array(spam) == texts["label"].to_numpy()) > 0.9
        seen = client.predict("digits", [{"image": i.tolist()} for i in images])["predictions"]
        assert seen == _local(served, "image", "image", images)
        assert np.mean(np.array(seen) == digits) > 0.8
        heard = client.predict("words", [{"clip": _b64(c)} for c in clips])["predictions"]
        assert heard == list(words) == _local(served, "audio", "clip", clips)  # "" for the silent ones
        flat = client.predict("words", [{"clip": clips[0].tolist()}])["predictions"]
        assert flat == heard[:1]


def _infer(
    triton: Any, client: Any, endpoint: str, name: str, array: np.ndarray, datatype: str, binary: bool | None
) -> list[Any]:
    tensor = triton.InferInput(name, list(array.shape), datatype)
    if binary is None:  # gRPC
        tensor.set_data_from_numpy(array)
    else:
        tensor.set_data_from_numpy(array, binary_data=binary)
    out = client.infer(endpoint, [tensor]).as_numpy("predict").tolist()
    return [v.decode() if isinstance(v, bytes) else v for v in out]


@pytest.mark.parametrize("transport", ["rest-json", "rest-binary", "grpc"])
def test_v2_with_tritonclient(served: Served, transport: str) -> None:
    texts = _texts()
    images, _ = _images()
    clips, words = _clips()
    if transport == "grpc":
        triton: Any = triton_grpc
        client: Any = triton_grpc.InferenceServerClient(f"127.0.0.1:{served.server.settings.grpc_port}")
        binary = None
    else:
        triton = triton_http
        client = triton_http.InferenceServerClient(url=served.server.url.removeprefix("http://"))
        binary = transport == "rest-binary"
    try:
        text = np.array([t.encode() for t in texts["text"]], dtype=object)
        answers = _infer(triton, client, "spam", "text", text, "BYTES", binary)
        assert answers == _local(served, "text", "text", texts["text"])
        answers = _infer(triton, client, "digits", "image", images.astype(np.float32), "FP32", binary)
        assert answers == _local(served, "image", "image", images)
        audio = clips if binary is not False else clips[:2]  # 16,000 floats a row as JSON text: two rows do
        answers = _infer(triton, client, "words", "clip", audio.astype(np.float32), "FP32", binary)
        assert answers == list(words[: len(audio)]) == _local(served, "audio", "clip", audio)
    finally:
        client.close()
