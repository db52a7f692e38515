"""Seeded generators of text, image and audio data for the issue-22 models (nothing is downloaded).

- `emails`: short ham/spam e-mails built from word lists; knobs for the length and for a new spam
  campaign's words (a vocabulary the reference never saw).
- `digit_images`: scikit-learn's bundled digits (8x8 grey, 0..16) standing in for photos of phones
  on a factory line; knobs for the lighting (brightness scale and offset, clipped to 0..16) and blur.
- `audio_clips`: 1 s clips at 16 kHz of spoken-word-like bursts (two tones under a syllabic
  envelope) or silence (background noise only); knobs for the volume (gain in dB) and silence share.

Tensors come as float32 arrays of shape (n, *shape), the form of a validated tensor column
(registry/schema); `tensor_cells` turns one into the per-row flat arrays that a Parquet reference
file holds (a list column). Labels come alongside: "ham"/"spam", the digit 0..9, the spoken word
("" for silence).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
import pandas as pd

# ---- text: e-mails for a spam detector -----------------------------------------------------------

COMMON_WORDS: tuple[str, ...] = (
    "the", "a", "to", "you", "your", "and", "for", "of", "is", "this", "on", "in", "we", "please",
    "with", "it", "be", "at", "our", "will", "can", "all", "today", "just",
)  # fmt: skip
HAM_WORDS: tuple[str, ...] = (
    "meeting", "lunch", "project", "report", "schedule", "tomorrow", "team", "review", "draft",
    "budget", "notes", "agenda", "client", "deadline", "update", "slides", "office", "invoice",
    "thanks", "week", "friday", "monday", "plan", "question", "document", "attached", "coffee",
    "minutes", "travel", "colleagues",
)  # fmt: skip
SPAM_WORDS: tuple[str, ...] = (
    "free", "winner", "prize", "cash", "click", "offer", "limited", "urgent", "claim", "money",
    "guaranteed", "credit", "loan", "cheap", "discount", "bonus", "exclusive", "deal",
    "congratulations", "selected", "reward", "casino", "lottery", "million", "pills", "unsubscribe",
)  # fmt: skip
# A new campaign's words: none of them occur in e-mails generated with campaign=0.
CAMPAIGN_WORDS: tuple[str, ...] = (
    "crypto", "wallet", "bitcoin", "airdrop", "token", "blockchain", "staking", "nft", "mining",
    "altcoin", "defi", "presale", "moonshot", "ledger", "hodl", "metaverse",
)  # fmt: skip
MEAN_WORDS = 10  # words of an e-mail at length=1 (besides the contact line some carry)
CLASS_WORD_SHARE = 0.55  # the rest are common words
CROSS_SHARE = 0.08  # class words borrowed from the other class ("free for lunch?"): not too easy


def emails(n: int, seed: int, *, length: float = 1.0, campaign: float = 0.0, spam_share: float = 0.4) -> pd.DataFrame:
    """`n` e-mails: columns "text" and "label" ("ham" or "spam").

    `length` scales the mean number of words (1: ~10 words); `campaign` in [0, 1] is the share of
    spam words drawn from CAMPAIGN_WORDS instead of SPAM_WORDS (a new campaign: unseen words, which
    a detector trained at campaign=0 also misses). Some e-mails carry an address or a phone number
    (what the log's redaction rules mask).
    """
    if length <= 0 or not 0 <= campaign <= 1 or not 0 <= spam_share <= 1:
        raise ValueError(f"need length > 0 and campaign, spam_share in [0, 1]; got {length}, {campaign}, {spam_share}")
    rng = np.random.default_rng(seed)
    spam = rng.random(n) < spam_share
    counts = 1 + rng.poisson(max(MEAN_WORDS * length - 1, 0.0), n)
    texts = [_email(rng, int(k), bool(s), campaign) for k, s in zip(counts, spam, strict=True)]
    # object columns (not pandas' string dtype): the form of a validated text column
    text = pd.Series(texts, dtype=object)
    return pd.DataFrame({"text": text, "label": pd.Series(np.where(spam, "spam", "ham"), dtype=object)})


def _email(rng: np.random.Generator, words: int, spam: bool, campaign: float) -> str:
    own, other = (SPAM_WORDS, HAM_WORDS) if spam else (HAM_WORDS, SPAM_WORDS)
    out: list[str] = []
    for u in rng.random(words):
        if u >= CLASS_WORD_SHARE:
            pool = COMMON_WORDS
        elif u < CLASS_WORD_SHARE * CROSS_SHARE:
            pool = other
        elif spam and rng.random() < campaign:
            pool = CAMPAIGN_WORDS
        else:
            pool = own
        out.append(pool[rng.integers(len(pool))])
    text = " ".join(out).capitalize() + ("!" if spam else ".")
    if rng.random() < 0.1:  # a contact line
        text += f" Call {rng.integers(100, 999)} {rng.integers(1000, 9999)}." if spam else " Mail j.doe@example.com."
    return text


# ---- images: digits as photos of phones on a line -------------------------------------------------

IMAGE_SHAPE = (8, 8)
PIXEL_MAX = 16.0  # a fully bright pixel of scikit-learn's digits
TRAIN_SHARE = 0.67  # of the 1797 digits; the rest is held out (split="test")
Split = Literal["all", "train", "test"]


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) float64, labels, a fixed permutation of the indices)."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    digits = load_digits()
    return digits.images, digits.target.astype(np.int64), np.random.default_rng(0).permutation(len(digits.target))


def digit_images(
    n: int,
    seed: int,
    *,
    scale: float = 1.0,
    offset: float = 0.0,
    blur: float = 0.0,
    noise: float = 0.4,
    split: Split = "all",
) -> tuple[np.ndarray, np.ndarray]:
    """`n` images (float32, shape (n, 8, 8), values 0..16) and their digits (int64).

    Drawn with replacement from the digits of `split` (a fixed two-thirds "train" / one-third "test"
    cut, so a model can be scored on images it never saw). The optics blur them (Gaussian, sigma
    `blur` pixels), the lighting maps each pixel v to v * scale + offset, the sensor adds Gaussian
    noise of sd `noise`, and values are clipped to 0..16 (a bright light saturates pixels).
    """
    from scipy.ndimage import gaussian_filter

    if scale < 0 or blur < 0 or noise < 0:
        raise ValueError(f"scale, blur and noise must be >= 0; got {scale}, {blur}, {noise}")
    images, labels, order = _digits()
    cut = int(TRAIN_SHARE * len(order))
    pool = {"all": order, "train": order[:cut], "test": order[cut:]}[split]
    rng = np.random.default_rng(seed)
    pick = rng.choice(pool, n)
    out = images[pick]
    if blur > 0:
        out = gaussian_filter(out, sigma=(0, blur, blur), mode="nearest")
    out = out * scale + offset
    if noise > 0:
        out = out + rng.normal(0.0, noise, out.shape)
    return np.clip(out, 0.0, PIXEL_MAX).astype(np.float32), labels[pick]


# ---- audio: spoken-word-like clips ----------------------------------------------------------------

SAMPLE_RATE = 16_000
CLIP_SAMPLES = SAMPLE_RATE  # 1 s
# Each word is a burst of two of these tones (Hz); the pair tells the words apart.
TONES = (400.0, 700.0, 1100.0, 1600.0, 2300.0)
WORD_TONES: dict[str, tuple[int, int]] = {
    "yes": (0, 1), "no": (0, 2), "up": (0, 3), "down": (0, 4), "left": (1, 2),
    "right": (1, 3), "on": (1, 4), "off": (2, 3), "stop": (2, 4), "go": (3, 4),
}  # fmt: skip
WORDS = tuple(WORD_TONES)
SPEECH_DB = -18.0  # a burst's RMS level (dBFS) at gain 0, give or take LEVEL_SPREAD_DB
LEVEL_SPREAD_DB = 4.0
NOISE_DB = -60.0  # the room's background noise (RMS, dBFS), in every clip


def audio_clips(
    n: int, seed: int, *, gain_db: float = 0.0, silence_share: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """`n` clips (float32, shape (n, 16000), 1 s at 16 kHz, full scale 1.0) and what was said in
    each (an object array of words, "" for a silent clip).

    A word is a 0.25-0.6 s burst at a random place in the clip: its two tones (jittered by up to
    2 %) under a raised-sine envelope with a 4 Hz syllabic ripple, at SPEECH_DB +- 4 dB. Every clip
    has background noise at NOISE_DB; a share `silence_share` has nothing else. The whole clip is
    then amplified by `gain_db` (a microphone's volume) and clipped to [-1, 1].
    """
    if not 0 <= silence_share <= 1:
        raise ValueError(f"silence_share must be in [0, 1]; got {silence_share}")
    rng = np.random.default_rng(seed)
    clips = rng.normal(0.0, 10 ** (NOISE_DB / 20), (n, CLIP_SAMPLES))
    labels = np.full(n, "", dtype=object)
    for i in np.flatnonzero(rng.random(n) >= silence_share):
        word = WORDS[rng.integers(len(WORDS))]
        labels[i] = word
        start, burst = _burst(rng, WORD_TONES[word])
        clips[i, start : start + len(burst)] += burst
    clips *= 10 ** (gain_db / 20)
    return np.clip(clips, -1.0, 1.0).astype(np.float32), labels


def _burst(rng: np.random.Generator, tones: tuple[int, int]) -> tuple[int, np.ndarray]:
    """Where a word starts (sample index) and its samples."""
    duration = rng.uniform(0.25, 0.6)
    start = int(rng.uniform(0.05, 0.95 - duration) * SAMPLE_RATE)
    t = np.arange(int(duration * SAMPLE_RATE)) / SAMPLE_RATE
    envelope = np.sin(np.pi * t / duration) ** 2 * (0.7 + 0.3 * np.sin(2 * np.pi * 4 * t))
    wave = sum(
        rng.uniform(0.6, 1.0) * np.sin(2 * np.pi * TONES[k] * rng.uniform(0.98, 1.02) * t + rng.uniform(0, 2 * np.pi))
        for k in tones
    )
    signal = envelope * wave
    level = 10 ** ((SPEECH_DB + rng.uniform(-LEVEL_SPREAD_DB, LEVEL_SPREAD_DB)) / 20)
    return start, np.asarray(signal * (level / np.sqrt(np.mean(signal**2))))


# ---- forms ---------------------------------------------------------------------------------------


def tensor_cells(batch: np.ndarray) -> list[np.ndarray]:
    """One flat array per row (prod(shape) values): a Parquet list column's cells."""
    flat = np.asarray(batch).reshape(len(batch), -1)
    return list(flat)


def reference_frame(name: str, batch: np.ndarray, labels: np.ndarray, target: str = "label") -> pd.DataFrame:
    """A reference table for a tensor feature: `name` as flat per-row arrays, and the labels."""
    return pd.DataFrame({name: tensor_cells(batch), target: labels})
