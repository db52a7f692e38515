"""Tensor and text features through the CLI (issue 22): `driftgate models register --schema FILE`
declares them, and `driftgate batch score` scores a Parquet file whose images are list columns (nested
8x8 or flat 64), as online requests are."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from driftgate.serving.batch import _columns
from driftgate.store import Store
from tests.media_fixtures import IMAGE_SCHEMA, TEXT_SCHEMA, digits_model, text_frame, text_model
from tests.test_cli import run


def test_cli_schema_and_batch_scoring_of_image_lists(tmp_path: Path) -> None:
    digits = digits_model()
    (tmp_path / "digits.onnx").write_bytes(digits.onnx)
    digits.reference().to_parquet(tmp_path / "reference.parquet", index=False)
    (tmp_path / "schema.json").write_text(json.dumps(IMAGE_SCHEMA))
    data = ["--data-dir", str(tmp_path / "data")]
    code, output = run(
        "models", "register", "digits", str(tmp_path / "digits.onnx"), "--format", "onnx",
        "--reference", str(tmp_path / "reference.parquet"), "--target", "label",
        "--schema", str(tmp_path / "schema.json"), *data,
    )  # fmt: skip
    assert code == 0, output
    store = Store.open(tmp_path / "data")
    try:
        feature = store.models.get("digits", 1).input_schema["features"][0]
    finally:
        store.close()
    assert (feature["kind"], feature["shape"], feature["dtype"], feature["media"]) == (
        "tensor",
        [8, 8],
        "float32",
        "image",
    )
    assert run("deploy", "digits", "--model", "digits", "--version", "1", *data)[0] == 0

    images = digits.images[300:340]
    frame = pd.DataFrame({"image": [i.tolist() for i in images[:20]] + [i.reshape(-1).tolist() for i in images[20:]]})
    for name, rows in (("nested", frame.iloc[:20]), ("flat", frame.iloc[20:])):
        rows.to_parquet(tmp_path / f"{name}.parquet", index=False)
        out = tmp_path / f"{name}_out.parquet"
        code, output = run(
            "batch", "score", "digits", "--input", str(tmp_path / f"{name}.parquet"), "--output", str(out), *data
        )
        assert code == 0, output
        batch = pq.read_table(tmp_path / f"{name}.parquet").to_batches()[0]
        column = _columns(batch, frozenset())["image"]  # one block, no Python list per value
        assert column.shape == ((20, 8, 8) if name == "nested" else (20, 64))
        scored = pq.read_table(out).to_pandas()
        part = images[:20] if name == "nested" else images[20:]
        assert scored["prediction"].tolist() == digits.expected(part)


def test_cli_refuses_a_bad_schema_file_naming_the_field(tmp_path: Path) -> None:
    (tmp_path / "model.skops").write_bytes(text_model())
    text_frame().to_csv(tmp_path / "reference.csv", index=False)
    (tmp_path / "bad.json").write_text(json.dumps({"features": [{"name": "text", "kind": "text", "shape": [3]}]}))
    (tmp_path / "good.json").write_text(json.dumps(TEXT_SCHEMA))
    data = ["--data-dir", str(tmp_path / "data")]
    base = ["models", "register", "spam", str(tmp_path / "model.skops"), "--format", "sklearn"]
    base += ["--reference", str(tmp_path / "reference.csv"), "--target", "label", *data]
    code, output = run(*base, "--schema", str(tmp_path / "bad.json"))
    assert code != 0 and "schema.features[0]: 'shape' applies to kind 'tensor' only" in output, output
    code, output = run(*base, "--schema", str(tmp_path / "good.json"))
    assert code == 0, output
    store = Store.open(tmp_path / "data")
    try:
        assert store.models.get("spam", 1).input_schema["features"][0]["kind"] == "text"
    finally:
        store.close()
