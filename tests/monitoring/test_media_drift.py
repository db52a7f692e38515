"""Text and tensor features in the live drift report (pure: `live.reference_of` and `live.window_drift`,
what `LiveDrift.compare` runs, on rows as the prediction log stores them; no server, no store).

Oracles: the descriptor columns equal the descriptors computed directly; the embedding test's p-value is
adjusted with the other features' in one Holm family; a brightness change of images, a change of text
length and of vocabulary, and a volume change of audio clips are flagged, on generated data; calm
windows (another sample of the reference's distribution) are flagged in at most 5 % of seeded repeats
(the endpoint's verdict, after Holm over every test of the report).
"""

from __future__ import annotations

import doctest
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftgate.core.payload import encode_tensor
from driftgate.core.redaction import mask_text
from driftgate.errors import BadRequest
from driftgate.monitoring.descriptors import TextDescriber, describe_audio, describe_images
from driftgate.monitoring.drift import DriftSettings, holm
from driftgate.monitoring.drift import media as media_module
from driftgate.monitoring.drift.media import MIN_EMBEDDING_ROWS, MediaReference, stack_tensors
from driftgate.monitoring.live import baseline_of, reference_of, window_drift
from driftgate.registry.schema import FeatureSpec, InputSchema
from tests.monitoring.media_windows import IMAGE, KINDS, SHORT_CLIP, TEXT, clips, images, log_rows, texts

SETTINGS = DriftSettings()
REFERENCE_ROWS = 600
WINDOW_ROWS = 300
PAYLOAD_RATE = 0.3


def test_doctests() -> None:
    assert doctest.testmod(media_module).failed == 0


def test_text_reference_rows_are_described_by_a_vocabulary_not_fitted_on_them() -> None:
    reference_texts = texts(0, 101)
    reference = MediaReference.fit([TEXT], {"text": reference_texts})
    order = np.random.default_rng(media_module.SPLIT_SEED).permutation(101)
    first, second = order[:50], order[50:]
    window = TextDescriber.fit([reference_texts[i] for i in first])
    other = TextDescriber.fit([reference_texts[i] for i in second])
    assert reference.describers["text"] == window  # what describes a window's texts
    for rows, describer in ((second, window), (first, other)):
        expected = describer.describe([reference_texts[i] for i in rows])
        for name, values in expected.items():
            np.testing.assert_array_equal(reference.columns[f"text.{name}"][rows], values)
    # Not 0 by construction, as it would be on the texts the vocabulary came from.
    assert np.nanmean(reference.columns["text.unseen_token_share"]) > 0
    assert all(len(values) == 101 for values in reference.columns.values())
    assert reference.kinds == dict.fromkeys(reference.columns, "numeric")


def test_window_columns_describe_stored_text_and_read_logged_tensor_descriptors() -> None:
    rng = np.random.default_rng(1)
    reference = reference_of(KINDS["text"].reference_frame(2, 200), KINDS["text"].schema)
    window = texts(1, 40)
    got = reference.media.current_columns([{"text": t} for t in window])
    expected = reference.media.describers["text"].describe(window)
    for name, values in expected.items():
        np.testing.assert_array_equal(got[f"text.{name}"], values)

    batch = images(1, 40)
    rows = log_rows(IMAGE, batch, rng, payload_rate=0.5)
    image_reference = reference_of(KINDS["image"].reference_frame(3, 50), KINDS["image"].schema)
    logged = image_reference.media.current_columns([r["inputs"] for r in rows])
    for name, values in describe_images(batch, max_value=16).items():
        np.testing.assert_allclose(logged[f"image.{name}"], values)
    rows[0]["inputs"].pop("image.brightness")  # a row logged without its descriptors reads as missing
    assert np.isnan(image_reference.media.current_columns([r["inputs"] for r in rows])["image.brightness"][0])


def test_reference_tensors_from_nested_or_flat_lists_alike() -> None:
    batch = images(4, 30)
    nested = pd.DataFrame({"image": [b.tolist() for b in batch]})
    flat = pd.DataFrame({"image": [b.reshape(-1).tolist() for b in batch]})
    schema = InputSchema((IMAGE,))
    a, b = reference_of(nested, schema), reference_of(flat, schema)
    for name, values in describe_images(batch, max_value=16).items():
        np.testing.assert_allclose(a.media.columns[f"image.{name}"], values)
        np.testing.assert_array_equal(a.media.columns[f"image.{name}"], b.media.columns[f"image.{name}"])
    # Cells become arrays of the feature's shape and dtype: what the model is scored with.
    assert a.features["image"][0].shape == (8, 8) and a.features["image"][0].dtype == np.float32
    with pytest.raises(ValueError, match=r"'image', row 1: 63 values, expected 64"):
        stack_tensors("image", [batch[0].tolist(), batch[1].reshape(-1)[:63].tolist()], (8, 8), "float32")


