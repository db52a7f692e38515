"""Text and tensor inputs in `driftgate export` (issue 22).

What the log holds (docs/media.md section 2) and what the export writes:
- a text feature: its (redacted) text, a string column.
- a tensor feature `x`: the compressed payload of sampled rows (`core.payload`), null for the others.
  Parquet: a nested fixed-size list of the decoded values in the feature's shape and dtype (an 8x8
  float32 image: `fixed_size_list<fixed_size_list<float, 8>, 8>`), readable back as reference data;
  CSV: the payload's JSON text, which `driftgate.core.payload.decode_tensor` turns back into the array.
- its descriptors `x.<descriptor>`: float columns.
Rows logged before these kinds existed have none of these columns and export as they always did.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import pyarrow as pa

# A tensor column's (shape without the row axis, numpy dtype name).
TensorSpec = tuple[tuple[int, ...], str]


def schema_columns(features: Iterable[Mapping[str, Any]]) -> tuple[dict[str, str], dict[str, TensorSpec]]:
    """A version's logged input columns by kind (descriptors as "numeric"), and its tensor specs.

    >>> kinds, tensors = schema_columns([{"name": "img", "kind": "tensor", "shape": [8, 8], "dtype": "uint8",
    ...                                   "media": "image"}, {"name": "t", "kind": "text"}])
    >>> kinds["img.brightness"], kinds["t"], tensors
    ('numeric', 'text', {'img': ((8, 8), 'uint8')})
    """
    from driftgate.records.media import descriptor_names

    kinds: dict[str, str] = {}
    tensors: dict[str, TensorSpec] = {}
    for feature in features:
        name, kind = feature["name"], feature["kind"]
        kinds[name] = kind
        if kind == "tensor":
            tensors[name] = (tuple(int(d) for d in feature.get("shape") or ()), feature.get("dtype") or "float32")
            kinds.update(dict.fromkeys(descriptor_names(name, feature.get("media")), "numeric"))
    return kinds, tensors


def is_payload(value: Any) -> bool:
    return isinstance(value, dict) and "zlib" in value


def payload_columns(records: list[dict[str, Any]], columns: Iterable[str], known: Iterable[str]) -> list[str]:
    """The columns holding tensor payloads: those the schema names, and any whose values are payloads
    (a version no longer registered)."""
    named = set(known)
    found = []
    for column in columns:
        if column in named or any(is_payload(r.get(column)) for r in records):
            found.append(column)
    return found


def payload_texts(values: Iterable[Any]) -> list[str | None]:
    """CSV: each payload as its JSON text."""
    return [None if v is None else orjson.dumps(v).decode() for v in values]


def arrow_type(spec: TensorSpec) -> pa.DataType:
    import numpy as np
    import pyarrow as pa

    shape, dtype = spec
    arrow: pa.DataType = pa.from_numpy_dtype(np.dtype(dtype))
    for size in reversed(shape or (1,)):
        arrow = pa.list_(arrow, size)
    return arrow


def tensor_array(values: list[Any], spec: TensorSpec | None) -> pa.Array:
    """Parquet: the payloads decoded into one nested fixed-size list array (null where no payload was
    kept). Without a known spec the first payload's shape and dtype are used; with no payload at all,
    a null string column (which later chunks' payloads then fill as JSON text, see `cast_column`)."""
    import numpy as np
    import pyarrow as pa

    from driftgate.core.payload import decode_tensor

    arrays = [decode_tensor(v) if is_payload(v) else None for v in values]
    if spec is None:
        first = next((a for a in arrays if a is not None), None)
        if first is None:
            return pa.array([None] * len(values), pa.string())
        spec = (tuple(first.shape), first.dtype.name)
    shape, dtype = spec
    size = int(np.prod(shape or (1,)))
    flat = np.zeros((len(values), size), dtype=dtype)
    valid = np.zeros(len(values), dtype=bool)
    for i, array in enumerate(arrays):
        if array is not None and array.size == size:  # another shape (another version): written as null
            flat[i] = array.reshape(-1)
            valid[i] = True
    nested: pa.Array = pa.array(flat.reshape(-1))
    dims = shape or (1,)
    for d in reversed(dims[1:]):
        nested = pa.FixedSizeListArray.from_arrays(nested, d)
    return pa.FixedSizeListArray.from_arrays(nested, dims[0], mask=pa.array(~valid))


def with_tensors(table: pa.Table, columns: list[str], tensors: Mapping[str, pa.Array]) -> pa.Table:
    """The table with each tensor column put back at its place in `columns`."""
    for name in columns:
        if name in tensors:
            table = table.add_column(columns.index(name), name, tensors[name])
    return table


def cast_column(values: list[Any], arrow: pa.DataType) -> pa.Array:
    """A later chunk's payloads in the type the first chunk fixed."""
    import pyarrow as pa

    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return pa.array(payload_texts(values), pa.string())
    shape: list[int] = []
    inner = arrow
    while pa.types.is_fixed_size_list(inner):
        shape.append(inner.list_size)
        inner = inner.value_type
    return tensor_array(values, (tuple(shape), inner.to_pandas_dtype()().dtype.name))
