"""How the prediction log keeps text and tensor inputs (issue 22, docs/media.md section 2): descriptors
for every row, the compressed tensor for sampled rows and every review row, text as it is; tabular
batches encoded exactly as before. Columns are built as the serving schema hands them over (text: an
object array of str; tensor: an ndarray of shape (n, *shape))."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from driftgate.core.log_batch import LogBatch, MediaLog, TensorLog
from driftgate.core.payload import decode_tensor
from driftgate.core.rows import as_dicts, encode, merge
from driftgate.monitoring.descriptors import describe_audio, describe_images
from driftgate.records.media import descriptor_names, encode_batch, with_media
from driftgate.records.recorder import Recorder
from driftgate.store import Store

IMAGE = TensorLog("image", "image", max_value=16.0)
CLIP = TensorLog("clip", "audio", sample_rate=16_000)
EMBEDDING = TensorLog("embedding")


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 17, (n, 8, 8)).astype(np.float32)


def clips(n: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(0, 0.1, (n, 16_000))).astype(np.float32)


def log_batch(
    columns: dict[str, object] | pd.DataFrame,
    tensors: tuple[TensorLog, ...],
    rate: float,
    status: str | list[str] = "ok",
    **kw: object,
) -> LogBatch:
    n = len(columns) if isinstance(columns, pd.DataFrame) else len(columns[next(iter(columns))])  # type: ignore[arg-type]
    ids = [f"{i:032x}" for i in range(n)]
    media = MediaLog(tensors, rate) if tensors else None
    return LogBatch("ep", "m", 1, "primary", time.time(), ids, columns, [0] * n, None, 1.0, status, media=media, **kw)


def logged(batch: LogBatch) -> list[dict[str, object]]:
    return [row["inputs"] for row in as_dicts(encode_batch(batch))]


def test_every_row_has_its_image_descriptors_and_every_payload_decodes_to_the_sent_image() -> None:
    sent = images(50)
    rows = logged(log_batch({"image": sent, "x": np.arange(50.0)}, (IMAGE,), rate=1.0))
    expected = describe_images(sent, max_value=16.0)
    assert list(rows[0]) == ["image", *descriptor_names("image", "image"), "x"]
    for i, row in enumerate(rows):
        for name, values in expected.items():
            assert row[f"image.{name}"] == pytest.approx(values[i])
        decoded = decode_tensor(row["image"])  # type: ignore[arg-type]
        assert decoded is not None and decoded.dtype == np.float32
        np.testing.assert_array_equal(decoded, sent[i])
        assert row["x"] == i


def test_without_sampling_only_review_rows_keep_their_payload() -> None:
    sent = images(10)
    status = ["review" if i % 3 == 0 else "ok" for i in range(10)]
    rows = logged(log_batch({"image": sent}, (IMAGE,), rate=0.0, status=status))
    for i, row in enumerate(rows):
        assert row["image.brightness"] is not None
        if status[i] == "review":
            np.testing.assert_array_equal(decode_tensor(row["image"]), sent[i])  # type: ignore[arg-type]
        else:
            assert row["image"] is None


def test_a_sampling_rate_keeps_about_that_share_of_payloads() -> None:
    sent = images(2000)
    rows = logged(log_batch({"image": sent}, (IMAGE,), rate=0.1))
    kept = [i for i, row in enumerate(rows) if row["image"] is not None]
    # Binomial(2000, 0.1): mean 200, sd 13.4; 120 and 280 are six standard deviations away.
    assert 120 < len(kept) < 280
    for i in kept[:20]:
        np.testing.assert_array_equal(decode_tensor(rows[i]["image"]), sent[i])  # type: ignore[arg-type]
    assert all(row["image.contrast"] is not None for row in rows)


def test_audio_descriptors_use_the_sample_rate_and_generic_tensors_log_only_their_payload() -> None:
    sent = clips(4)
    sent[1] *= 0.0  # silence
    embedding = np.random.default_rng(1).normal(size=(4, 16)).astype(np.float64)
    rows = logged(log_batch({"clip": sent, "embedding": embedding}, (CLIP, EMBEDDING), rate=1.0))
    expected = describe_audio(sent, sample_rate=16_000)
    assert [r["clip.duration_s"] for r in rows] == [1.0] * 4
    assert rows[1]["clip.silence_share"] == 1.0
    assert [r["clip.rms_db"] for r in rows] == pytest.approx(list(expected["rms_db"]))
    assert not [k for k in rows[0] if k.startswith("embedding.")]
    np.testing.assert_array_equal(decode_tensor(rows[2]["embedding"]), embedding[2])  # type: ignore[arg-type]
    np.testing.assert_array_equal(decode_tensor(rows[3]["clip"]), sent[3])  # type: ignore[arg-type]


def test_merged_requests_are_described_together_row_for_row() -> None:
    parts = [log_batch({"image": images(k, seed=k)}, (IMAGE,), rate=1.0) for k in (1, 3, 1, 5)]
    media = parts[0].media
    for j, part in enumerate(parts):  # one endpoint config's MediaLog object, as the data plane hands it over
        part.media = media
        part.ids = [f"{j:04x}{i:028x}" for i in range(len(part))]
    merged = merge(parts)
    assert len(merged) == 1 and merged[0].media is media
    rows = [r["inputs"] for r in as_dicts(encode_batch(merged[0]))]
    alone = [r["inputs"] for part in parts for r in as_dicts(encode_batch(part))]
    assert len(rows) == 10
    for a, b in zip(rows, alone, strict=True):
        assert a == b


def test_a_frame_of_per_row_arrays_is_described_like_the_stacked_column() -> None:
    """A failed pre step logs a DataFrame; its tensor column holds one array per row (`frame_of`)."""
    sent = images(3)
    frame = pd.DataFrame({"image": list(sent), "x": [1.0, 2.0, 3.0]})
    rows = logged(log_batch(frame, (IMAGE,), rate=1.0, status="error"))
    stacked = logged(log_batch({"image": sent, "x": np.array([1.0, 2.0, 3.0])}, (IMAGE,), rate=1.0))
    assert rows == stacked


def test_raw_values_that_are_no_tensor_are_not_kept_and_not_described() -> None:
    rows = logged(log_batch({"image": np.array(["aGVsbG8=", None], object)}, (IMAGE,), rate=1.0, status="error"))
    assert [r["image"] for r in rows] == [None, None]
    assert [r["image.brightness"] for r in rows] == [None, None]  # NaN: missing


def test_dropping_a_tensor_feature_drops_its_payload_but_keeps_its_descriptors() -> None:
    rows = logged(log_batch({"image": images(2)}, (IMAGE,), rate=1.0, redact={"image": "drop"}))
    assert "image" not in rows[0] and rows[0]["image.sharpness"] is not None


def test_tabular_batches_are_encoded_as_before() -> None:
    rng = np.random.default_rng(3)
    columns = {"a": rng.normal(size=20), "b": rng.choice(np.array(["u", "v"], object), 20)}
    batch = log_batch(columns, (), rate=1.0)
    assert with_media(batch) is batch
    assert encode_batch(batch) == encode(batch)


@pytest.mark.parametrize("n", [1, 3, 40])
def test_long_and_awkward_texts_round_trip_whole(n: int) -> None:
    awkward = [
        "x" * 250_000,  # past the schema's default max_chars: the log itself truncates nothing
        'quotes " and \\ backslashes\nnew lines\ttabs \x00 and \x1f',
        "Grüße, 東京, emoji 🙂 and a combining e\u0301",
        "",
    ]
    texts = np.array([awkward[i % len(awkward)] for i in range(n)], dtype=object)
    texts[n - 1] = None if n > 1 else texts[n - 1]
    rows = logged(log_batch({"body": texts}, (), rate=1.0))
    assert [r["body"] for r in rows] == list(texts)


def test_masked_text_is_stored_masked() -> None:
    texts = np.array(["write to ann.lee@corp.example or call 0151 2345", None, "no pii here"], dtype=object)
    rows = logged(log_batch({"body": texts}, (), rate=1.0, redact={"body": "mask"}))
    assert [r["body"] for r in rows] == ["write to [email] or call #### ####", None, "no pii here"]


def test_the_recorder_stores_descriptors_and_payloads(tmp_path: object) -> None:
    store = Store.open(db=f"sqlite:///{tmp_path}/log.db")
    try:
        recorder = Recorder(store.predictions.write_rows, flush_interval=3600.0)
        sent = images(6)
        batches = [log_batch({"image": sent[i : i + 2]}, (IMAGE,), rate=1.0) for i in (0, 2, 4)]
        media = batches[0].media
        for j, b in enumerate(batches):
            b.media = media
            b.ids = [f"{j:04x}{i:028x}" for i in range(2)]
            recorder.record(b)
        recorder.close()
        stored = [store.predictions.get(i) for b in batches for i in b.ids]
        for row, image in zip(stored, sent, strict=True):
            assert row is not None
            np.testing.assert_array_equal(decode_tensor(row["inputs"]["image"]), image)
            assert row["inputs"]["image.brightness"] == pytest.approx(image.mean() / 16.0)
    finally:
        store.close()
