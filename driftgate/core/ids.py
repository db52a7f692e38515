"""Prediction ids: time-ordered, and each names the log batch that holds it.

An id is 32 hex digits: 12 of milliseconds, 16 random, then 4 of the row's place in its request.
The first 28 digits are the request's *batch key*: the log stores a request's rows as one batch
under that key (`driftgate.core.rows`), so an id leads to its stored batch and row without a
per-row index. Ids sort by creation time, like UUIDv7, and a request's ids sort in row order.

Ids of any other shape (older logs, tests) name a batch of one row: the key is the id itself.
"""

from __future__ import annotations

import os
import time

KEY_DIGITS = 28
# Rows per key: bounds a stored row (~1 MB of JSON at 20 features), which a read by id decodes whole.
ROWS_PER_KEY = 4096
_HEX = frozenset("0123456789abcdef")
# The row number of an id that is not 32 hex digits: the batch holds that one row, keyed by the id.
WHOLE = -1
# Row numbers as text, formatted once: an id is then one concatenation (~8x faster than formatting).
_ROW_NUMBERS = [f"{i:04x}" for i in range(ROWS_PER_KEY)]


def new_ids(n: int) -> list[str]:
    """`n` ids for one request's rows: a new batch key every `ROWS_PER_KEY` rows."""
    prefix = f"{int(time.time() * 1000):012x}"
    ids: list[str] = []
    for start in range(0, n, ROWS_PER_KEY):
        key = prefix + os.urandom(8).hex()
        ids.extend(map(key.__add__, _ROW_NUMBERS[: min(n - start, ROWS_PER_KEY)]))
    return ids


def split_id(prediction_id: str) -> tuple[str, int]:
    """(batch key, row number) of an id; an id of another shape is its own key, row number `WHOLE`."""
    if len(prediction_id) == KEY_DIGITS + 4 and _HEX.issuperset(prediction_id):
        return prediction_id[:KEY_DIGITS], int(prediction_id[KEY_DIGITS:], 16)
    return prediction_id, WHOLE


def batch_ids(key: str, first: int, n: int) -> list[str]:
    """The ids of a stored batch's rows, in order (`first`: the first row's number)."""
    if first == WHOLE:
        return [key]
    return [f"{key}{i:04x}" for i in range(first, first + n)]
