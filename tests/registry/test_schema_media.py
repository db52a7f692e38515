"""Text and tensor features (issue 22): conversion of every accepted form, every refusal a 422 naming the
feature (and the row), inference from reference data, frames and merged batches."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from driftgate.errors import InvalidInput
from driftgate.registry.reference import read_table, to_parquet
from driftgate.registry.schema import FeatureSpec, InputSchema, frame_of, merge_columns

DIGIT = (np.arange(64).reshape(8, 8) % 17).astype(np.float64)  # values 0..16 like scikit-learn's digits


def png(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buf, fmt)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk (valid CRC) declaring width x height, with no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    idat = struct.pack(">I", 0) + b"IDAT" + struct.pack(">I", zlib.crc32(b"IDAT"))
    return b"\x89PNG\r\n\x1a\n" + chunk + idat


NOISE_PNG = png(np.random.default_rng(1).integers(0, 256, (8, 8)))


@pytest.fixture
def schema() -> InputSchema:
    return InputSchema(
        (
            FeatureSpec("image", "tensor", shape=(8, 8), dtype="float32", media="image", max=16.0),
            FeatureSpec("text", "text", max_chars=1000),
            FeatureSpec("x", "numeric"),
        )
    )


def columns(image: list[Any] | None = None, text: list[Any] | None = None) -> dict[str, Any]:
    image = image if image is not None else [DIGIT.tolist()]
    return {"image": image, "text": text if text is not None else ["hello"] * len(image), "x": [1.0] * len(image)}


def refusal(schema: InputSchema, cols: dict[str, Any]) -> InvalidInput:
    with pytest.raises(InvalidInput) as err:
        schema.to_columns(cols, len(cols["x"]))
    assert err.value.status_code == 422
    return err.value


def test_every_tensor_form_gives_the_same_array(schema: InputSchema) -> None:
    raw_uint8 = {"b64": b64(DIGIT.astype(np.uint8).tobytes()), "dtype": "uint8"}
    raw_float = {"b64": b64(DIGIT.astype("<f8").tobytes()), "dtype": "float64"}
    forms = [DIGIT.tolist(), DIGIT.reshape(-1).tolist(), raw_uint8, raw_float, DIGIT.astype(int).tolist()]
    out = schema.to_columns(columns(forms), len(forms))
    assert out["image"].shape == (5, 8, 8) and out["image"].dtype == np.float32
    for row in out["image"]:
        np.testing.assert_array_equal(row, DIGIT)
    assert out["text"].dtype == object and out["text"].tolist() == ["hello"] * 5


def test_png_and_jpeg_are_decoded_to_the_features_scale(schema: InputSchema) -> None:
    """A white pixel (255) is the spec's `max` (16 for digits): the PNG of a digit scaled to 0..255 comes
    back within one grey level of the digit."""
    encoded = png(np.rint(DIGIT / 16 * 255))
    out = schema.to_columns(columns([{"image": b64(encoded)}]), 1)["image"][0]
    assert np.abs(out - DIGIT).max() <= 16 / 255 + 1e-6
    rgb = InputSchema((FeatureSpec("photo", "tensor", shape=(4, 6, 3), dtype="uint8", media="image"),))
    pixels = np.random.default_rng(0).integers(0, 256, (4, 6, 3))
    got = rgb.to_columns({"photo": [{"image": b64(png(pixels))}, png(pixels, "JPEG")]}, 2)["photo"]
    assert got.shape == (2, 4, 6, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got[0], pixels)  # PNG is lossless; JPEG bytes (V2 BYTES) decode too


def test_a_whole_column_as_one_array(schema: InputSchema) -> None:
    stacked = np.stack([DIGIT, DIGIT]).astype(np.float32)
    for arr in (stacked, stacked.reshape(2, 64), stacked.astype(np.uint8)):
        out = schema.to_columns({"image": arr, "text": ["a", "b"], "x": [1, 2]}, 2)["image"]
        assert out.shape == (2, 8, 8) and out.dtype == np.float32
    err = refusal(schema, {"image": np.zeros((2, 7, 7)), "text": ["a", "b"], "x": [1, 2]})
    assert "feature 'image'" in err.message and "[2, 8, 8] or [2, 64]" in err.message and "[2, 7, 7]" in err.message


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ([[[1.0] * 8] * 7], "expects shape [8, 8] (or 64 values flat), got [7, 8]"),
        ([[1.0] * 63], "got [63]"),
        ([[["a"] * 8] * 8], "expects numbers in a float32 tensor of shape [8, 8], got string 'a'"),
        ([[[None] * 8] * 8], "got null"),
        ([[[1.0] * 8] * 7 + [[1.0] * 9]], "expects shape [8, 8], got ragged nested arrays"),
        (["eight by eight"], "got string"),
        ([None], "null; expects a float32 tensor of shape [8, 8]"),
        ([{"b64": "!!!", "dtype": "uint8"}], "'b64': expects base64, got undecodable text"),
        ([{"b64": b64(b"\0" * 63), "dtype": "uint8"}], "'b64' holds 63 bytes; 64 uint8 values ([8, 8]) take 64"),
        ([{"b64": "A" * 10_000, "dtype": "uint8"}], "far more than 64 bytes need"),
        ([{"b64": b64(b"\0" * 64), "dtype": "object"}], "'dtype': expects one of"),
        ([{"b64": b64(np.full(64, np.nan, np.float32).tobytes()), "dtype": "float32"}], "NaN in the tensor"),
        ([{"b64": b64(np.full(64, np.inf, np.float64).tobytes()), "dtype": "float64"}], "infinity in the tensor"),
        ([{"b64": b64(np.full(64, 1e300).tobytes()), "dtype": "float64"}], "beyond the range of float32"),
        ([{"pixels": []}], "expects an object with keys {'b64', 'dtype'} or {'image'}, got keys ['pixels']"),
        ([{"image": "not base64!"}], "'image': expects base64"),
        ([{"image": b64(b"GIF89a....")}], "expects a PNG or JPEG image, got 10 undecodable bytes"),
        ([{"image": b64(NOISE_PNG[:-30])}], "image data undecodable"),  # IEND and the end of IDAT cut off
        ([{"image": b64(NOISE_PNG[:20])}], "expects a PNG or JPEG image, got 20 undecodable bytes"),
        ([{"image": b64(png(np.zeros((9, 8))))}], "image is 8x9 pixels (width x height); the feature expects 8x8"),
        ([{"image": b64(png_header(100_000, 100_000))}], "image refused before decoding"),
        ([{"image": b64(png_header(3000, 2000))}], "image is 3000x2000 pixels"),
    ],
)
def test_bad_tensors_are_refused_naming_feature_and_row(schema: InputSchema, image: list[Any], expected: str) -> None:
    err = refusal(schema, columns([DIGIT.tolist(), *image]))
    assert err.message.startswith("feature 'image' at row 1: "), err.message
    assert expected in err.message, err.message
    assert err.details == {"feature": "image", "row": 1}


def test_booleans_are_no_numbers(schema: InputSchema) -> None:
    """Where numpy sees only booleans (a row of its own, a whole column); mixed with numbers in one batch
    of nested lists, numpy's one-call conversion reads them as 0 and 1."""
    err = refusal(schema, columns([[[True] * 8] * 8]))
    assert err.message == "feature 'image' at row 0: expects float32 numbers, got booleans"
    err = refusal(schema, {"image": np.ones((1, 8, 8), bool), "text": ["a"], "x": [1]})
    assert err.message == "feature 'image': expects float32 numbers, got booleans"


