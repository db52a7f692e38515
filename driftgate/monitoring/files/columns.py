"""One Arrow column of a file in its kind's one representation (`drift.kinds`)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftgate.monitoring.drift.kinds import FeatureKind, canonical, level_counts_of


def type_kind(field_type: pa.DataType) -> FeatureKind:
    """The kind a file column's type says (the same rule as `kinds.kind_of` for in-memory columns)."""
    if pa.types.is_boolean(field_type):
        return FeatureKind.BOOLEAN
    if pa.types.is_integer(field_type):
        return FeatureKind.INTEGER
    if pa.types.is_floating(field_type) or pa.types.is_decimal(field_type):
        return FeatureKind.NUMERIC
    return FeatureKind.CATEGORICAL


def as_floats(column: pa.Array) -> np.ndarray:
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)


def category_counts(column: pa.Array, kind: FeatureKind = FeatureKind.CATEGORICAL) -> tuple[list[str], list[int], int]:
    """Canonical levels, counts and missing count of a boolean or categorical column: Arrow counts
    the distinct values, `kinds` spells out each distinct value once."""
    counted = pc.value_counts(column)
    values = counted.field("values")
    if pa.types.is_dictionary(values.type):
        # Counted on the codes; only the distinct values are spelled out (duplicates in a dictionary
        # are harmless: counts are added up per level).
        values = values.dictionary_decode()
    return level_counts_of(values.to_pylist(), counted.field("counts").to_pylist(), kind)


def canonical_values(column: pa.Array, kind: FeatureKind) -> np.ndarray:
    if kind.is_numeric:
        return as_floats(column)
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    return canonical(np.array(column.to_pylist(), dtype=object), kind)


def column_rows(column: pa.Array, kind: FeatureKind, rows: np.ndarray | None) -> np.ndarray:
    """`canonical_values` of the given rows (all when None) of one column."""
    if kind.is_numeric:
        values = as_floats(column)
        return values if rows is None else values[rows]
    return canonical_values(column if rows is None else column.take(pa.array(rows)), kind)
