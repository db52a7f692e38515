"""Text, image and audio descriptors against direct computations, and drift on generated data: the
descriptors with the univariate tests under Holm, and the MMD test, flag a brightness change on digit
images, a change of text length and of vocabulary, and a volume change in audio, and stay calm on two
samples of one distribution."""

from __future__ import annotations

import doctest
import math
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest
from scipy import ndimage, stats
from sklearn.datasets import load_digits

from driftgate.monitoring.descriptors import audio, describe_audio, describe_images, image, text
from driftgate.monitoring.descriptors.text import TextDescriber
from driftgate.monitoring.drift.corrections import holm
from driftgate.monitoring.drift.mmd import MMDReference, mmd_test
from driftgate.monitoring.drift.statistics import two_sample_numeric

# ----------------------------------------------------------------------------------------------- text


def test_text_descriptors_on_hand_checked_texts() -> None:
    describer = TextDescriber.fit(["hello world", "Hello there"])
    got = describer.describe(["Hello, world!", "", "   ", None, "naïve café", "hello hello unseen"])
    assert got["length_chars"].tolist() == [13, 0, 3, 0, 10, 18]
    assert got["length_tokens"].tolist() == [2, 0, 0, 0, 2, 3]
    assert got["empty"].tolist() == [0, 1, 1, 1, 0, 0]
    np.testing.assert_allclose(got["unseen_token_share"], [0, np.nan, np.nan, np.nan, 1.0, 1 / 3])
    np.testing.assert_allclose(got["non_ascii_share"], [0, np.nan, 0, np.nan, 0.2, 0])


def test_vocabulary_keeps_the_most_frequent_tokens_ties_alphabetical() -> None:
    describer = TextDescriber.fit(["c a b a", "a b c d"], max_size=2)
    assert describer.vocabulary == {"a", "b"}  # a: 3, then b and c tie at 2: b
    assert TextDescriber.fit(["a b c d", "c a b a"], max_size=2) == describer  # order does not matter
    assert TextDescriber.from_dict(describer.to_dict()) == describer


def test_text_descriptors_equal_a_direct_per_text_computation() -> None:
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "délta", "ε", "Zeta", "eta", "théta"]
    texts = [" ".join(rng.choice(words, rng.integers(0, 9))) + rng.choice(["", "!", " ..", "  "]) for _ in range(300)]
    describer = TextDescriber.fit(texts[:100], max_size=5)
    got = describer.describe(texts)
    for i, t in enumerate(texts):
        tokens = [w.lower() for w in t.replace("!", " ").replace(".", " ").split()]
        assert got["length_tokens"][i] == len(tokens)
        assert got["length_chars"][i] == len(t)
        assert got["empty"][i] == (t.strip() == "")
        unseen = sum(w not in describer.vocabulary for w in tokens) / len(tokens) if tokens else math.nan
        assert got["unseen_token_share"][i] == pytest.approx(unseen, nan_ok=True)
        non_ascii = sum(ord(c) > 127 for c in t) / len(t) if t else math.nan
        assert got["non_ascii_share"][i] == pytest.approx(non_ascii, nan_ok=True)


# ---------------------------------------------------------------------------------------------- image


def test_laplacian_sharpness_on_a_hand_checked_image() -> None:
    dot = np.zeros((1, 3, 3))
    dot[0, 1, 1] = 1.0
    # Laplacian [[0,1,0],[1,-4,1],[0,1,0]]: mean 0, variance (4 * 1 + 16) / 9
    assert describe_images(dot)["sharpness"][0] == pytest.approx(20 / 9)
    assert np.array_equal(image.laplacian(dot), ndimage.laplace(dot[0])[np.newaxis])