def test_integer_dtypes_refuse_fractions_and_out_of_range_values() -> None:
    schema = InputSchema((FeatureSpec("m", "tensor", shape=(2,), dtype="uint8"),))
    assert schema.to_columns({"m": [[0, 255], [1.0, 2.0]]}, 2)["m"].tolist() == [[0, 255], [1, 2]]
    for bad, expected in (([0.5, 1], "whole numbers"), ([0, 256], "in [0, 255], got 256"), ([-1, 0], "got -1")):
        with pytest.raises(InvalidInput, match=r"feature 'm'") as err:
            schema.to_columns({"m": [[0, 0], bad]}, 2)
        assert expected in err.value.message


def test_nan_in_a_nullable_float_tensor_is_kept_and_a_null_row_is_all_nan() -> None:
    schema = InputSchema((FeatureSpec("e", "tensor", nullable=True, shape=(3,), dtype="float32"),))
    nan = {"b64": b64(np.array([1, np.nan, 3], "<f4").tobytes()), "dtype": "float32"}
    out = schema.to_columns({"e": [nan, None]}, 2)["e"]
    assert np.isnan(out[0, 1]) and np.isnan(out[1]).all()
    with pytest.raises(InvalidInput, match="infinity"):
        schema.to_columns({"e": np.array([[1, np.inf, 3]])}, 1)


