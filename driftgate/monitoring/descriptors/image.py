"""Per-image descriptors, vectorised over a batch (pure: numpy only).

A batch is an array of shape (n, H, W) (grey) or (n, H, W, C) with C in 1, 3, 4 (grey, RGB, RGBA),
of any integer or float dtype. Values are first scaled to [0, 1] by dividing by `max_value`: by
default the dtype's maximum for unsigned integers (255 for uint8) and 1.0 for floats (pass e.g.
`max_value=16` for scikit-learn's digits). Colour images become grey by ITU-R BT.601 luma
(0.299 R + 0.587 G + 0.114 B); alpha is ignored. Definitions, on that grey image in [0, 1]:

- `brightness`: the mean of the pixels.
- `contrast`: the standard deviation of the pixels (population, ddof=0).
- `sharpness`: the variance (ddof=0) of the image filtered by the 3x3 Laplacian kernel
  [[0, 1, 0], [1, -4, 1], [0, 1, 0]], with edges extended by mirroring (the edge pixel repeated, as
  `scipy.ndimage.laplace` does by default). Blur lowers it; noise raises it.
- `saturated_share`: the share of pixels at which some channel of the original (unscaled, before luma)
  value sits at 0 or at `max_value` (clipped shadows or highlights).

>>> import numpy as np
>>> image = np.array([[[0, 255], [255, 255]]], dtype=np.uint8)
>>> row = describe_images(image)
>>> float(row["brightness"][0]), float(row["contrast"][0]).__round__(3), float(row["saturated_share"][0])
(0.75, 0.433, 1.0)
"""

from __future__ import annotations

import numpy as np

IMAGE_DESCRIPTORS = ("brightness", "contrast", "sharpness", "saturated_share")
LUMA = np.array([0.299, 0.587, 0.114])
CHUNK_PIXELS = 4_000_000  # float64 work arrays of ~32 MB at most, whatever the batch size


def default_max_value(dtype: np.dtype[np.generic]) -> float:
    """The value of a fully bright pixel: the integer dtype's maximum, else 1.0."""
    if np.issubdtype(dtype, np.integer):  # signed integers: the top of the positive range
        return float(np.iinfo(dtype.name).max)
    return 1.0


def describe_images(images: np.ndarray, max_value: float | None = None) -> dict[str, np.ndarray]:
    """The four descriptors of each image of the batch, as float64 arrays of length n."""
    batch = np.asarray(images)
    if batch.ndim == 3:
        batch = batch[..., np.newaxis]
    if batch.ndim != 4 or batch.shape[-1] not in (1, 3, 4):
        raise ValueError(f"images must have shape (n, H, W) or (n, H, W, C) with C in 1, 3, 4. Got {batch.shape}.")
    if batch.shape[1] == 0 or batch.shape[2] == 0:
        raise ValueError(f"images must have at least one pixel. Got shape {batch.shape}.")
    top = default_max_value(batch.dtype) if max_value is None else float(max_value)
    if top <= 0:
        raise ValueError(f"max_value must be > 0. Got {top}.")
    per_image = max(1, batch.shape[1] * batch.shape[2] * batch.shape[3])
    step = max(1, CHUNK_PIXELS // per_image)
    parts = [_describe_chunk(batch[i : i + step], top) for i in range(0, batch.shape[0], step)]
    if not parts:
        return {name: np.empty(0) for name in IMAGE_DESCRIPTORS}
    return {name: np.concatenate([part[name] for part in parts]) for name in IMAGE_DESCRIPTORS}


def _describe_chunk(batch: np.ndarray, top: float) -> dict[str, np.ndarray]:
    saturated = ((batch <= 0) | (batch >= top)).any(axis=-1).mean(axis=(1, 2), dtype=np.float64)
    scaled = batch.astype(np.float64) / top
    channels = scaled.shape[-1]
    grey = scaled[..., 0] if channels == 1 else scaled[..., :3] @ LUMA
    return {
        "brightness": grey.mean(axis=(1, 2)),
        "contrast": grey.std(axis=(1, 2)),
        "sharpness": laplacian(grey).var(axis=(1, 2)),
        "saturated_share": saturated,
    }


def laplacian(grey: np.ndarray) -> np.ndarray:
    """The 3x3 Laplacian of each (H, W) image of an (n, H, W) batch, edges mirrored (the edge repeated)."""
    padded = np.pad(grey, ((0, 0), (1, 1), (1, 1)), mode="symmetric")
    return padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:] - 4.0 * grey
