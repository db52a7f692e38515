"""Text and tensor features: checking and converting request values, inferring them from reference data.

A text feature's column becomes a 1-d object array of str (None where null). A tensor feature's
column becomes one array of shape (n, *shape) and the feature's dtype. Per row, a tensor may come as

- nested lists of the declared shape, or a flat list of prod(shape) values;
- `{"b64": "<base64 of the raw C-order little-endian bytes>", "dtype": "uint8"}`;
- for an image (`media` "image"): `{"image": "<base64 PNG or JPEG>"}`, or the encoded bytes themselves
  (Open Inference Protocol BYTES), decoded with Pillow to mode L for (H, W), RGB for (H, W, 3);
- an array (reference data read from Parquet list columns, V2 tensors).

Every refusal is an `InvalidInput` (422) naming the feature and, where one row is at fault, the row.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from typing import Any

import numpy as np
import pandas as pd

from driftgate.errors import InvalidInput, json_type, short_repr

# A text feature's bound when its spec says none (characters a row).
DEFAULT_MAX_CHARS = 100_000
# dtypes a tensor feature may have, and a "b64" payload may name (never object or structured arrays).
TENSOR_DTYPES = frozenset(
    {"bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float16", "float32", "float64"}
)
IMAGE_FORMATS = ("PNG", "JPEG")
# numpy's most dimensions: nesting deeper than this is no tensor (and must not cost a RecursionError).
MAX_DIMS = 64
# A PNG's last chunk (IEND, with its CRC).
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# Pillow's mode for an image feature's channel count (the last axis; none for (H, W)).
_MODES = {None: "L", 1: "L", 3: "RGB", 4: "RGBA"}


def _fail(name: str, message: str, row: int | None = None) -> InvalidInput:
    where = f"feature {name!r}" if row is None else f"feature {name!r} at row {row}"
    return InvalidInput(f"{where}: {message}", feature=name, **({} if row is None else {"row": row}))


# ---- text -----------------------------------------------------------------------------------------


def convert_text(name: str, nullable: bool, max_chars: int | None, values: Any) -> np.ndarray:
    """A column of strings (None where null, if the feature allows it), each within `max_chars`."""
    limit = DEFAULT_MAX_CHARS if max_chars is None else max_chars
    out = np.empty(len(values), dtype=object)
    for row, value in enumerate(values):
        if type(value) is not str:
            if isinstance(value, str):  # a str subclass (numpy.str_)
                value = str(value)
            elif value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
                if not nullable:
                    raise _fail(name, "null text; the feature is not nullable", row)
                value = None
            else:
                raise _fail(name, f"expects text (a string), got {json_type(value)} {short_repr(value)}", row)
        if value is not None and len(value) > limit:
            raise _fail(name, f"{len(value)} characters, more than the feature's max_chars {limit}", row)
        out[row] = value
    return out


# ---- tensors --------------------------------------------------------------------------------------


class TensorSpec:
    """What converting a tensor feature needs of its FeatureSpec (kept apart so this module does not
    import schema.py, which imports it)."""

    __slots__ = ("bright", "dtype", "media", "name", "nullable", "shape", "size")

    def __init__(
        self, name: str, shape: tuple[int, ...], dtype: str, media: str | None, nullable: bool, bright: float | None
    ) -> None:
        self.name, self.shape, self.media, self.nullable = name, shape, media, nullable
        self.dtype = np.dtype(dtype)
        self.size = math.prod(shape)
        # For an image: the value of a fully bright pixel (the spec's `max`, else the dtype's default).
        self.bright = bright if bright is not None else (255.0 if self.dtype.kind in "iu" else 1.0)

    def describe(self) -> str:
        return f"a {self.dtype.name} tensor of shape {list(self.shape)}"


def convert_tensor(spec: TensorSpec, values: Any, n_rows: int) -> np.ndarray:
    """An array of shape (n_rows, *spec.shape) and the spec's dtype, from a column of any of the forms
    in the module docstring."""
    if isinstance(values, np.ndarray) and values.dtype != object:
        return _cast(spec, _batch_shaped(spec, values, n_rows), None)
    dense = _dense_at_once(spec, values, n_rows)
    if dense is not None:
        return _cast(spec, dense, None)
    out = np.empty((n_rows, *spec.shape), dtype=spec.dtype)
    for row, cell in enumerate(values):
        out[row] = _row(spec, cell, row)
    return out


def _batch_shaped(spec: TensorSpec, arr: np.ndarray, n_rows: int) -> np.ndarray:
    """A whole column given as one array: (n, *shape), or (n, prod(shape)) reshaped."""
    if arr.shape[:1] == (n_rows,) and (arr.shape[1:] == spec.shape or arr.shape[1:] == (spec.size,)):
        return arr.reshape((n_rows, *spec.shape))
    raise _fail(
        spec.name,
        f"expects shape {[n_rows, *spec.shape]} or {[n_rows, spec.size]} ({n_rows} rows of {spec.describe()}), "
        f"got {list(arr.shape)}",
    )


def _dense_at_once(spec: TensorSpec, values: Any, n_rows: int) -> np.ndarray | None:
    """The common case in one numpy call: every row a list of numbers of the right shape. None when
    any row needs a look of its own (another form, a wrong shape, a value that is no number)."""
    if not (isinstance(values, list) and values and all(type(v) is list for v in values)):
        return None
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError, OverflowError):  # ragged, or integers past int64
        return None
    if arr.dtype.kind not in "iuf" or arr.shape[:1] != (n_rows,):
        return None
    if arr.shape[1:] == spec.shape:
        return arr
    return arr.reshape((n_rows, *spec.shape)) if arr.shape[1:] == (spec.size,) else None


def _row(spec: TensorSpec, cell: Any, row: int) -> np.ndarray:
    if isinstance(cell, dict):
        return _cast(spec, _from_object(spec, cell, row), row)
    if isinstance(cell, bytes | bytearray | memoryview):
        if spec.media != "image":
            raise _fail(spec.name, f"expects {spec.describe()}, got encoded bytes (only images take them)", row)
        return _cast(spec, decode_image(spec, bytes(cell), row), row)
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        if spec.nullable and spec.dtype.kind == "f":
            return np.full(spec.shape, np.nan, dtype=spec.dtype)
        raise _fail(spec.name, f"null; expects {spec.describe()}", row)
    if not isinstance(cell, list | tuple | np.ndarray):
        raise _fail(spec.name, f"expects {spec.describe()}, got {json_type(cell)} {short_repr(cell)}", row)
    arr = dense(cell)
    if arr is None or arr.dtype.kind not in "iufb":
        bad = _first_non_number(cell)
        if bad is cell:  # every value a number: the nesting is ragged
            raise _fail(spec.name, f"expects shape {list(spec.shape)}, got ragged nested arrays", row)
        raise _fail(spec.name, f"expects numbers in {spec.describe()}, got {json_type(bad)} {short_repr(bad)}", row)
    if arr.shape != spec.shape:
        if arr.shape != (spec.size,):
            raise _fail(
                spec.name,
                f"expects shape {list(spec.shape)} (or {spec.size} values flat), got {list(arr.shape)}",
                row,
            )
        arr = arr.reshape(spec.shape)
    return _cast(spec, arr, row)


def dense(cell: Any, depth: int = 0) -> np.ndarray | None:
    """A cell's values as one rectangular array: nested lists, or the object arrays of arrays that
    pandas makes of nested Parquet lists. None when ragged, or nested deeper than a tensor can be."""
    if isinstance(cell, np.ndarray) and cell.dtype != object:
        return cell
    if depth >= MAX_DIMS:
        return None
    try:
        arr = np.asarray(cell)
    except (ValueError, TypeError, OverflowError):
        arr = None
    if arr is not None and arr.dtype != object:
        return arr
    items = list(cell)
    parts = [dense(v, depth + 1) if isinstance(v, list | tuple | np.ndarray) else None for v in items]
    if not parts or any(p is None for p in parts):
        return None
    shapes = {p.shape for p in parts if p is not None}
    if len(shapes) != 1:
        return None
    return np.stack([p for p in parts if p is not None])


def _first_non_number(cell: Any) -> Any:
    stack = [cell]
    while stack:
        value = stack.pop()
        if isinstance(value, list | tuple | np.ndarray):
            stack.extend(reversed(list(value)))
        elif not isinstance(value, int | float | np.number) or isinstance(value, bool):
            return value
    return cell


def _from_object(spec: TensorSpec, cell: dict[str, Any], row: int) -> np.ndarray:
    if set(cell) == {"image"}:
        if spec.media != "image":
            raise _fail(spec.name, f"an {{'image': ...}} object is for image features; expects {spec.describe()}", row)
        return decode_image(spec, _b64(spec, cell["image"], "image", row, None), row)
    if set(cell) == {"b64", "dtype"}:
        dtype = cell["dtype"]
        if not isinstance(dtype, str) or dtype not in TENSOR_DTYPES:
            raise _fail(spec.name, f"'dtype': expects one of {sorted(TENSOR_DTYPES)}, got {short_repr(dtype)}", row)
        kind = np.dtype(dtype).newbyteorder("<")
        expected = spec.size * kind.itemsize
        raw = _b64(spec, cell["b64"], "b64", row, expected)
        if len(raw) != expected:
            raise _fail(
                spec.name,
                f"'b64' holds {len(raw)} bytes; {spec.size} {dtype} values ({list(spec.shape)}) take {expected}",
                row,
            )
        return np.frombuffer(raw, dtype=kind).reshape(spec.shape)
    keys = sorted(map(str, cell))[:6]
    forms = "{'b64', 'dtype'}" + (" or {'image'}" if spec.media == "image" else "")
    raise _fail(spec.name, f"expects an object with keys {forms}, got keys {keys}", row)


def _b64(spec: TensorSpec, text: Any, key: str, row: int, size: int | None) -> bytes:
    if not isinstance(text, str):
        raise _fail(spec.name, f"{key!r}: expects a base64 string, got {json_type(text)}", row)
    # Look at the length before decoding: a 50 MB string for a 64-byte tensor is refused unread.
    if size is not None and len(text) > 4 * (size // 3 + 1) + 4:
        raise _fail(spec.name, f"{key!r}: {len(text)} base64 characters, far more than {size} bytes need", row)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _fail(spec.name, f"{key!r}: expects base64, got undecodable text {short_repr(text[:40])}", row) from None


def decode_image(spec: TensorSpec, raw: bytes, row: int | None) -> np.ndarray:
    """A PNG or JPEG as the feature's pixels: its size must be the feature's shape (read from the header
    before anything is decoded, so a crafted header cannot make a big allocation); values scaled so that
    a fully bright pixel is `spec.bright`."""
    try:
        from PIL import Image
    except ImportError:
        raise _fail(spec.name, "image inputs need Pillow on the server: pip install 'driftgate[images]'", row) from None
    height, width = spec.shape[0], spec.shape[1]
    channels = spec.shape[2] if len(spec.shape) == 3 else None
    try:
        image = Image.open(io.BytesIO(raw), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as exc:
        raise _fail(spec.name, f"image refused before decoding: {exc}", row) from None
    except Exception:
        raise _fail(spec.name, f"expects a PNG or JPEG image, got {len(raw)} undecodable bytes", row) from None
    with image:
        if image.size != (width, height):
            raise _fail(
                spec.name,
                f"image is {image.size[0]}x{image.size[1]} pixels (width x height); the feature expects "
                f"{width}x{height}",
                row,
            )
        try:
            pixels = np.asarray(image.convert(_MODES[channels]))
        except Exception as exc:  # truncated or corrupt data: Pillow raises OSError, SyntaxError, ...
            raise _fail(spec.name, f"image data undecodable ({type(exc).__name__}: {exc})", row) from None
        # Pillow stops once it has every pixel: a PNG cut after its pixel data would pass unnoticed.
        if image.format == "PNG" and _PNG_END not in raw[-4096:]:
            raise _fail(spec.name, "image data undecodable (a PNG without its end chunk: truncated)", row)
    if channels == 1:
        pixels = pixels[..., np.newaxis]
    if spec.dtype.kind in "iu" and spec.bright == 255.0:
        return pixels
    scaled = pixels.astype(np.float64) * (spec.bright / 255.0)
    return np.rint(scaled) if spec.dtype.kind in "iub" else scaled


def _cast(spec: TensorSpec, arr: np.ndarray, row: int | None) -> np.ndarray:
    """`arr` in the spec's dtype, refusing what that dtype cannot hold exactly: non-numbers, NaN or
    infinity (NaN allowed where the feature is nullable and floating), fractions or out-of-range values
    for an integer dtype, magnitudes past a float dtype's range."""
    if arr.dtype == spec.dtype:
        if spec.dtype.kind == "f":
            _check_finite(spec, arr, row)
        return arr
    if arr.dtype.kind == "b" and spec.dtype.kind != "b":
        raise _fail(spec.name, f"expects {spec.dtype.name} numbers, got booleans", row)
    if arr.dtype.kind not in "iufb":
        raise _fail(spec.name, f"expects {spec.dtype.name} numbers, got {arr.dtype.name} values", row)
    target = spec.dtype
    if target.kind == "b":
        if not np.isin(arr, (0, 1)).all():
            raise _fail(spec.name, "expects bool values (true/false, 0 or 1)", row)
        return arr.astype(target)
    if target.kind in "iu":
        if arr.dtype.kind == "f":
            _check_finite(spec, arr, row, allow_nan=False)
            if not np.array_equal(arr, np.round(arr)):
                raise _fail(spec.name, f"expects {target.name} values (whole numbers), got fractions", row)
        if arr.size:
            info = np.iinfo(target)
            low, high = arr.min(), arr.max()
            if low < info.min or high > info.max:
                bad = low if low < info.min else high
                raise _fail(spec.name, f"expects {target.name} values in [{info.min}, {info.max}], got {bad}", row)
        return arr.astype(target)
    if arr.dtype.kind == "f":
        _check_finite(spec, arr, row)
    with np.errstate(over="ignore"):
        out = arr.astype(target)
    if target.kind == "f" and not np.isfinite(out[~np.isnan(out)]).all():
        raise _fail(spec.name, f"values beyond the range of {target.name}", row)
    return out


