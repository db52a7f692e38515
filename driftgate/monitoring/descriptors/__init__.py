"""Input descriptors of text, images and audio: per-row numbers to monitor like numeric features.

Pure: the standard library and numpy only. Each `describe_*` returns {descriptor name: float64 array
with one value per row}; NaN marks a value undefined for that row (e.g. the unseen-token share of an
empty text), to be counted as missing by the drift tests.
"""

from driftgate.monitoring.descriptors.audio import AUDIO_DESCRIPTORS, describe_audio
from driftgate.monitoring.descriptors.image import IMAGE_DESCRIPTORS, describe_images
from driftgate.monitoring.descriptors.tensor import describe_tensor, tensor_descriptors
from driftgate.monitoring.descriptors.text import TEXT_DESCRIPTORS, TextDescriber, tokenize

__all__ = [
    "AUDIO_DESCRIPTORS",
    "IMAGE_DESCRIPTORS",
    "TEXT_DESCRIPTORS",
    "TextDescriber",
    "describe_audio",
    "describe_images",
    "describe_tensor",
    "tensor_descriptors",
    "tokenize",
]
