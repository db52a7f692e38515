"""Redaction of sensitive input fields, applied before a row is stored or logged."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any


def redact(inputs: dict[str, Any], rules: Mapping[str, str]) -> dict[str, Any]:
    """`drop` removes the field; `hash` keeps a SHA-256 prefix so rows can still be grouped by it.

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
            out[name] = "sha256:" + hashlib.sha256(str(out[name]).encode()).hexdigest()[:32]
    return out
