"""The seeded text, image and audio generators: forms, determinism, and each knob moving the input
metric it stands for (measured with driftgate.monitoring.descriptors, as the monitor does)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftgate.demo import media_data
from driftgate.monitoring.descriptors import TextDescriber, describe_audio, describe_images


def _mean(values: np.ndarray) -> float:
    return float(np.nanmean(values))


# ---- text ----------------------------------------------------------------------------------------


def test_emails_form_and_determinism() -> None:
    frame = media_data.emails(300, seed=1)
    assert list(frame.columns) == ["text", "label"] and len(frame) == 300
    assert frame["text"].dtype == object and all(isinstance(t, str) and t for t in frame["text"])
    assert set(frame["label"]) == {"ham", "spam"}
    assert 0.3 < (frame["label"] == "spam").mean() < 0.5  # spam_share=0.4
    pd.testing.assert_frame_equal(frame, media_data.emails(300, seed=1))
    assert not frame.equals(media_data.emails(300, seed=2))


def test_email_length_knob_moves_the_length_descriptors() -> None:
    describer = TextDescriber.fit(media_data.emails(500, seed=0)["text"])
    calm = describer.describe(media_data.emails(1000, seed=1)["text"])
    longer = describer.describe(media_data.emails(1000, seed=1, length=2.0)["text"])
    shorter = describer.describe(media_data.emails(1000, seed=1, length=0.5)["text"])
    for name in ("length_chars", "length_tokens"):
        assert _mean(longer[name]) > 1.6 * _mean(calm[name]) > 1.6**2 * _mean(shorter[name]), name
    assert _mean(calm["empty"]) == 0.0


def test_email_campaign_knob_brings_unseen_words() -> None:
    describer = TextDescriber.fit(media_data.emails(2000, seed=0)["text"])
    calm = media_data.emails(1000, seed=1)
    new = media_data.emails(1000, seed=1, campaign=1.0)
    assert _mean(describer.describe(calm["text"])["unseen_token_share"]) < 0.02
    shift = describer.describe(new["text"])["unseen_token_share"]
    assert _mean(shift) > 0.1
    spam = (new["label"] == "spam").to_numpy()
    assert _mean(shift[spam]) > 10 * max(_mean(shift[~spam]), 0.001)  # the campaign is spam's
    calm_words = {w for t in calm["text"] for w in t.lower().split()}
    assert not calm_words & set(media_data.CAMPAIGN_WORDS)
    with pytest.raises(ValueError):
        media_data.emails(10, seed=0, campaign=1.5)


# ---- images --------------------------------------------------------------------------------------


def test_digit_images_form_and_determinism() -> None:
    images, labels = media_data.digit_images(200, seed=3)
    assert images.shape == (200, 8, 8) and images.dtype == np.float32
    assert labels.shape == (200,) and labels.dtype == np.int64 and set(labels) <= set(range(10))
    assert images.min() >= 0 and images.max() <= media_data.PIXEL_MAX
    again, _ = media_data.digit_images(200, seed=3)
    np.testing.assert_array_equal(images, again)


def test_train_and_test_splits_draw_from_disjoint_digits() -> None:
    images, _, order = media_data._digits()
    cut = int(media_data.TRAIN_SHARE * len(order))
    train = {images[i].tobytes() for i in order[:cut]}
    drawn, _ = media_data.digit_images(300, seed=4, split="test", noise=0.0)
    held_out = {images[i].astype(np.float32).tobytes() for i in order[cut:]}
    assert all(image.tobytes() in held_out for image in drawn)
    assert len(train) > 1000 and len(held_out) > 500


@pytest.mark.parametrize(
    ("knobs", "descriptor", "direction"),
    [
        ({"scale": 1.5}, "brightness", +1),
        ({"offset": 4.0}, "brightness", +1),
        ({"scale": 0.5}, "brightness", -1),
        ({"offset": 10.0}, "saturated_share", +1),  # a bright light saturates pixels at 16
        ({"blur": 1.0}, "sharpness", -1),
        ({"scale": 0.5}, "contrast", -1),
    ],
)
def test_lighting_and_blur_knobs_move_the_image_descriptors(knobs: dict, descriptor: str, direction: int) -> None:
    calm, _ = media_data.digit_images(500, seed=5)
    moved, _ = media_data.digit_images(500, seed=5, **knobs)
    before = _mean(describe_images(calm, max_value=media_data.PIXEL_MAX)[descriptor])
    after = _mean(describe_images(moved, max_value=media_data.PIXEL_MAX)[descriptor])
    assert direction * (after - before) > 0.05 * abs(before), (knobs, before, after)


# ---- audio ---------------------------------------------------------------------------------------


def test_audio_clips_form_and_labels() -> None:
    clips, words = media_data.audio_clips(120, seed=6)
    assert clips.shape == (120, media_data.CLIP_SAMPLES) and clips.dtype == np.float32
    assert np.abs(clips).max() <= 1.0
    assert words.dtype == object and set(words) <= {"", *media_data.WORDS}
    silent = words == ""
    assert 0 < silent.sum() < 30  # silence_share=0.1
    rms = describe_audio(clips, media_data.SAMPLE_RATE)["rms_db"]
    assert rms[silent].max() < -50 < -30 < rms[~silent].min()  # background noise vs a word
    again, _ = media_data.audio_clips(120, seed=6)
    np.testing.assert_array_equal(clips, again)


def test_gain_knob_moves_volume_and_clipping() -> None:
    calm = describe_audio(media_data.audio_clips(200, seed=7)[0], media_data.SAMPLE_RATE)
    quiet = describe_audio(media_data.audio_clips(200, seed=7, gain_db=-20)[0], media_data.SAMPLE_RATE)
    loud = describe_audio(media_data.audio_clips(200, seed=7, gain_db=20)[0], media_data.SAMPLE_RATE)
    assert _mean(quiet["rms_db"]) == pytest.approx(_mean(calm["rms_db"]) - 20, abs=0.5)  # no clipping below
    assert _mean(loud["rms_db"]) > _mean(calm["rms_db"]) + 10
    assert _mean(calm["clipping_share"]) == 0.0 < _mean(loud["clipping_share"])
    assert _mean(quiet["silence_share"]) > _mean(calm["silence_share"])
    assert np.all(calm["duration_s"] == 1.0)


def test_silence_share_knob() -> None:
    clips, words = media_data.audio_clips(400, seed=8, silence_share=0.6)
    assert 0.5 < (words == "").mean() < 0.7
    calm = describe_audio(media_data.audio_clips(400, seed=8)[0], media_data.SAMPLE_RATE)
    assert _mean(describe_audio(clips, media_data.SAMPLE_RATE)["silence_share"]) > _mean(calm["silence_share"])
    assert (media_data.audio_clips(50, seed=8, silence_share=1.0)[1] == "").all()


# ---- forms ---------------------------------------------------------------------------------------


def test_reference_frame_round_trips_through_parquet(tmp_path: Path) -> None:
    images, labels = media_data.digit_images(20, seed=9)
    media_data.reference_frame("image", images, labels).to_parquet(tmp_path / "ref.parquet")
    back = pd.read_parquet(tmp_path / "ref.parquet")
    assert list(back.columns) == ["image", "label"]
    restored = np.stack(back["image"].to_numpy()).reshape(-1, 8, 8)
    np.testing.assert_array_equal(restored, images)
    assert restored.dtype == np.float32
