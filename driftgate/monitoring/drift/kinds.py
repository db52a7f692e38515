"""One representation of every feature kind, wherever a column comes from.

A column reaches the drift engine from several places: the registered reference (pandas, with
`bool`, `int64`, `float64` and object dtypes), the prediction log (the serving schema turns numbers,
integers and booleans into float64, so a boolean is logged as 0.0 / 1.0), an exported file, or a file
read by pyarrow (whose booleans cast to the text "true"). Every reader hands its values to the
functions here with the feature's kind, and gets the same canonical values back:

| kind | canonical values | missing |
|---|---|---|
| numeric, integer | float64 | NaN (and +-inf, counted as missing by the tests) |
| boolean | the text "False" / "True" | None |
| categorical | the text of the value (a whole number as "3", not "3.0") | None |

Booleans accept True/False, 0/1 (any number type), and the texts true/false, t/f, yes/no, 1/0,
1.0/0.0 in any case; any other value keeps its own text, so it shows up as an unseen category instead
of vanishing. Pure: numpy only.

>>> import numpy as np
>>> canonical(np.array([1.0, 0.0, np.nan]), FeatureKind.BOOLEAN).tolist()
['True', 'False', None]
>>> canonical(np.array([True, False]), FeatureKind.BOOLEAN).tolist()
['True', 'False']
>>> level_counts(np.array(["true", "0", None], dtype=object), FeatureKind.BOOLEAN)
(['False', 'True'], [1, 1], 1)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

import numpy as np

from driftgate.errors import InvalidInput

TRUE, FALSE = "True", "False"
_TRUE_TEXT = frozenset({"true", "t", "yes", "y", "1", "1.0"})
_FALSE_TEXT = frozenset({"false", "f", "no", "n", "0", "0.0"})
# Whole floats up to here are written without ".0" (beyond it a float is not an exact integer anyway).
_EXACT_INTEGER = 2.0**53


class FeatureKind(StrEnum):
    """The kind of a feature: the same four names as the serving schema (`registry.schema`)."""

    NUMERIC = "numeric"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    CATEGORICAL = "categorical"

    @property
    def is_numeric(self) -> bool:
        """Binned on reference quantiles and tested with KS / Wasserstein (else: levels and chi-square)."""
        return self is FeatureKind.NUMERIC or self is FeatureKind.INTEGER


def parse_kind(name: str, kind: str) -> FeatureKind:
    try:
        return FeatureKind(kind)
    except ValueError:
        raise InvalidInput(
            f"The kind of feature {name!r} must be one of {[k.value for k in FeatureKind]}. Got {kind!r} instead."
        ) from None


def _is_missing_scalar(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return bool(value != value)
    return type(value).__name__ in ("NAType", "NaTType")  # pandas' missing markers, without importing pandas


def _number_text(value: float) -> str:
    if math.isfinite(value) and value == int(value) and abs(value) < _EXACT_INTEGER:
        return str(int(value))
    return repr(float(value))


def level(value: Any, kind: FeatureKind) -> str | None:
    """The canonical level of one value of a boolean or categorical feature; None when missing."""
    if _is_missing_scalar(value):
        return None
    if isinstance(value, bool | np.bool_):
        return TRUE if value else FALSE
    if kind is FeatureKind.BOOLEAN:
        if isinstance(value, int | float | np.integer | np.floating):
            return TRUE if value == 1 else FALSE if value == 0 else _number_text(float(value))
        text = value.decode() if isinstance(value, bytes) else str(value)
        folded = text.strip().lower()
        return TRUE if folded in _TRUE_TEXT else FALSE if folded in _FALSE_TEXT else text
    if isinstance(value, str):
        return value
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return _number_text(float(value))
    return value.decode() if isinstance(value, bytes) else str(value)


def as_float(name: str, values: Any) -> np.ndarray:
    """A numeric or integer feature's values as float64, missing as NaN (booleans as 0 / 1)."""
    array = np.asarray(values)
    try:
        if array.dtype.kind != "O":
            return np.asarray(array, dtype=np.float64)
        return np.array([np.nan if _is_missing_scalar(v) else v for v in array.tolist()], dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"Feature {name!r} is numeric in the reference profile, but a value could not be read as a number."
        ) from None


def _bools_among_numbers(items: list[Any]) -> bool:
    """Whether True / 1 / 1.0 (equal, with one hash) may meet in one dict, where they differ as levels."""
    types = set(map(type, items))
    return bool(types & {bool, np.bool_}) and bool(types - {bool, np.bool_, str, type(None)})