def test_forms_for_images_only_are_refused_for_other_tensors() -> None:
    schema = InputSchema((FeatureSpec("e", "tensor", shape=(8, 8), dtype="float32"),))
    with pytest.raises(InvalidInput, match="is for image features"):
        schema.to_columns({"e": [{"image": b64(png(np.zeros((8, 8))))}]}, 1)
    with pytest.raises(InvalidInput, match="only images take them"):
        schema.to_columns({"e": [png(np.zeros((8, 8)))]}, 1)


def test_deep_nesting_is_a_422_not_a_recursion_error(schema: InputSchema) -> None:
    deep: Any = [1.0]
    for _ in range(2000):
        deep = [deep]
    err = refusal(schema, columns([deep]))
    assert "feature 'image' at row 0" in err.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (["x" * 2_000_000], "at row 0: 2000000 characters, more than the feature's max_chars 1000"),
        ([None], "at row 0: null text; the feature is not nullable"),
        ([5], "at row 0: expects text (a string), got number 5"),
        ([["a"]], "got array"),
        ([{"t": 1}], "got object"),
    ],
)
def test_bad_text_is_refused_naming_feature_and_row(schema: InputSchema, text: list[Any], expected: str) -> None:
    err = refusal(schema, columns(text=text))
    assert err.message.startswith("feature 'text'") and expected in err.message, err.message


def test_text_default_bound_and_nulls() -> None:
    schema = InputSchema((FeatureSpec("t", "text", nullable=True),))
    out = schema.to_columns({"t": ["é" * 100_000, None, float("nan")]}, 3)["t"]
    assert out.tolist() == ["é" * 100_000, None, None]
    with pytest.raises(InvalidInput, match="max_chars 100000"):
        schema.to_columns({"t": ["a" * 100_001]}, 1)


def test_frame_cells_are_the_rows_arrays_and_batches_merge(schema: InputSchema) -> None:
    one = schema.to_columns(columns([DIGIT.tolist(), (DIGIT * 0).tolist()]), 2)
    two = schema.to_columns(columns([(DIGIT + 0).tolist()], ["bye"]), 1)
    merged = merge_columns([one, two])
    assert merged["image"].shape == (3, 8, 8)
    frame = frame_of(merged)
    assert list(frame.columns) == ["image", "text", "x"] and len(frame) == 3
    assert frame["image"].dtype == object and frame["text"].tolist() == ["hello", "hello", "bye"]
    cells = frame["image"].tolist()
    assert all(c.shape == (8, 8) and c.dtype == np.float32 for c in cells)
    np.testing.assert_array_equal(np.stack(cells), merged["image"])


def test_inference_finds_tensors_and_leaves_tabular_columns_alone() -> None:
    frame = pd.DataFrame(
        {
            "pixels": [np.arange(4), np.arange(4) * 2],  # integers in 0..255: uint8
            "embedding": [[[0.5, 1.0], [2.0, 3.0]], None],  # floats, one row missing
            "ragged": [[1.0, 2.0], [1.0]],
            "words": ["a long sentence", "another one"],
            "x": [1.5, 2.5],
            "big": [np.array([0, 300]), np.array([1, 2])],
        }
    )
    features = {f.name: f for f in InputSchema.infer(frame).features}
    assert (features["pixels"].kind, features["pixels"].shape, features["pixels"].dtype) == ("tensor", (4,), "uint8")
    emb = features["embedding"]
    assert (emb.kind, emb.shape, emb.dtype, emb.nullable) == ("tensor", (2, 2), "float32", True)
    assert features["big"].dtype == "float32"
    assert features["ragged"].kind == "categorical"
    assert features["words"].kind == "categorical"  # text only when declared
    assert features["x"].kind == "numeric"
    tabular = pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"], "n": [1, 2]})
    assert [f.kind for f in InputSchema.infer(tabular).features] == ["numeric", "categorical", "integer"]


