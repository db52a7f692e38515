"""One text key per class label, so that labels read from JSON, CSV, Parquet or numpy compare equal.

A JSON round trip turns 1 into 1.0, a CSV reader may give "1", numpy may give np.str_ or np.bool_;
a model's `classes_` may be any of these. Every label is compared by `label_key`: integral numbers
and booleans by their integer text ("1"), other numbers by `repr`, text as it is. Missing labels
(None, NaN, "") have no key (None).

>>> [label_key(v) for v in (1, 1.0, "1", True, "yes", None, float("nan"), 0.5)]
['1', '1', '1', '1', 'yes', None, None, '0.5']
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np


def label_key(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value)
    if text == "" or text.lower() == "nan":
        return None
    if text in ("True", "False", "true", "false"):
        return "1" if text.lower() == "true" else "0"
    try:  # "1.0" from a CSV written by pandas is the class 1
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() and math.isfinite(number) else text


def label_keys(values: Iterable[Any]) -> np.ndarray:
    """An object array of keys (None where missing)."""
    keys = [label_key(v) for v in values]
    out = np.empty(len(keys), dtype=object)
    out[:] = keys
    return out


def sort_classes(keys: Iterable[str]) -> list[str]:
    """Numeric keys in numeric order (so "10" after "9"), then the others in text order: the order of
    a scikit-learn model's `classes_`, whose last class is the positive one of a binary model."""

    def order(key: str) -> tuple[int, float, str]:
        try:
            return (0, float(key), key)
        except ValueError:
            return (1, 0.0, key)

    return sorted(set(keys), key=order)
