"""Rows the prediction log wrote in its older forms read back as they always did, from a real store.

The stored texts below are literal output of the encoders that wrote them (captured before they were
removed), not made by code under test: a request's inputs as a list of row objects (requests under 8
rows), one numeric column packed alone beside a dtype block, every column a JSON list (the first
batched form), probabilities as JSON lists, and one prediction of the log from before batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pandas as pd

from driftgate.core.ids import new_ids
from driftgate.core.rows import COLUMNS, LogBatch, as_dicts, encode, merge
from driftgate.store import Store

KEY = "0123456789abcdef0123456789ab"
# 8 rows: float block (a, b; a NaN), an int64 and a bool column packed alone, a category list.
PACKED_ALONE = (
    KEY, 0, 8, "ep", "m", 2, "primary", 100.0, 1.5, "ok", 0, None,
    '{"a":{"dtype":"<f8","shape":[2,8],"b64":"AAAAAAAA4D8AAAAAAAD4fwAAAAAAAAJAAAAAAAAA8L8AAAAAAAAIQAAAAAAAABJA'
    "/Knx0k1iUD8AAAAAAAAcQAAAAAAAAAAAAAAAAAAA8D8AAAAAAAAAQAAAAAAAAAhAAAAAAAAAEEAAAAAAAAAUQAAAAAAAABhAAAAAAAA"
    'AHEA=","columns":["a","b"]},"b":{"in":"a"},"c":{"dtype":"<i8","shape":[8],"b64":"AAAAAAAAAAADAAAAAAAAAAYAAA'
    'AAAAAACQAAAAAAAAAMAAAAAAAAAA8AAAAAAAAAEgAAAAAAAAAVAAAAAAAAAA=="},"d":{"dtype":"|b1","shape":[8],"b64":"AQA'
    'BAAEAAQA="},"e":["x","y","z","x","y","z","x","y"]}',
    "[0,1,0,1,0,1,0,1]",
    '{"dtype":"<f8","shape":[8,2],"b64":"AAAAAAAA0D8AAAAAAADoPwAAAAAAANA/AAAAAAAA6D8AAAAAAADQPwAAAAAAAOg/AAAAAAAA0D8'
    'AAAAAAADoPwAAAAAAANA/AAAAAAAA6D8AAAAAAADQPwAAAAAAAOg/AAAAAAAA0D8AAAAAAADoPwAAAAAAANA/AAAAAAAA6D8="}',
    None,
)  # fmt: skip
ROW_OBJECTS = (
    "1123456789abcdef0123456789ab", 0, 2, "ep", "m", 2, "primary", 101.0, 2.0, '["ok","review"]', 1, None,
    '[{"a":1.5,"e":"p"},{"a":null,"e":"q"}]', '["yes","no"]', "[[0.1,0.9],[0.6,0.4]]", None,
)  # fmt: skip
JSON_COLUMNS = (
    "3123456789abcdef0123456789ab", 0, 2, "ep", "m", 2, "shadow", 102.0, 3.0, "ok", 0, "boom",
    '{"a":[1.5,2.5],"e":["x","y"]}', "[1,0]", "[[0.1,0.9],[0.2,0.8]]",
    '["1123456789abcdef0123456789ab0000","1123456789abcdef0123456789ab0001"]',
)  # fmt: skip
# One prediction stored before batches, as `from_legacy` carried it over (migration 0005, old spools).
BEFORE_BATCHES = (
    "2123456789abcdef0123456789ab", 52719, 1, "ep", "m", 1, "primary", 99.0, 0.9, "ok", 0, None,
    '[{"a":3.5,"e":"r"}]', "[1]", "[[0.3,0.7]]", None,
)  # fmt: skip

A = [0.5, None, 2.25, -1.0, 3.0, 4.5, 0.001, 7.0]


def _want() -> dict[str, dict[str, Any]]:
    """What the readers gave for these rows before the encoders changed (their `expand` output)."""
    out: dict[str, dict[str, Any]] = {}
    shared = {"endpoint": "ep", "model": "m", "error": None, "parent_id": None}
    for i in range(8):
        inputs = {"a": A[i], "b": float(i), "c": 3 * i, "d": i % 2 == 0, "e": "xyz"[i % 3]}
        out[f"{KEY}{i:04x}"] = shared | {
            "version": 2, "role": "primary", "ts": 100.0, "inputs": inputs, "output": i % 2,
            "probabilities": [0.25, 0.75], "latency_ms": 1.5, "status": "ok",
        }  # fmt: skip
    for i, (a, e, output, proba, status) in enumerate(
        [(1.5, "p", "yes", [0.1, 0.9], "ok"), (None, "q", "no", [0.6, 0.4], "review")]
    ):
        out[f"1123456789abcdef0123456789ab{i:04x}"] = shared | {
            "version": 2, "role": "primary", "ts": 101.0, "inputs": {"a": a, "e": e}, "output": output,
            "probabilities": proba, "latency_ms": 2.0, "status": status,
        }  # fmt: skip
    for i, (a, e, label, proba) in enumerate([(1.5, "x", 1, [0.1, 0.9]), (2.5, "y", 0, [0.2, 0.8])]):
        out[f"3123456789abcdef0123456789ab{i:04x}"] = shared | {
            "version": 2, "role": "shadow", "ts": 102.0, "inputs": {"a": a, "e": e}, "output": label,
            "probabilities": proba, "latency_ms": 3.0, "status": "ok", "error": "boom",
            "parent_id": f"1123456789abcdef0123456789ab{i:04x}",
        }  # fmt: skip
    out["2123456789abcdef0123456789abcdef"] = shared | {
        "version": 1, "role": "primary", "ts": 99.0, "inputs": {"a": 3.5, "e": "r"}, "output": 1,
        "probabilities": [0.3, 0.7], "latency_ms": 0.9, "status": "ok",
    }  # fmt: skip
    return out


def test_rows_in_every_older_form_read_back_as_before(store: Store) -> None:
    store.predictions.write_rows([PACKED_ALONE, ROW_OBJECTS, JSON_COLUMNS, BEFORE_BATCHES])
    want = _want()
    for pid, prediction in want.items():
        got = store.predictions.get(pid)
        assert got is not None and {**got, "id": pid} == {"id": pid, **prediction}, pid
        assert list(got["inputs"]) == list(prediction["inputs"])  # column order kept
    read = [p for chunk in store.predictions.iter_with_labels("ep", role=None) for p in chunk]
    assert {p["id"]: {k: v for k, v in p.items() if k not in ("label", "label_ts")} for p in read} == {
        pid: {"id": pid, **p} for pid, p in want.items()
    }
    assert [p["id"] for p in store.predictions.pending_review("ep")] == ["1123456789abcdef0123456789ab0001"]


def _one(n: int, rng: np.random.Generator, frame: bool = False) -> LogBatch:
    x = rng.normal(size=n)
    x[0] = np.nan
    columns = {
        "x": x,
        "kind": rng.choice(np.array(["a", "b"], object), n),
        "k": np.arange(n, dtype=np.int64),
        "y": rng.normal(size=n),
    }
    inputs = pd.DataFrame(columns) if frame else columns
    return LogBatch("ep", "m", 1, "primary", 1.0, new_ids(n), inputs, [1] * n, rng.random((n, 2)), 1.0, "ok")


def test_new_rows_have_one_form_whatever_their_size() -> None:
    """A 1-row request, merged 1-row requests and a 100-row request, columns or a DataFrame, are
    stored alike: an object of columns, numeric ones in one block per dtype, probabilities packed."""
    rng = np.random.default_rng(7)
    merged = merge([_one(1, rng) for _ in range(20)])[0]
    sizes = (_one(1, rng), merged, _one(3, rng), _one(100, rng), _one(2, rng, frame=True), _one(50, rng, frame=True))
    for rows in map(encode, sizes):
        for row in rows:
            inputs = orjson.loads(row[COLUMNS.index("inputs")])
            assert list(inputs) == ["x", "kind", "k", "y"]
            assert inputs["x"]["columns"] == ["x", "y"] and inputs["y"] == {"in": "x"}
            assert inputs["k"]["columns"] == ["k"] and isinstance(inputs["kind"], list)
            assert orjson.loads(row[COLUMNS.index("probabilities")])["shape"] == [row[2], 2]


def test_a_small_frame_keeps_every_value_through_its_packed_columns() -> None:
    """A small DataFrame is converted in one call to objects; columns of one number type get a dtype
    back (packed), anything else (mixed, missing, text) stays a JSON list, as it was."""
    frame = pd.DataFrame(
        {
            "f": [0.5, float("nan")],
            "i": [1, 2],
            "b": [True, False],
            "mixed": pd.Series([1, 2.5], dtype=object),
            "missing": [None, 3.0],
            "s": ["a", 'q"uote'],
        }
    )
    batch = LogBatch("ep", "m", 1, "primary", 1.0, new_ids(2), frame, [0, 1], None, 1.0, "ok")
    (row,) = encode(batch)
    inputs = orjson.loads(row[COLUMNS.index("inputs")])
    assert [inputs[c]["dtype"] for c in ("f", "i", "b")] == ["<f8", "<i8", "|b1"]
    assert [r["inputs"] for r in as_dicts([row])] == [
        {"f": 0.5, "i": 1, "b": True, "mixed": 1, "missing": None, "s": "a"},
        {"f": None, "i": 2, "b": False, "mixed": 2.5, "missing": 3.0, "s": 'q"uote'},
    ]
