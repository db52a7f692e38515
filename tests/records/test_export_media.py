"""`driftgate export` of text and tensor inputs (issue 22): text as strings, tensor payloads as nested
fixed-size lists in Parquet (JSON payloads in CSV), descriptors as float columns; rows logged before
(tabular, without these columns) export beside them."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from driftgate.cli.export import export
from driftgate.core.ids import new_ids
from driftgate.core.log_batch import LogBatch, MediaLog, TensorLog
from driftgate.core.payload import decode_tensor
from driftgate.core.rows import encode
from driftgate.records.media import encode_batch
from driftgate.store import Store

FEATURES = [
    {"name": "image", "kind": "tensor", "shape": [8, 8], "dtype": "float32", "media": "image", "max": 16},
    {"name": "body", "kind": "text"},
]
MEDIA = MediaLog((TensorLog("image", "image", 16.0),), payload_rate=0.0)
LONG = "long text " * 20_000


def _record(schema: list[dict[str, object]]) -> dict[str, object]:
    return {
        "name": "m",
        "format": "python",
        "artifact_kind": "python",
        "artifact_sha256": "0" * 64,
        "input_schema": {"features": schema},
        "output": {"kind": "classification"},
        "target": None,
        "reference_rows": 0,
        "lineage": {},
        "metrics": {},
        "description": None,
    }


def _fill(store: Store, version: int, n: int, ts: float) -> tuple[np.ndarray, list[str], list[str]]:
    """`n` rows of a version with an image and a text: every third routed to review (its payload kept)."""
    images = np.random.default_rng(version).integers(0, 17, (n, 8, 8)).astype(np.float32)
    texts = [LONG if i == 1 else f'text {i} with "quotes" and ü' for i in range(n)]
    status = ["review" if i % 3 == 2 else "ok" for i in range(n)]
    ids = new_ids(n)
    columns = {"image": images, "body": np.array(texts, dtype=object)}
    batch = LogBatch("ep", "m", version, "primary", ts, ids, columns, [0] * n, None, 1.0, status, media=MEDIA)
    store.predictions.write_rows(encode_batch(batch))
    return images, texts, ids


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(export)
    app.command()(lambda: None)  # two commands: the export is then named on the command line
    return app


def _export(db_url: str, out: Path, *extra: str) -> None:
    result = CliRunner().invoke(_cli(), ["export", "ep", "--output", str(out), "--db", db_url, *extra])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("chunk_rows", ["2", "100"])
def test_parquet_holds_tensors_as_fixed_size_lists_texts_and_descriptors(
    store: Store, db_url: str, tmp_path: Path, chunk_rows: str
) -> None:
    store.models.add_version(_record([{"name": "x1", "kind": "numeric"}]), b"", None)
    store.models.add_version(_record(FEATURES), b"", None)
    now = time.time()
    old = LogBatch("ep", "m", 1, "primary", now - 10, new_ids(2), {"x1": np.array([1.0, 2.0])}, [0, 1], None, 1.0, "ok")
    store.predictions.write_rows(encode(old))
    images, texts, ids = _fill(store, 2, 7, now)
    out = tmp_path / "log.parquet"
    _export(db_url, out, "--version", "2", "--chunk-rows", chunk_rows)
    table = pq.read_table(out)
    assert table.schema.field("image").type == pa.list_(pa.list_(pa.float32(), 8), 8)
    assert table.schema.field("image.brightness").type == pa.float64()
    assert table.schema.field("body").type in (pa.string(), pa.large_string())
    frame = table.to_pandas().set_index("id")
    for i, pid in enumerate(ids):
        cell = frame.loc[pid, "image"]
        if i % 3 == 2:
            np.testing.assert_array_equal(np.stack(list(cell)), images[i])
        else:
            assert cell is None
        assert frame.loc[pid, "image.brightness"] == pytest.approx(images[i].mean() / 16)
        assert frame.loc[pid, "body"] == texts[i]

    _export(db_url, out, "--chunk-rows", "100")  # old tabular rows and new ones together
    mixed = pd.read_parquet(out)
    assert len(mixed) == 9 and mixed["x1"].notna().sum() == 2 and mixed["image.contrast"].notna().sum() == 7
    _export(db_url, out, "--version", "1")  # old rows alone: as they always were
    assert list(pd.read_parquet(out)["x1"]) == [1.0, 2.0]


def test_csv_holds_payloads_as_json(store: Store, db_url: str, tmp_path: Path) -> None:
    store.models.add_version(_record(FEATURES), b"", None)
    images, _, ids = _fill(store, 1, 4, time.time())
    out = tmp_path / "log.csv"
    _export(db_url, out)
    frame = pd.read_csv(out, keep_default_na=False).set_index("id")
    np.testing.assert_array_equal(decode_tensor(orjson.loads(frame.loc[ids[2], "image"])), images[2])
    assert frame.loc[ids[0], "image"] == "" and frame.loc[ids[1], "body"] == LONG
    assert float(frame.loc[ids[3], "image.sharpness"]) >= 0


def test_payloads_of_an_unregistered_version_take_their_own_shape(store: Store, db_url: str, tmp_path: Path) -> None:
    images, _, ids = _fill(store, 1, 3, time.time())  # version 1 was never registered
    out = tmp_path / "log.parquet"
    _export(db_url, out)
    table = pq.read_table(out)
    assert table.schema.field("image").type == pa.list_(pa.list_(pa.float32(), 8), 8)
    cell = table.to_pandas().set_index("id").loc[ids[2], "image"]
    np.testing.assert_array_equal(np.stack(list(cell)), images[2])
