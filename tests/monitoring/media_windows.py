"""Traffic of the issue-22 models for the drift tests (driftgate.demo.media_data, seeded), and the log
rows media.md section 2 describes (text as is; a tensor's payload for a sampled share of rows, its
descriptors for every row, as records/media.py logs them). Pure and fast: no server, no store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from driftgate.core.payload import encode_tensor
from driftgate.demo import media_data, media_models
from driftgate.monitoring.drift.media import describe_feature
from driftgate.registry.schema import FeatureSpec, InputSchema

TEXT, IMAGE, CLIP = (
    InputSchema.from_dict(schema).features[0]
    for schema in (media_models.TEXT_SCHEMA, media_models.IMAGE_SCHEMA, media_models.AUDIO_SCHEMA)
)
# The descriptors and the tests do not depend on the clips' length; 0.25 s ones keep the tests fast.
SHORT_CLIP = FeatureSpec("clip", "tensor", shape=(4000,), dtype="float32", media="audio", sample_rate=16000)


def texts(seed: int, n: int, **change: Any) -> list[str]:
    """E-mails; `length` scales their length, `campaign` swaps spam words for a new campaign's."""
    return list(media_data.emails(n, seed, **change)["text"])


def images(seed: int, n: int, **change: Any) -> np.ndarray:
    """Digit photos (n, 8, 8) of the test split; `scale` and `offset` change the lighting."""
    return media_data.digit_images(n, seed, split="test", **change)[0]


def clips(seed: int, n: int, **change: Any) -> np.ndarray:
    """Spoken-word clips, cut to SHORT_CLIP's length around their middle; `gain_db` changes the volume."""
    return media_data.audio_clips(n, seed, **change)[0][:, 6000:10000]


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
    """One model kind's feature and its traffic: `make(seed, n, **change)`, no change being calm."""

    spec: FeatureSpec
    make: Callable[..., Any]

    @property
    def schema(self) -> InputSchema:
        return InputSchema((self.spec,))

    def reference_frame(self, seed: int, n: int) -> pd.DataFrame:
        """The reference as read back from its Parquet: text as str, a tensor as one flat array per row."""
        values = self.make(seed, n)
        column = list(values) if self.spec.kind == "text" else list(np.asarray(values).reshape(n, -1))
        return pd.DataFrame({self.spec.name: column})


KINDS = {"text": Kind(TEXT, texts), "image": Kind(IMAGE, images), "audio": Kind(SHORT_CLIP, clips)}