def _check_finite(spec: TensorSpec, arr: np.ndarray, row: int | None, allow_nan: bool | None = None) -> None:
    if np.isfinite(arr).all():
        return
    nan_ok = spec.nullable if allow_nan is None else allow_nan
    bad = np.isinf(arr) if nan_ok else ~np.isfinite(arr)
    if bad.any():
        where = row
        if where is None and arr.ndim == len(spec.shape) + 1:  # a whole column: say which row
            where = int(np.argwhere(bad)[0][0])
        what = "infinity" if np.isinf(arr).any() else "NaN"
        raise _fail(spec.name, f"{what} in the tensor; expects finite {spec.dtype.name} values", where)


# ---- inference ------------------------------------------------------------------------------------


def infer_tensor(column: pd.Series) -> tuple[tuple[int, ...], str, bool] | None:
    """(shape, dtype, nullable) when every non-null cell of an object column is a list or array of one
    shape (uint8 for integers within 0..255, else float32); None for any other column."""
    if column.dtype != object:
        return None
    cells = column.dropna()
    if cells.empty or not all(isinstance(v, list | tuple | np.ndarray) for v in cells):
        return None
    arrays = [dense(v) for v in cells]
    if any(a is None or a.dtype.kind not in "iuf" or a.size == 0 for a in arrays):
        return None
    shapes = {a.shape for a in arrays if a is not None}
    if len(shapes) != 1:
        return None
    integers = all(a.dtype.kind in "iu" and a.min() >= 0 and a.max() <= 255 for a in arrays if a is not None)
    return shapes.pop(), "uint8" if integers else "float32", len(cells) < len(column)
