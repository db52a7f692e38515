"""Seeded generators of text, image and audio traffic for the drift tests, and the log rows media.md
section 2 describes (text as is; a tensor's payload for a sampled share of rows, its descriptors for
every row). Pure and fast: no server, no store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from driftgate.core.payload import encode_tensor
from driftgate.monitoring.drift.media import describe_feature
from driftgate.registry.schema import FeatureSpec, InputSchema

TEXT = FeatureSpec("text", "text")
IMAGE = FeatureSpec("image", "tensor", shape=(8, 8), dtype="float32", media="image", max=16.0)
# 0.25 s clips: the descriptors and the test are the same at any length; shorter keeps the tests fast.
CLIP = FeatureSpec("clip", "tensor", shape=(4000,), dtype="float32", media="audio", sample_rate=16000)

VOCABULARY = [f"w{i}" for i in range(1500)]
NEW_WORDS = [f"novel{i}" for i in range(400)]


@lru_cache(maxsize=1)
def _digits() -> np.ndarray:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    return load_digits().images.astype(np.float32)


def images(rng: np.random.Generator, n: int, brighten: float = 0.0) -> np.ndarray:
    """`n` digits images (8x8, 0..16) drawn from the bundled set (the population both the reference
    and calm traffic come from: two different subsets would differ by their own sampling noise, on
    every window alike); `brighten` adds light to every pixel (a lamp on the line), clipped at full
    brightness."""
    pool = _digits()
    chosen = pool[rng.integers(0, len(pool), n)]
    return np.clip(chosen + brighten, 0.0, 16.0).astype(np.float32)


def texts(rng: np.random.Generator, n: int, mean_tokens: float = 12.0, new_share: float = 0.0) -> list[str]:
    """Sentences of Zipf-distributed words; `new_share` of the tokens from words the reference never had;
    about 2 % empty messages."""
    weights = 1.0 / np.arange(1, len(VOCABULARY) + 1)
    weights /= weights.sum()
    out = []
    for _ in range(n):
        if rng.random() < 0.02:
            out.append("")
            continue
        k = 1 + rng.poisson(mean_tokens - 1)
        words = list(rng.choice(VOCABULARY, size=k, p=weights))
        for i in np.flatnonzero(rng.random(k) < new_share):
            words[i] = str(rng.choice(NEW_WORDS))
        out.append(" ".join(words).capitalize() + ".")
    return out


def clips(rng: np.random.Generator, n: int, gain_db: float = 0.0) -> np.ndarray:
    """Spoken-like clips: a tone with noise, a level around -20 dBFS, a silent stretch; `gain_db`
    changes the volume of them all."""
    samples = CLIP.shape[0] if CLIP.shape else 0
    t = np.arange(samples) / 16000.0
    level = 10.0 ** ((rng.normal(-20.0, 3.0, n) + gain_db) / 20.0)
    freq = rng.uniform(150.0, 600.0, n)
    voice = np.sin(2 * np.pi * freq[:, None] * t[None, :]) + 0.3 * rng.normal(size=(n, samples))
    out = level[:, None] * voice
    silent = rng.integers(0, samples // 2, n)
    for i, start in enumerate(silent):
        out[i, start : start + samples // 4] = 0.0
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def log_rows(spec: FeatureSpec, values: Any, rng: np.random.Generator, payload_rate: float) -> list[dict[str, Any]]:
    """Store rows of answered predictions holding `values` as the log keeps them (media.md section 2)."""
    n = len(values)
    inputs: list[dict[str, Any]] = [{} for _ in range(n)]
    if spec.kind == "text":
        for row, text in zip(inputs, values, strict=True):
            row[spec.name] = text
    else:
        described = describe_feature(spec, np.asarray(values))
        kept = rng.random(n) < payload_rate
        for i, row in enumerate(inputs):
            row[spec.name] = encode_tensor(values[i]) if kept[i] else None
            row.update({name: float(column[i]) for name, column in described.items()})
    base = {"output": 0, "probabilities": None, "status": "ok", "label": None}
    return [{"id": f"r{i}", "ts": float(i), "inputs": row, **base} for i, row in enumerate(inputs)]


@dataclass(frozen=True)
class Kind:
    """One model kind's feature, its reference and its traffic, calm or changed."""

    spec: FeatureSpec
    reference: Callable[[np.random.Generator, int], Any]
    calm: Callable[[np.random.Generator, int], Any]

    @property
    def schema(self) -> InputSchema:
        return InputSchema((self.spec,))

    def reference_frame(self, seed: int, n: int) -> pd.DataFrame:
        """The reference as read back from its Parquet: text as str, a tensor as one list per row."""
        values = self.reference(np.random.default_rng(seed), n)
        column = list(values) if self.spec.kind == "text" else [v.reshape(-1).tolist() for v in values]
        return pd.DataFrame({self.spec.name: column})


KINDS = {
    "text": Kind(TEXT, texts, texts),
    "image": Kind(IMAGE, images, images),
    "audio": Kind(CLIP, clips, clips),
}