@pytest.mark.parametrize(
    "shape,dtype,max_value",
    [((20, 9, 7), np.uint8, None), ((15, 8, 8, 3), np.uint8, None), ((10, 6, 5, 4), np.float64, None),
     ((12, 8, 8), np.float64, 16.0), ((8, 5, 6, 1), np.uint16, None)],
)  # fmt: skip
def test_image_descriptors_equal_scipy_and_numpy_per_image(
    shape: tuple[int, ...], dtype: type, max_value: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(len(shape))
    top = max_value or (float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0)
    batch: np.ndarray
    if np.issubdtype(dtype, np.integer):
        batch = rng.integers(0, int(top) + 1, size=shape).astype(dtype)
    else:
        batch = np.round(rng.random(shape) * 1.2 * top - 0.1 * top, 1).clip(0, top).astype(dtype)
    monkeypatch.setattr(image, "CHUNK_PIXELS", 200)  # several chunks: their seams must not show
    got = describe_images(batch, max_value)
    for i, one in enumerate(batch):
        pixels = one.astype(np.float64) / top
        if pixels.ndim == 3 and pixels.shape[2] >= 3:
            grey = 0.299 * pixels[..., 0] + 0.587 * pixels[..., 1] + 0.114 * pixels[..., 2]
        else:
            grey = pixels.reshape(one.shape[0], one.shape[1])
        channels = one.reshape(one.shape[0], one.shape[1], -1)
        saturated = np.mean([[any(v <= 0 or v >= top for v in px) for px in row] for row in channels])
        assert got["brightness"][i] == pytest.approx(grey.mean(), rel=1e-12)
        assert got["contrast"][i] == pytest.approx(np.std(grey), rel=1e-12)
        assert got["sharpness"][i] == pytest.approx(np.var(ndimage.laplace(grey)), rel=1e-9)
        assert got["saturated_share"][i] == pytest.approx(saturated)


def test_bad_image_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        describe_images(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="shape"):
        describe_images(np.zeros((2, 4, 4, 2)))


# ---------------------------------------------------------------------------------------------- audio


def _direct_audio(clip: np.ndarray, rate: int) -> tuple[float, float, float, float]:
    if clip.size == 0:
        return 0.0, math.nan, math.nan, math.nan
    rms = math.sqrt(float(np.mean(clip**2)))
    rms_db = max(20 * math.log10(rms), -120.0) if rms > 0 else -120.0
    frame = round(0.02 * rate)
    frames = [clip[i : i + frame] for i in range(0, clip.size, frame)]
    levels = [20 * math.log10(math.sqrt(float(np.mean(f**2)))) if np.any(f) else -math.inf for f in frames]
    silence = sum(level < -40 for level in levels) / len(frames)
    return clip.size / rate, rms_db, silence, float(np.mean(np.abs(clip) >= 0.999))


def test_audio_descriptors_equal_a_direct_per_clip_computation() -> None:
    rng = np.random.default_rng(1)
    rate = 8000
    clips = [
        np.full(800, 0.5),  # -6.02 dB, no silence
        np.zeros(0),  # empty
        np.zeros(333),  # digital silence: -120 dB floor, all silent
        np.clip(rng.normal(0, 0.6, 1234), -1, 1),  # clipped, partial last frame (1234 = 7 x 160 + 114)
        np.concatenate([rng.normal(0, 0.001, 400), rng.normal(0, 0.3, 500)]),
        rng.normal(0, 0.2, 17),  # shorter than one frame
    ]
    got = describe_audio(clips, rate)
    for i, clip in enumerate(clips):
        expected = _direct_audio(clip, rate)
        actual = tuple(got[name][i] for name in audio.AUDIO_DESCRIPTORS)
        assert actual == pytest.approx(expected, nan_ok=True, rel=1e-9), i
    assert got["rms_db"][0] == pytest.approx(20 * math.log10(0.5))
    assert got["silence_share"][4] == pytest.approx(2 / 6)  # frames 0-1 quiet, frame 2 half loud (-16 dB)
    # An equal-length 2-D batch gives the same as its rows as a list.
    batch = rng.uniform(-1, 1, (5, 480)) * rng.random((5, 1))
    two_d, listed = describe_audio(batch, rate), describe_audio(list(batch), rate)
    assert all(np.array_equal(two_d[k], listed[k]) for k in audio.AUDIO_DESCRIPTORS)


def test_bad_audio_is_refused() -> None:
    with pytest.raises(ValueError, match="one-dimensional"):
        describe_audio([np.zeros((2, 10))], 8000)
    with pytest.raises(ValueError, match="sample_rate"):
        describe_audio([np.zeros(10)], 0)


@pytest.mark.parametrize("module", [text, image, audio])
def test_docstring_examples(module: ModuleType) -> None:
    assert doctest.testmod(module).failed == 0


# ------------------------------------------------------------------------------- drift on generated data

ALPHA = 0.05
PERMUTATIONS = 199  # p down to 0.005: under Holm over up to 6 tests the MMD alone can still flag


def _descriptor_p_values(reference: dict[str, np.ndarray], current: dict[str, np.ndarray]) -> dict[str, float]:
    """KS p-value of each descriptor, NaN (undefined) values left out as missing."""
    found = {}
    for name, ref in reference.items():
        ref_values, cur_values = ref[np.isfinite(ref)], current[name][np.isfinite(current[name])]
        found[name] = two_sample_numeric(ref_values, cur_values).ks_p_value
    return found


def _descriptor_matrix(described: dict[str, np.ndarray], fill: np.ndarray | None = None) -> np.ndarray:
    """Descriptors as rows for the MMD; a NaN at the reference mean, as multivariate.encode does."""
    matrix = np.column_stack(list(described.values()))
    fill = np.nanmean(matrix, axis=0) if fill is None else fill
    return np.where(np.isnan(matrix), fill, matrix)


Sample = tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray, np.ndarray]
ROWS = 300  # per side


