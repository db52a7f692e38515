"""The prediction log of text, image and audio models through a real server (issue 22, media.md
section 2): an ONNX digits classifier on an 8x8 image (worker processes), a skops spam pipeline on a
text, and a python word spotter on one-second audio clips, each registered with its declared schema.
Stored rows hold the descriptors on every row, the compressed tensor on the sampled ones and on every
row routed to review (it decodes to the tensor sent), and the text as sent, masked where redacted."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from driftgate.client import Client
from driftgate.core.payload import decode_tensor
from driftgate.demo import media_data
from driftgate.demo.media_models import (
    AUDIO_MODEL,
    AUDIO_SCHEMA,
    IMAGE_SCHEMA,
    TEXT_SCHEMA,
    image_model_onnx,
    text_model_skops,
    train_text_model,
)
from driftgate.monitoring.descriptors import IMAGE_DESCRIPTORS, describe_audio, describe_images
from driftgate.registry.formats import python_artifact
from driftgate.registry.registry import Registration, register
from tests.conftest import LiveServer, make_server
from tests.helpers import until

LONG_TEXT_SCHEMA = {"features": [{**TEXT_SCHEMA["features"][0], "max_chars": 100_000}]}


def _image_model(images: np.ndarray, labels: np.ndarray) -> Any:
    from sklearn.neural_network import MLPClassifier

    with warnings.catch_warnings():  # a few iterations: it does not converge, and need not
        warnings.simplefilter("ignore")
        return MLPClassifier((16,), max_iter=40, random_state=0).fit(images.reshape(len(images), -1), labels)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = make_server(tmp_path_factory.mktemp("media_log"))
    try:
        images, digits = media_data.digit_images(300, 0, split="train")
        reference = media_data.reference_frame("image", images[:200], digits[:200])
        emails = media_data.emails(300, 0)
        clips, words = media_data.audio_clips(40, 0)
        with Client(srv.url, timeout=180) as client:
            onnx = image_model_onnx(_image_model(images, digits))
            client.register_model("digits", onnx, "onnx", reference=reference, target="label", schema=IMAGE_SCHEMA)
            skops = text_model_skops(train_text_model(emails))
            client.register_model("spam", skops, "sklearn", reference=emails, target="label", schema=LONG_TEXT_SCHEMA)
        audio_reference = media_data.reference_frame("clip", clips, words).to_parquet()
        store = srv.app.state.services.store
        register(
            store,
            Registration(
                "words",
                python_artifact(AUDIO_MODEL),
                "python",
                audio_reference,
                reference_filename="ref.parquet",
                target="label",
                schema=AUDIO_SCHEMA,
            ),
        )
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=180) as c:
        yield c


def deploy(http: httpx.Client, server: LiveServer, endpoint: str, **config: Any) -> None:
    r = http.put(f"/v1/endpoints/{endpoint}", json={"model": endpoint, "version": 1, **config})
    assert r.status_code == 200, r.text
    plane = server.app.state.services.dataplane
    until(lambda: plane.state(endpoint).config.payload_sample_rate == config.get("payload_sample_rate", 0.05))


def stored(server: LiveServer, ids: list[str]) -> list[dict[str, Any]]:
    svc = server.app.state.services
    svc.recorder.flush()
    rows = [svc.store.predictions.get(i) for i in ids]
    assert all(r is not None for r in rows)
    return rows  # type: ignore[return-value]


def predict(http: httpx.Client, endpoint: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    r = http.post(f"/v1/endpoints/{endpoint}/predict", json={"instances": rows})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_image_rows_keep_descriptors_always_and_payloads_when_reviewed_or_sampled(
    http: httpx.Client, server: LiveServer
) -> None:
    sent, _ = media_data.digit_images(24, 5, split="test")
    # Sampling off, and about half the rows routed to review (the model's confidence below its median).
    deploy(http, server, "digits", automation="full", payload_sample_rate=0.0)
    confidence = np.max(predict(http, "digits", [{"image": i.tolist()} for i in sent])["probabilities"], axis=1)
    threshold = float(np.median(confidence))
    deploy(http, server, "digits", automation="partial", review_threshold=threshold, payload_sample_rate=0.0)
    answer = predict(http, "digits", [{"image": i.tolist()} for i in sent])
    rows = stored(server, answer["ids"])
    expected = describe_images(sent, max_value=16.0)
    reviewed = [r["status"] == "review" for r in rows]
    assert 0 < sum(reviewed) < len(rows)
    for i, row in enumerate(rows):
        for name in IMAGE_DESCRIPTORS:
            assert row["inputs"][f"image.{name}"] == pytest.approx(expected[name][i], rel=1e-6, abs=1e-9)
        if reviewed[i]:
            np.testing.assert_array_equal(decode_tensor(row["inputs"]["image"]), sent[i])
        else:
            assert row["inputs"]["image"] is None

    deploy(http, server, "digits", automation="full", payload_sample_rate=1.0)
    rows = stored(server, predict(http, "digits", [{"image": i.tolist()} for i in sent])["ids"])
    for image, row in zip(sent, rows, strict=True):
        assert row["status"] == "ok"
        np.testing.assert_array_equal(decode_tensor(row["inputs"]["image"]), image)


def test_texts_are_stored_whole_and_masked(http: httpx.Client, server: LiveServer) -> None:
    deploy(http, server, "spam", redact={"text": "mask"})
    long = "word " * 19_000 + "the end"
    texts = [long, "Reply to jo.doe@example.com or call 0151 234 567.", 'café ☕ "quoted"\nnext line', ""]
    rows = stored(server, predict(http, "spam", [{"text": t} for t in texts])["ids"])
    assert [r["inputs"]["text"] for r in rows] == [
        long,
        "Reply to [email] or call #### ### ###.",
        'café ☕ "quoted"\nnext line',
        "",
    ]


def test_audio_rows_carry_their_descriptors_and_sampled_clips(http: httpx.Client, server: LiveServer) -> None:
    deploy(http, server, "words", payload_sample_rate=1.0)
    clips, _ = media_data.audio_clips(3, 7)
    clips[1] = 0.0  # silence: an empty answer
    answer = predict(http, "words", [{"clip": c.tolist()} for c in clips])
    assert answer["predictions"][1] == ""
    rows = stored(server, answer["ids"])
    expected = describe_audio(clips, sample_rate=media_data.SAMPLE_RATE)
    frame = pd.DataFrame([r["inputs"] for r in rows])
    assert list(frame["clip.duration_s"]) == pytest.approx(list(expected["duration_s"]))
    assert list(frame["clip.silence_share"]) == pytest.approx(list(expected["silence_share"]))
    assert frame["clip.rms_db"][1] == pytest.approx(-120.0)
    for clip, row in zip(clips, rows, strict=True):
        np.testing.assert_array_equal(decode_tensor(row["inputs"]["clip"]), clip)
