"""Redaction of sensitive input fields, applied before a row is stored, spooled or logged.

Rules come from the endpoint config, e.g.
`{"redact": {"email": "drop", "customer_id": "hash", "body": "mask"}}`: `drop` removes the field,
`hash` keeps a SHA-256 prefix so rows can still be grouped by it, `mask` keeps free text readable
with its e-mail addresses replaced by `[email]` and every digit by `#` (phone, account and card
numbers; the text keeps its shape for a reviewer and for the text descriptors). A masked value that
is not a string is masked as its text: a number becomes `#.#`, never stored as it was.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

REDACTED = "[redacted]"
MASKED_EMAIL = "[email]"
MASKED_DIGIT = "#"
# Local part and domain as mail clients accept them in running text (\w: Unicode letters and digits).
_EMAIL = re.compile(r"[\w.%+'-]+@[\w-]+(?:\.[\w-]+)+")
_DIGIT = re.compile(r"\d")  # any Unicode digit, not only 0-9


def hidden_fields(rules: Mapping[str, str] | None) -> tuple[str, ...]:
    """Fields whose stored value is not what the model saw ('drop', 'hash'): the monitor and retraining
    leave them out. A masked text stays a text of the same shape, monitored and trained on as stored.

    >>> hidden_fields({"email": "drop", "id": "hash", "body": "mask"})
    ('email', 'id')
    """
    return tuple(name for name, rule in (rules or {}).items() if rule != "mask")


def mask_text(value: Any) -> Any:
    """E-mail addresses and digits of a free text masked; None stays None.

    >>> mask_text("Mail jo.doe@example.org or call +49 151 2345")
    'Mail [email] or call +## ### ####'
    """
    if value is None or value != value:  # None, NaN: missing stays missing
        return value
    text = value if isinstance(value, str) else str(value)
    return _DIGIT.sub(MASKED_DIGIT, _EMAIL.sub(MASKED_EMAIL, text))


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
        elif rule == "mask":
            out[name] = mask_text(out[name])
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
        if rule is None:
            out[name] = values
        elif rule == "mask":
            out[name] = [mask_text(v) for v in list(values)]
        else:
            out[name] = [hash_value(v) for v in list(values)]
    return out


def scrub_text(text: str, frame: pd.DataFrame | Mapping[str, Any], rules: Mapping[str, str]) -> str:
    """Blank out raw values of redacted fields that an error message may quote. With a `mask` rule
    the whole message is masked: it may quote a text in part (`short_repr`), which no lookup of the
    whole value finds."""
    for name, rule in rules.items():
        if name not in frame:  # a frame's columns, a mapping's keys
            continue
        if rule == "mask":
            text = mask_text(text)
            continue
        for value in set(map(str, list(frame[name]))):
            if value and value in text:
                text = text.replace(value, REDACTED)
    return text