def _verdicts(sample: Sample, seed: int, standardise: bool) -> tuple[bool, bool, bool]:
    """(the descriptors flag under Holm, the MMD flags, the family of both flags under Holm)."""
    reference, current, reference_rows, current_rows = sample
    p_values = list(_descriptor_p_values(reference, current).values())
    fitted = MMDReference.fit(reference_rows, standardise=standardise, seed=seed)
    mmd_p = mmd_test(fitted, current_rows, n_permutations=PERMUTATIONS, seed=seed).p_value
    return min(holm(p_values)) < ALPHA, mmd_p < ALPHA, min(holm([*p_values, mmd_p])) < ALPHA


DIGITS = load_digits().images  # 1,797 8x8 grey images, values 0..16


def _digit_images(rng: np.random.Generator, change: bool) -> Sample:
    order = rng.permutation(len(DIGITS))
    reference, current = DIGITS[order[:ROWS]], DIGITS[order[ROWS : 2 * ROWS]]
    if change:  # a lighting change on the line: every pixel 1/16 of full scale brighter
        current = np.clip(current + 1.0, 0, 16)
    return (
        describe_images(reference, max_value=16),
        describe_images(current, max_value=16),
        reference.reshape(ROWS, -1),  # the MMD sees the 64 pixels (randomly projected to 32)
        current.reshape(ROWS, -1),
    )


WORDS = np.array([f"w{i}" for i in range(300)] + ["café", "naïve", "déjà", "über"])
ZIPF = 1.0 / np.arange(1, WORDS.size + 1) / np.sum(1.0 / np.arange(1, WORDS.size + 1))


def _texts(rng: np.random.Generator, n: int, mean_tokens: float, new_words: float) -> list[str]:
    lengths = rng.poisson(mean_tokens, n) * (rng.random(n) > 0.03)  # ~3 % empty answers
    tokens = rng.choice(WORDS, int(lengths.sum()), p=ZIPF).astype(object)
    new = rng.random(tokens.size) < new_words
    tokens[new] = [f"new{k}" for k in rng.integers(50, size=int(new.sum()))]
    return [(" ".join(t).capitalize() + ".") if len(t) else "" for t in np.split(tokens, np.cumsum(lengths)[:-1])]


