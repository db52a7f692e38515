"""Redaction of sensitive input fields, applied before a row is stored, spooled or logged.

Rules come from the endpoint config, e.g. `{"redact": {"email": "drop", "customer_id": "hash"}}`:
`drop` removes the field, `hash` keeps a SHA-256 prefix so rows can still be grouped by it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

REDACTED = "[redacted]"


def hash_value(value: Any) -> str:
    """A stable pseudonym: rows stay groupable by the field, the raw value is gone.

    >>> hash_value("a@b.c")
    'sha256:d648b243a3e817eaa3309e00e183483f'
    """
    return "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()[:32]


def redact(inputs: dict[str, Any], rules: Mapping[str, str]) -> dict[str, Any]:
    """Apply the rules to one row.

    >>> redact({"email": "a@b.c", "x": 1}, {"email": "drop"})
    {'x': 1}
    """
    if not rules:
        return inputs
    out = dict(inputs)
    for name, rule in rules.items():
        if name not in out:
            continue
        if rule == "drop":
            del out[name]
        else:
            out[name] = hash_value(out[name])
    return out


def redact_columns(columns: Mapping[str, Any], rules: Mapping[str, str]) -> dict[str, Any]:
    """Apply the rules to columns of rows (name -> values); the caller's mapping is left as it was.

    >>> redact_columns({"email": ["a@b.c"], "x": [1]}, {"email": "drop"})
    {'x': [1]}
    """
    out: dict[str, Any] = {}
    for name, values in columns.items():
        rule = rules.get(name)
        if rule == "drop":
            continue
        out[name] = values if rule is None else [hash_value(v) for v in list(values)]
    return out


def scrub_text(text: str, frame: pd.DataFrame | Mapping[str, Any], rules: Mapping[str, str]) -> str:
    """Blank out raw values of redacted fields that an error message may quote."""
    for name in rules:
        if name not in frame:  # a frame's columns, a mapping's keys
            continue
        for value in set(map(str, list(frame[name]))):
            if value and value in text:
                text = text.replace(value, REDACTED)
    return text