def test_reference_parquet_with_list_columns_round_trips_into_columns() -> None:
    """Reference data as registration reads it: Parquet list columns, nested or flat, become object
    columns of arrays (nested ones as arrays of arrays) that the schema converts like request values."""
    images = [DIGIT, DIGIT[::-1]]
    frame = pd.DataFrame(
        {"nested": [i.tolist() for i in images], "flat": [i.reshape(-1).tolist() for i in images], "t": ["a", "b"]}
    )
    read = read_table(to_parquet(frame), "ref.parquet")
    schema = InputSchema(
        (
            FeatureSpec("nested", "tensor", shape=(8, 8), dtype="float32"),
            FeatureSpec("flat", "tensor", shape=(8, 8), dtype="float32"),
            FeatureSpec("t", "text"),
        )
    )
    out = schema.to_columns({n: read[n].tolist() for n in schema.names}, 2)
    for name in ("nested", "flat"):
        np.testing.assert_array_equal(out[name], np.stack(images))
    inferred = {f.name: f.shape for f in InputSchema.infer(read).features}
    assert inferred["nested"] == (8, 8) and inferred["flat"] == (64,)


def test_signature_tells_tensor_shapes_apart() -> None:
    a = InputSchema((FeatureSpec("e", "tensor", shape=(4,), dtype="float32"),))
    b = InputSchema((FeatureSpec("e", "tensor", shape=(8,), dtype="float32"),))
    assert a.frame_signature != b.frame_signature
    assert InputSchema.from_dict(a.to_dict()) == a


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=9) | st.dictionaries(st.sampled_from(["b64", "dtype", "image"]), inner),
    max_leaves=80,
)


@settings(max_examples=300, deadline=None)
@given(cell=json_values)
def test_any_json_cell_is_converted_or_refused_with_a_422(cell: Any) -> None:
    schema = InputSchema(
        (
            FeatureSpec("m", "tensor", shape=(2, 2), dtype="uint8", media="image"),
            FeatureSpec("v", "tensor", shape=(3,), dtype="float32"),
            FeatureSpec("t", "text", max_chars=3),
        )
    )
    for name in ("m", "v", "t"):
        other = {"m": [[[0, 0], [0, 0]]], "v": [[0.0, 0.0, 0.0]], "t": ["ok"]}
        other[name] = [cell]
        try:
            out = schema.to_columns(other, 1)
        except InvalidInput as exc:
            assert exc.details.get("feature") == name
            continue
        spec = schema.feature(name)
        if spec.kind == "tensor":
            assert out[name].shape == (1, *(spec.shape or ())) and out[name].dtype == np.dtype(spec.dtype)
        else:
            assert isinstance(out[name][0], str) and len(out[name][0]) <= 3


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=200), cut=st.integers(0, 120))
def test_any_bytes_as_an_image_are_decoded_or_refused(data: bytes, cut: int) -> None:
    schema = InputSchema((FeatureSpec("m", "tensor", shape=(8, 8), dtype="uint8", media="image"),))
    for raw in (data, png(np.full((8, 8), 7))[:cut] + data):
        try:
            out = schema.to_columns({"m": [raw]}, 1)
        except InvalidInput as exc:
            assert exc.details == {"feature": "m", "row": 0}
        else:
            assert out["m"].shape == (1, 8, 8)


def test_without_pillow_an_image_file_is_a_clear_422(schema: InputSchema, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "PIL", None)  # `from PIL import Image` now fails
    err = refusal(schema, columns([{"image": b64(NOISE_PNG)}]))
    assert "image inputs need Pillow on the server: pip install 'driftgate[images]'" in err.message
    assert schema.to_columns(columns(), 1)["image"].shape == (1, 8, 8)  # arrays need no Pillow