def _text_sample(change: str | None) -> Callable[[np.random.Generator, bool], Sample]:
    def make(rng: np.random.Generator, changed: bool) -> Sample:
        # The vocabulary comes from other reference texts than the reference descriptors: fitted on the
        # same texts, their unseen share would be 0 by construction and any current text would look new.
        describer = TextDescriber.fit(_texts(rng, 2000, 12, 0.0))
        longer = changed and change == "length"
        current_texts = _texts(rng, ROWS, 15 if longer else 12, 0.1 if changed and change == "vocabulary" else 0.0)
        reference = describer.describe(_texts(rng, ROWS, 12, 0.0))
        current = describer.describe(current_texts)
        reference_rows = _descriptor_matrix(reference)
        return reference, current, reference_rows, _descriptor_matrix(current, reference_rows.mean(axis=0))

    return make


RATE = 8000


def _clips(rng: np.random.Generator, n: int, gain: float) -> list[np.ndarray]:
    """Utterances: a tone with harmonics at a random level, between stretches of faint room noise."""
    clips = []
    for _ in range(n):
        size = int(rng.uniform(0.4, 0.6) * RATE)
        clip = rng.normal(0, 0.002, size)
        start, stop = sorted(rng.integers(0, size, 2))
        t = np.arange(stop - start) / RATE
        f0, level = rng.uniform(100, 300), np.exp(rng.uniform(np.log(0.05), np.log(0.5)))
        clip[start:stop] += level * (np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(4 * np.pi * f0 * t))
        clips.append(np.clip(gain * clip, -1, 1))
    return clips


def _audio_sample(rng: np.random.Generator, changed: bool) -> Sample:
    reference = describe_audio(_clips(rng, ROWS, 1.0), RATE)
    current = describe_audio(_clips(rng, ROWS, 0.6 if changed else 1.0), RATE)  # a volume drop: -4.4 dB
    reference_rows = _descriptor_matrix(reference)
    return reference, current, reference_rows, _descriptor_matrix(current, reference_rows.mean(axis=0))


SCENARIOS: dict[str, tuple[Callable[[np.random.Generator, bool], Sample], bool]] = {
    # name: (sample maker, standardise the MMD's columns: descriptors have mixed units, pixels do not)
    "image brightness": (_digit_images, False),
    "text length": (_text_sample("length"), True),
    "text vocabulary": (_text_sample("vocabulary"), True),
    "audio volume": (_audio_sample, True),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", SCENARIOS)
def test_each_change_is_flagged_by_descriptors_and_by_mmd(name: str) -> None:
    make, standardise = SCENARIOS[name]
    repeats = 10
    flagged = np.array(
        [_verdicts(make(np.random.default_rng(seed), True), seed, standardise) for seed in range(repeats)]
    )
    descriptors, mmd, family = flagged.sum(axis=0)
    assert (descriptors, mmd, family) == (repeats, repeats, repeats), (name, descriptors, mmd, family)


@pytest.mark.slow
def test_calm_data_false_alarm_rate_is_at_most_five_percent() -> None:
    # Two samples of one distribution, 50 seeded repeats per kind: the family (descriptors + MMD under
    # Holm) must flag at most 5 % of them. Allowed: up to the binomial(n, 0.05) 99 % quantile, so
    # that a true rate of 5 % fails this test 1 time in 100 at most.
    repeats = 50
    alarms = {
        name: sum(
            _verdicts(make(np.random.default_rng(1000 + seed), False), seed, standardise)[2] for seed in range(repeats)
        )
        for name, (make, standardise) in SCENARIOS.items()
        if name != "text vocabulary"  # the same calm text sample as "text length"
    }
    total = sum(alarms.values())
    assert total <= stats.binom.ppf(0.99, repeats * len(alarms), ALPHA), alarms
    assert all(count <= stats.binom.ppf(0.99, repeats, ALPHA) for count in alarms.values()), alarms