def test_audio_reference_descriptors_at_the_feature_sample_rate() -> None:
    batch = clips(5, 20)
    reference = reference_of(pd.DataFrame({"clip": list(batch)}), InputSchema((SHORT_CLIP,)))
    for name, values in describe_audio(batch, sample_rate=16000).items():
        np.testing.assert_allclose(reference.media.columns[f"clip.{name}"], values)
    assert reference.media.columns["clip.duration_s"][0] == pytest.approx(0.25)


def test_embedding_drift_is_feature_x_in_the_same_holm_family() -> None:
    rng = np.random.default_rng(6)
    reference = reference_of(KINDS["image"].reference_frame(7, REFERENCE_ROWS), KINDS["image"].schema)
    rows = log_rows(IMAGE, images(6, WINDOW_ROWS, scale=0.8), rng, PAYLOAD_RATE)
    report, notes = window_drift(reference, KINDS["image"].schema, rows, SETTINGS)
    assert notes == []
    embedding = report.feature("image")
    assert embedding.kind == "tensor" and embedding.distribution.effect == "mmd"
    assert embedding.n_current == sum(r["inputs"]["image"] is not None for r in rows)
    body = report.to_dict(include_histograms=True)
    entry = next(f for f in body["features"] if f["name"] == "image")
    assert entry["test"] == "mmd" and entry["p_value_test"] == "mmd_permutation" and entry["histogram"] is None
    assert {f["name"] for f in body["features"]} == {"image", "image.brightness", "image.contrast",
                                                     "image.sharpness", "image.saturated_share"}  # fmt: skip
    # One family: the adjusted p-values are Holm's over every subtest of the report.
    family = [t for f in report.features for t in f.subtests]
    family += report.multivariate.subtests if report.multivariate else []
    assert [t.p_value_adjusted for t in family] == pytest.approx(holm([t.p_value for t in family]))
    assert body["dataset"]["n_features"] == 5


def test_too_few_sampled_payloads_skip_the_embedding_test_with_a_note() -> None:
    rng = np.random.default_rng(8)
    reference = reference_of(KINDS["image"].reference_frame(9, 200), KINDS["image"].schema)
    rows = log_rows(IMAGE, images(8, 100), rng, payload_rate=0.0)
    for row, image in zip(rows[: MIN_EMBEDDING_ROWS - 1], images(80, MIN_EMBEDDING_ROWS - 1), strict=True):
        row["inputs"]["image"] = encode_tensor(image)
    rows[-1]["inputs"]["image"] = {"dtype": "float32", "shape": [8, 8], "zlib": "bm90IHpsaWI="}  # unreadable
    report, notes = window_drift(reference, KINDS["image"].schema, rows, SETTINGS)
    assert "image" not in [f.name for f in report.features]
    assert any(f"{MIN_EMBEDDING_ROWS - 1} sampled payload(s)" in note for note in notes)
    assert any("1 logged payload(s) unreadable" in note for note in notes)
    assert "image.brightness" in [f.name for f in report.features]  # the descriptors are still tested


def test_text_beside_a_numeric_feature() -> None:
    rng = np.random.default_rng(10)
    schema = InputSchema((TEXT, FeatureSpec("amount", "numeric")))
    frame = pd.DataFrame({"text": texts(10, 400), "amount": rng.normal(size=400)})
    reference = reference_of(frame, schema)
    rows = log_rows(TEXT, texts(11, 200), rng, 0.0)
    for row in rows:
        row["inputs"]["amount"] = float(rng.normal(1.0))  # the amount moved, the text did not
    report, _ = window_drift(reference, schema, rows, SETTINGS)
    assert report.drifted_features == ["amount"]
    assert {f.name for f in report.features} == {"amount", *(f"text.{d}" for d in media_module.TEXT_DESCRIPTORS)}


