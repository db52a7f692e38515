"""Big bodies are transposed and freed a slice at a time (so that no single step holds the GIL long,
issue 19 item 6): the columns are the same as for a small body."""

from __future__ import annotations

import orjson

from driftgate.serving.protocols.mlflow import decode_mlflow
from driftgate.serving.protocols.native import TRANSPOSE_ROWS, decode_native

N = 2 * TRANSPOSE_ROWS + 7  # two full slices and a partial one
NAMES = ["a", "b", "c"]
RECORDS = [{"a": float(i), "b": f"s{i}", "c": None if i % 5 == 0 else i} for i in range(N)]
EXPECTED = {"a": [float(i) for i in range(N)], "b": [f"s{i}" for i in range(N)], "c": [r["c"] for r in RECORDS]}
ROWS = [[r["a"], r["b"], r["c"]] for r in RECORDS]


def test_records_rows_and_split_frames_over_several_slices() -> None:
    for body in (
        {"instances": RECORDS},
        {"instances": ROWS},
        {"dataframe_split": {"columns": NAMES, "data": ROWS}},
    ):
        decoded = decode_native(orjson.dumps(body), NAMES)
        assert decoded.n_rows == N and decoded.columns == EXPECTED


def test_mlflow_shapes_over_several_slices() -> None:
    for body in ({"dataframe_records": RECORDS}, {"dataframe_split": {"columns": NAMES, "data": ROWS}}):
        decoded = decode_mlflow(orjson.dumps(body), "application/json", NAMES)
        assert decoded.n_rows == N and decoded.columns == EXPECTED
