"""Per-clip audio descriptors, vectorised over a batch of clips of any lengths (pure: numpy only).

A clip is a 1-D float array of samples in [-1, 1] (full scale 1.0) at `sample_rate` Hz; a batch is a
sequence of clips or a 2-D array (one clip per row). Definitions:

- `duration_s`: the number of samples / sample_rate.
- `rms_db`: the RMS level in dB full scale, 20 log10(sqrt(mean(x^2))), floored at `DB_FLOOR`
  (-120 dB: digital silence is a finite value, not -inf).
- `silence_share`: the clip is cut into consecutive frames of round(frame_s * sample_rate) samples
  (20 ms by default; the last frame may be shorter); the share of frames whose RMS level is below
  `silence_db` (-40 dBFS by default).
- `clipping_share`: the share of samples with |x| >= `clip_level` (0.999 by default: full scale, with
  room for the rounding of 16-bit PCM, 32767/32768).

An empty clip has duration 0 and NaN for the three others (undefined, like a missing value).

>>> import numpy as np
>>> clip = np.concatenate([np.zeros(160), np.full(160, 0.5), np.ones(160)])
>>> row = describe_audio([clip], sample_rate=8000)
>>> float(row["duration_s"][0]), round(float(row["silence_share"][0]), 3), round(float(row["clipping_share"][0]), 3)
(0.06, 0.333, 0.333)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

AUDIO_DESCRIPTORS = ("duration_s", "rms_db", "silence_share", "clipping_share")
DB_FLOOR = -120.0
FRAME_S = 0.02
SILENCE_DB = -40.0
CLIP_LEVEL = 0.999


def describe_audio(
    clips: Sequence[np.ndarray] | np.ndarray,
    sample_rate: float,
    frame_s: float = FRAME_S,
    silence_db: float = SILENCE_DB,
    clip_level: float = CLIP_LEVEL,
) -> dict[str, np.ndarray]:
    """The four descriptors of each clip, as float64 arrays of len(clips)."""
    if sample_rate <= 0 or frame_s <= 0:
        raise ValueError(f"sample_rate and frame_s must be > 0. Got {sample_rate} and {frame_s}.")
    arrays = [np.asarray(clip, dtype=np.float64) for clip in clips]
    for i, array in enumerate(arrays):
        if array.ndim != 1:
            raise ValueError(f"clip {i} must be one-dimensional. Got shape {array.shape}.")
    lengths = np.array([array.size for array in arrays], dtype=np.int64)
    out = {
        "duration_s": lengths / float(sample_rate),
        "rms_db": np.full(lengths.size, np.nan),
        "silence_share": np.full(lengths.size, np.nan),
        "clipping_share": np.full(lengths.size, np.nan),
    }
    present = np.flatnonzero(lengths > 0)
    if present.size == 0:
        return out
    # All clips end to end: np.add.reduceat then sums each clip or frame in one pass, whatever the lengths.
    samples = np.concatenate([arrays[i] for i in present])
    sizes = lengths[present]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    squares = samples * samples
    mean_square = np.add.reduceat(squares, starts) / sizes
    out["rms_db"][present] = 10.0 * np.log10(np.maximum(mean_square, 10.0 ** (DB_FLOOR / 10.0)))
    clipped = np.add.reduceat((np.abs(samples) >= clip_level).astype(np.float64), starts)
    out["clipping_share"][present] = clipped / sizes
    out["silence_share"][present] = _silence_share(squares, starts, sizes, sample_rate, frame_s, silence_db)
    return out


def _silence_share(
    squares: np.ndarray, starts: np.ndarray, sizes: np.ndarray, sample_rate: float, frame_s: float, silence_db: float
) -> np.ndarray:
    frame = max(1, round(frame_s * sample_rate))
    n_frames = -(-sizes // frame)  # ceil: a shorter last frame counts as a frame
    first_frame = np.concatenate([[0], np.cumsum(n_frames)[:-1]])
    clip_of_frame = np.repeat(np.arange(sizes.size), n_frames)
    within = np.arange(int(n_frames.sum())) - first_frame[clip_of_frame]
    frame_starts = starts[clip_of_frame] + within * frame
    frame_ends = np.minimum(frame_starts + frame, starts[clip_of_frame] + sizes[clip_of_frame])
    frame_power = np.add.reduceat(squares, frame_starts) / (frame_ends - frame_starts)
    # below silence_db <=> mean square below 10^(dB/10): no log of zero for digital silence
    silent = (frame_power < math.pow(10.0, silence_db / 10.0)).astype(np.float64)
    result: np.ndarray = np.add.reduceat(silent, first_frame) / n_frames
    return result