def test_a_past_window_as_the_baseline() -> None:
    # Its text described as a registered reference's, its tensors' descriptors as logged, its sampled
    # payloads as the embedding reference.
    rng = np.random.default_rng(12)
    schema = KINDS["image"].schema
    past = log_rows(IMAGE, images(12, WINDOW_ROWS), rng, PAYLOAD_RATE)
    baseline = baseline_of(past, schema)
    assert baseline.media.embeddings["image"].rows.shape[0] == sum(r["inputs"]["image"] is not None for r in past)
    dim, _ = window_drift(baseline, schema, log_rows(IMAGE, images(13, WINDOW_ROWS, scale=0.8), rng, 0.3), SETTINGS)
    assert {"image.brightness", "image"} <= set(dim.drifted_features)
    unsampled = baseline_of(log_rows(IMAGE, images(14, 50), rng, 0.0), schema)
    _, notes = window_drift(unsampled, schema, log_rows(IMAGE, images(15, 50), rng, 1.0), SETTINGS)
    assert notes == ["feature 'image': embedding drift (mmd) not tested: fewer than 2 reference tensors"]

    text_schema = KINDS["text"].schema
    text_baseline = baseline_of(log_rows(TEXT, texts(16, WINDOW_ROWS), rng, 0.0), text_schema)
    assert len(text_baseline.media.columns["text.unseen_token_share"]) == WINDOW_ROWS
    campaign, _ = window_drift(
        text_baseline, text_schema, log_rows(TEXT, texts(17, WINDOW_ROWS, campaign=0.8), rng, 0), SETTINGS
    )
    assert "text.unseen_token_share" in campaign.drifted_features


def _with_contacts(seed: int, n: int) -> list[str]:
    rng = np.random.default_rng(seed)
    names = ["ann.lee", "bo.chen", "cy.diaz", "dee.ford"]
    return [f"{t} Mail {rng.choice(names)}@example.org, call 0151 {rng.integers(1000, 9999)}." for t in texts(seed, n)]


def test_a_masked_text_is_compared_with_its_masked_reference() -> None:
    # The log stores the text masked (`redact: mask`): the reference is masked alike, else every
    # window would look new (shorter texts, the token "email" unseen, the numbers gone).
    spec = KINDS["text"]
    frame = pd.DataFrame({"text": _with_contacts(20, REFERENCE_ROWS)})
    stored = log_rows(TEXT, [mask_text(t) for t in _with_contacts(21, WINDOW_ROWS)], np.random.default_rng(0), 0)
    masked, _ = window_drift(reference_of(frame, spec.schema, redact={"text": "mask"}), spec.schema, stored, SETTINGS)
    assert masked.drifted_features == []
    unmasked, _ = window_drift(reference_of(frame, spec.schema), spec.schema, stored, SETTINGS)
    assert {"text.length_chars", "text.unseen_token_share"} <= set(unmasked.drifted_features)
    # A hashed or dropped text is not what the model saw: no descriptors of it.
    hashed = reference_of(frame, spec.schema, redact={"text": "hash"})
    assert hashed.media.columns == {} and list(hashed.features.columns) == ["text"]
    with pytest.raises(BadRequest, match="redaction rules drop or hash every one"):
        window_drift(hashed, spec.schema, stored, SETTINGS)


# ---- detection power and false alarms, on generated data -----------------------------------------

CHANGES = {
    # name: (kind, the change, the features expected to flag it in every repeat)
    "image brightness": ("image", {"scale": 0.8}, {"image.brightness", "image"}),
    "text length": ("text", {"length": 1.5}, {"text.length_tokens", "text.length_chars"}),
    "text vocabulary": ("text", {"campaign": 0.5}, {"text.unseen_token_share"}),
    "audio volume": ("audio", {"gain_db": -6.0}, {"clip.rms_db"}),
}
REPEATS = 10


def _window(kind: str, seed: int, **change: Any) -> tuple[bool, set[str]]:
    """(the endpoint's verdict, the drifted features) of one window against a fresh reference."""
    spec = KINDS[kind]
    reference = reference_of(spec.reference_frame(10_000 + seed, REFERENCE_ROWS), spec.schema)
    traffic = spec.make(seed, WINDOW_ROWS, **change)
    rows = log_rows(spec.spec, traffic, np.random.default_rng(seed), PAYLOAD_RATE)
    report, _ = window_drift(reference, spec.schema, rows, SETTINGS)
    return report.dataset.drifted, set(report.drifted_features)


@pytest.mark.slow
@pytest.mark.parametrize("name", CHANGES)
def test_each_change_is_flagged(name: str) -> None:
    kind, change, expected = CHANGES[name]
    results = [_window(kind, seed, **change) for seed in range(REPEATS)]
    assert all(drifted for drifted, _ in results), name
    for feature in expected:
        assert sum(feature in found for _, found in results) == REPEATS, (name, feature, results)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_calm_windows_false_alarm_rate_at_most_five_percent(kind: str) -> None:
    repeats = 40
    alarms = [seed for seed in range(repeats) if _window(kind, 1000 + seed)[0]]
    assert len(alarms) <= 0.05 * repeats, (kind, alarms)
