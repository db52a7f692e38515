"""The issue-22 models built from the generators: each loads the way the server loads it (no trust)
and scores held-out generated data well above chance; the drifts the generators model hurt it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from driftgate.demo import media_data, media_models
from driftgate.registry import formats
from driftgate.registry.schema import InputSchema


@pytest.fixture(scope="module")
def text_model() -> formats.ModelAdapter:
    model = media_models.train_text_model(media_data.emails(1500, seed=0))
    data = media_models.text_model_skops(model)
    assert sio.get_untrusted_types(data=data) == []  # every type in it is one skops trusts by default
    return formats.load(data, formats.detect_kind(data, "sklearn"))  # no trust


@pytest.fixture(scope="module")
def image_model() -> formats.ModelAdapter:
    images, digits = media_data.digit_images(1200, seed=0, split="train")
    data = media_models.image_model_onnx(media_models.train_image_model(images, digits))
    return formats.load(data, formats.detect_kind(data, "onnx"))


def _accuracy(predicted: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.asarray(predicted) == np.asarray(truth)))


def test_text_model_detects_spam_and_misses_a_new_campaign(text_model: formats.ModelAdapter) -> None:
    held_out = media_data.emails(1000, seed=11)
    labels, proba = text_model.predict(held_out[["text"]])
    assert text_model.classes == ["ham", "spam"] and text_model.feature_names == ["text"]
    assert proba is not None and proba.shape == (1000, 2)
    assert _accuracy(labels, held_out["label"]) > 0.95  # chance: 0.6
    campaign = media_data.emails(1000, seed=11, campaign=1.0)
    assert _accuracy(text_model.predict(campaign[["text"]])[0], campaign["label"]) < 0.85


def test_a_text_column_of_strings_scores(text_model: formats.ModelAdapter) -> None:
    # the frame a validated text column gives (object ndarray of str), an empty text included
    frame = pd.DataFrame({"text": np.array(["claim your free prize now", ""], dtype=object)})
    labels, _ = text_model.predict(frame)
    assert list(labels) == ["spam", "ham"]


def test_image_model_is_an_onnx_mlp_on_64_pixels(image_model: formats.ModelAdapter) -> None:
    assert isinstance(image_model, formats.OnnxModel)
    (inp,) = image_model.inputs
    assert inp.shape == [None, 64] and inp.type == "tensor(float)"
    images, digits = media_data.digit_images(1000, seed=12, split="test")
    labels, proba = image_model.predict(pd.DataFrame(images.reshape(len(images), -1)))
    assert proba is not None and proba.shape == (1000, 10)
    assert _accuracy(labels, digits) > 0.9  # chance: 0.1
    bright, digits = media_data.digit_images(1000, seed=12, split="test", offset=6.0)
    assert _accuracy(image_model.predict(pd.DataFrame(bright.reshape(len(bright), -1)))[0], digits) < 0.8


def test_word_spotter_hears_words_and_answers_empty_on_silence() -> None:
    spotter = formats.load(media_models.AUDIO_MODEL.encode(), "python")  # as `--format python` loads it
    clips, words = media_data.audio_clips(300, seed=13)
    frame = pd.DataFrame({"clip": pd.Series(list(clips), dtype=object)})  # per-row arrays (schema.frame_of)
    labels, proba = spotter.predict(frame)
    assert spotter.classes == ["", *media_data.WORDS]
    assert proba is not None and np.allclose(proba.sum(axis=1), 1.0)
    assert _accuracy(labels, words) > 0.95  # chance: ~0.1
    assert set(labels[words == ""]) == {""}
    quiet, words = media_data.audio_clips(300, seed=13, gain_db=-30)
    answers = spotter.predict(pd.DataFrame({"clip": pd.Series(list(quiet), dtype=object)}))[0]
    assert np.mean(answers == "") > 0.5 > np.mean(words == "")  # a quiet microphone: empty answers
    two_d = media_models.WordSpotter().predict(clips[:5])  # a plain 2-D block works too
    assert list(two_d) == list(labels[:5])
    assert media_models.WordSpotter().predict(pd.DataFrame({"clip": pd.Series([], dtype=object)})).shape == (0,)


def test_write_artifacts(tmp_path: Path) -> None:
    written = media_models.write_artifacts(tmp_path, reference_rows=40)
    assert set(written) == {"text", "image", "audio"}
    for kind, art in written.items():
        schema = InputSchema.from_dict(json.loads(art.schema.read_text()))
        (feature,) = schema.features
        reference = pd.read_parquet(art.reference)
        assert list(reference.columns) == [feature.name, media_models.TARGET] and len(reference) == 40, kind
        if feature.kind == "tensor":
            assert feature.shape is not None
            cells = np.stack(reference[feature.name].to_numpy())
            assert cells.shape == (40, int(np.prod(feature.shape))) and cells.dtype == np.float32
    assert InputSchema.from_dict(media_models.IMAGE_SCHEMA).features[0].max == 16
    assert written["audio"].artifact == media_models.AUDIO_MODEL
    for kind in ("text", "image"):
        data = Path(written[kind].artifact).read_bytes()
        formats.load(data, formats.detect_kind(data, written[kind].format))
