"""ONNX models: an onnxruntime session behind the `ModelAdapter` interface (registry/formats.py)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from driftgate.errors import BadRequest, UnsupportedFormat

# onnxruntime's element types -> numpy, for feeding a tensor input in its own type.
_ONNX_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(uint16)": np.uint16,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


class OnnxModel:
    """An ONNX graph run by onnxruntime: one input fed every feature at once (a [n, d] matrix, or the
    stacked rows of tensor features reshaped to its static dims, e.g. 8x8 images to [None, 64] or
    [None, 1, 8, 8]), or one [n, 1] input per feature."""

    def __init__(self, data: bytes) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise UnsupportedFormat("format 'onnx' needs onnxruntime: pip install 'driftgate[onnx]'") from None
        try:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise BadRequest(f"the artifact is not a loadable ONNX model: {exc}", field="file") from None
        self.inputs = self.session.get_inputs()
        self.outputs = [o.name for o in self.session.get_outputs()]
        rank = len(self.inputs[0].shape) if self.inputs else 0
        single = len(self.inputs) == 1 and (rank > 2 or (rank == 2 and self.inputs[0].shape[1] != 1))
        self.single_tensor = single
        self.feature_names = None if single else [i.name for i in self.inputs]
        self.classes: list[Any] | None = None
        if len(self.outputs) >= 2:
            self.classes = []  # filled by the first prediction's probability map, or by set_classes()

    def set_classes(self, classes: list[Any]) -> None:
        self.classes = classes

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        feeds = self._feeds(frame)
        results = self.session.run(None, feeds)
        labels = np.asarray(results[0]).reshape(-1)
        if len(results) < 2:
            return labels, None
        proba_out = results[1]
        if isinstance(proba_out, list):  # ZipMap: a list of {class: probability}
            keys = list(proba_out[0].keys()) if proba_out else (self.classes or [])
            if not self.classes:
                self.classes = [k.item() if isinstance(k, np.generic) else k for k in keys]
            proba = np.array([[row[k] for k in keys] for row in proba_out], dtype=np.float64)
        else:
            proba = np.asarray(proba_out, dtype=np.float64)
        return labels, proba

    def _feeds(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        if self.single_tensor:
            inp = self.inputs[0]
            if any(_is_tensor_column(frame[c]) for c in frame.columns):
                return {inp.name: _stacked(frame, inp.shape, _ONNX_TYPES.get(inp.type, np.float32))}
            dtype = np.float64 if "double" in inp.type else np.float32
            return {inp.name: frame.to_numpy(dtype=dtype)}
        feeds = {}
        for inp in self.inputs:
            col = frame[inp.name].to_numpy()
            if "string" in inp.type:
                col = col.astype(str).astype(object)
            elif "int64" in inp.type:
                col = col.astype(np.int64)
            elif "double" in inp.type:
                col = col.astype(np.float64)
            else:
                col = col.astype(np.float32)
            feeds[inp.name] = col.reshape(-1, 1)
        return feeds


def _is_tensor_column(column: pd.Series) -> bool:
    """A tensor feature's column (registry/schema.py `frame_of`): an object column of arrays."""
    return column.dtype == object and len(column) > 0 and isinstance(column.iat[0], np.ndarray)


def _stacked(frame: pd.DataFrame, dims: list[Any], dtype: Any) -> np.ndarray:
    """Every feature of each row flattened side by side (one tensor feature: its values in C order),
    cast to the input's element type and shaped to its static dims (the row axis stays free)."""
    parts = [
        np.stack(frame[c].to_list()).reshape(len(frame), -1) if _is_tensor_column(frame[c]) else frame[[c]].to_numpy()
        for c in frame.columns
    ]
    flat = parts[0] if len(parts) == 1 else np.hstack(parts)
    rest = [d if isinstance(d, int) and d > 0 else -1 for d in dims[1:]]
    if rest.count(-1) > 1 or (-1 not in rest and math.prod(rest) != flat.shape[1]):
        return flat.astype(dtype, copy=False)  # onnxruntime names the mismatch
    return flat.astype(dtype, copy=False).reshape(len(frame), *rest)