def _distinct(values: np.ndarray) -> tuple[list[Any], list[int]]:
    """Distinct values and their counts: by hashing for objects, by sorting for numpy dtypes."""
    if values.dtype.kind == "O":
        items = values.tolist()
        if _bools_among_numbers(items):
            typed = Counter(zip(map(type, items), items, strict=True))
            return [value for _, value in typed], list(typed.values())
        tally = Counter(items)
        return list(tally), list(tally.values())
    distinct, counts = np.unique(values, return_counts=True)
    return distinct.tolist(), counts.tolist()


def level_counts_of(
    distinct: Iterable[Any], counts: Iterable[int], kind: FeatureKind, missing: int = 0
) -> tuple[list[str], list[int], int]:
    """Canonical levels (sorted), their counts and the missing count, from distinct raw values and
    their counts (how `Counter`, `np.unique` and Arrow's `value_counts` give them)."""
    totals: dict[str, int] = {}
    for value, count in zip(distinct, counts, strict=True):
        text = level(value, kind)
        if text is None:
            missing += int(count)
        else:
            totals[text] = totals.get(text, 0) + int(count)
    ordered = sorted(totals)
    return ordered, [totals[text] for text in ordered], missing


def level_counts(values: Any, kind: FeatureKind) -> tuple[list[str], list[int], int]:
    """Canonical levels of a boolean or categorical column (sorted), their counts, and the missing count.

    Each distinct value is mapped once: a million category names cost one hashing pass.
    """
    distinct, counts = _distinct(np.asarray(values))
    return level_counts_of(distinct, counts, kind)


def canonical(values: Any, kind: FeatureKind, name: str = "") -> np.ndarray:
    """A whole column in its kind's canonical form (see the module's table)."""
    if kind.is_numeric:
        return as_float(name, values)
    array = np.asarray(values)
    if array.dtype.kind == "b":
        return np.where(array, TRUE, FALSE).astype(object)
    if array.dtype.kind == "O":
        items = array.tolist()
        out = np.empty(len(items), dtype=object)
        if _bools_among_numbers(items):
            out[:] = [level(value, kind) for value in items]
            return out
        mapping: dict[Any, str | None] = {}
        for i, value in enumerate(items):
            try:
                out[i] = mapping[value]
            except KeyError:
                out[i] = mapping[value] = level(value, kind)
            except TypeError:  # an unhashable value: its own text
                out[i] = level(value, kind)
        return out
    distinct, inverse = np.unique(array, return_inverse=True)
    texts = np.array([level(v, kind) for v in distinct.tolist()], dtype=object)
    return texts[inverse.reshape(-1)] if texts.size else np.empty(0, dtype=object)


def kind_of(values: np.ndarray) -> FeatureKind:
    """The kind a column's dtype says: bool -> boolean, integers -> integer, floats -> numeric;
    an object column holding only booleans (and missing values) is boolean; anything else categorical."""
    dtype_kind = values.dtype.kind
    if dtype_kind == "b":
        return FeatureKind.BOOLEAN
    if dtype_kind in "iu":
        return FeatureKind.INTEGER
    if dtype_kind == "f":
        return FeatureKind.NUMERIC
    if dtype_kind == "O" and values.size:
        present = [v for v in values[:1000].tolist() if not _is_missing_scalar(v)]
        if present and all(isinstance(v, bool | np.bool_) for v in present):
            rest = values[1000:].tolist()
            if all(isinstance(v, bool | np.bool_) or _is_missing_scalar(v) for v in rest):
                return FeatureKind.BOOLEAN
    return FeatureKind.CATEGORICAL


def sample_rows(rows: int, size: int, seed: int) -> np.ndarray:
    """Row numbers of a uniform sample without replacement: the `size` rows with the smallest of
    `rows` uniform keys drawn from `seed`, in key order. The file reader draws the same keys batch by
    batch (`io.RowSample`), so a file and the same rows in memory give the same sample in the same order.
    """
    keys = np.random.default_rng(seed).random(rows)
    if rows <= size:
        return np.argsort(keys, kind="stable")
    chosen = np.argpartition(keys, size - 1)[:size] if size > 0 else np.zeros(0, dtype=np.int64)
    return chosen[np.argsort(keys[chosen], kind="stable")]
