"""How a tensor input is kept in the prediction log: its raw bytes compressed, with dtype and shape.

A logged row's inputs hold, under a tensor feature's name, either this JSON object or null (the row's
raw payload was not sampled; its descriptors are logged for every row all the same):

    {"dtype": "uint8", "shape": [8, 8], "zlib": "<base64 of the zlib-compressed C-order bytes>"}

>>> import numpy as np
>>> image = np.arange(6, dtype=np.uint8).reshape(2, 3)
>>> decode_tensor(encode_tensor(image)).tolist()
[[0, 1, 2], [3, 4, 5]]
>>> decode_tensor(None) is None
True
>>> decode_tensor({"dtype": "uint8", "shape": [2], "zlib": "bm90IHpsaWI="})
Traceback (most recent call last):
ValueError: tensor payload: cannot decode (error: Error -3 while decompressing data: incorrect header check)
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

# Level 1: most of the gain on images and audio for a fraction of the CPU of the default (6).
ZLIB_LEVEL = 1
# dtypes a payload may name: a stored row never makes numpy build an object or a structured array.
DTYPES = frozenset(
    {"bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float16", "float32", "float64"}
)


def encode_tensor(array: np.ndarray) -> dict[str, Any]:
    """The log's JSON object for one row's tensor."""
    array = np.ascontiguousarray(array)
    raw = zlib.compress(array.tobytes(), ZLIB_LEVEL)
    return {"dtype": array.dtype.name, "shape": list(array.shape), "zlib": base64.b64encode(raw).decode("ascii")}


def decode_tensor(payload: Mapping[str, Any] | None) -> np.ndarray | None:
    """The array a logged payload holds (None for an unsampled row); ValueError when it is malformed."""
    if payload is None:
        return None
    try:
        return _decoded(payload)
    except (zlib.error, binascii.Error, TypeError, KeyError, AttributeError) as exc:  # one error type for callers
        raise ValueError(f"tensor payload: cannot decode ({type(exc).__name__}: {exc})") from None


def _decoded(payload: Mapping[str, Any]) -> np.ndarray:
    dtype = payload.get("dtype")
    if dtype not in DTYPES:
        raise ValueError(f"tensor payload: unknown dtype {dtype!r}")
    shape = tuple(int(d) for d in payload.get("shape", ()))
    expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    # Never inflate past what the shape needs: a crafted payload cannot become a memory bomb.
    raw = zlib.decompressobj().decompress(base64.b64decode(payload["zlib"]), expected + 1)
    if len(raw) != expected:
        raise ValueError(f"tensor payload: {len(raw)} bytes for shape {list(shape)} of {dtype} ({expected} expected)")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)
