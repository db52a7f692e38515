"""The descriptors of a tensor feature, chosen by its media (pure: numpy only).

One entry point for everything that describes tensors, so that the descriptors logged with each row
(at log time) and those of the reference (in the monitor) are computed alike:

- media "image": `IMAGE_DESCRIPTORS` of a batch (n, H, W) or (n, H, W, C); `max_value` is the value of
  a fully bright pixel (None: the dtype's default, see `image.default_max_value`);
- media "audio": `AUDIO_DESCRIPTORS` of a batch (n, samples) at `sample_rate` Hz;
- any other tensor (an embedding): no descriptors; its drift is the embedding test's alone.

>>> import numpy as np
>>> tensor_descriptors("audio")
('duration_s', 'rms_db', 'silence_share', 'clipping_share')
>>> describe_tensor(np.full((2, 4, 4), 8.0), "image", max_value=16)["brightness"].tolist()
[0.5, 0.5]
"""

from __future__ import annotations

import numpy as np

from driftgate.monitoring.descriptors.audio import AUDIO_DESCRIPTORS, describe_audio
from driftgate.monitoring.descriptors.image import IMAGE_DESCRIPTORS, describe_images


def tensor_descriptors(media: str | None) -> tuple[str, ...]:
    """The names of the descriptors of a tensor of this media (empty for a generic tensor)."""
    if media == "image":
        return IMAGE_DESCRIPTORS
    if media == "audio":
        return AUDIO_DESCRIPTORS
    return ()


def describe_tensor(
    batch: np.ndarray, media: str | None, max_value: float | None = None, sample_rate: float | None = None
) -> dict[str, np.ndarray]:
    """{descriptor: float64 array of one value per row} of a batch of tensors (rows on axis 0)."""
    array = np.asarray(batch)
    if media == "image":
        return describe_images(array, max_value=max_value)
    if media == "audio":
        if sample_rate is None:
            raise ValueError("audio descriptors need the sample rate (the feature's sample_rate).")
        return describe_audio(array.reshape(array.shape[0], -1), sample_rate=float(sample_rate))
    return {}
