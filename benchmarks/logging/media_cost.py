"""What logging a tensor input costs per row (issue 22): descriptors, payload compression, the whole
encoding, the hand-over to the log writer child, and the bytes stored.

    .venv/bin/python benchmarks/logging/media_cost.py [--rows 20000] [--json out.json]

Inputs as the serving schema hands them over: 8x8 float32 digit images (values 0..16, the image
model of issue 22) and one-second 16 kHz float32 audio clips (a tone burst in noise). Batches are
what the writer sees: 100-row requests, and runs of 500 one-row requests merged (`rows.merge`).
Figures are CPU time of one thread (time.process_time), best of three, in microseconds per row:

- `descriptors`: `records.media.describe` (image: brightness, contrast, sharpness, saturated share;
  audio: duration, RMS dB, silence share, clipping share), vectorised over the batch.
- `payload per kept row`: `core.payload.encode_tensor` (zlib level 1 + base64) of one row.
- `encode at rate r`: `records.media.encode_batch` (descriptors, sampling, payloads, JSON) with
  `payload_sample_rate` r; the tabular columns of the same batch without the tensor for comparison.
- `hand-over`: pickling the batch as the server's sender thread does to ship it to the writer child
  (the only part of the log's work done in the serving process besides building the LogBatch).
- `stored bytes per row`: the `inputs` JSON of the stored rows divided by the rows.
All of it but the hand-over runs in the log writer child at idle CPU priority.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from driftgate.core.ids import new_ids
from driftgate.core.log_batch import LogBatch, MediaLog, TensorLog
from driftgate.core.payload import encode_tensor
from driftgate.core.rows import merge
from driftgate.records.media import describe, encode_batch

IMAGE = TensorLog("image", "image", max_value=16.0)
AUDIO = TensorLog("clip", "audio", sample_rate=16_000)


def images(n: int, rng: np.random.Generator) -> np.ndarray:
    """Digit-like 8x8 images: a bright blob on a dark ground, integer values 0..16 as float32."""
    yy, xx = np.mgrid[0:8, 0:8]
    centre = rng.uniform(2, 6, (n, 2, 1, 1))
    blob = 16 * np.exp(-((yy - centre[:, 0]) ** 2 + (xx - centre[:, 1]) ** 2) / 4)
    return np.clip(np.round(blob + rng.normal(0, 1, (n, 8, 8))), 0, 16).astype(np.float32)


def clips(n: int, rng: np.random.Generator) -> np.ndarray:
    """One second at 16 kHz: a 0.3 s tone burst at a random place in low noise."""
    t = np.arange(16_000) / 16_000
    out = rng.normal(0, 0.01, (n, 16_000))
    for row in out:
        start = rng.integers(0, 11_200)
        row[start : start + 4800] += 0.3 * np.sin(2 * np.pi * rng.uniform(200, 800) * t[:4800])
    return out.astype(np.float32)


def request(tensor: str, values: np.ndarray, media: MediaLog, rng: np.random.Generator) -> LogBatch:
    n = len(values)
    columns = {tensor: values, "score": rng.normal(size=n)}
    return LogBatch("bench", "m", 1, "primary", time.time(), new_ids(n), columns, [0] * n, None, 0.4, "ok", media=media)


def batches(kind: str, per_request: int, requests: int, rate: float, total: int) -> list[LogBatch]:
    rng = np.random.default_rng(7)
    make, spec = (images, IMAGE) if kind == "image" else (clips, AUDIO)
    media = MediaLog((spec,), rate)
    out = []
    for _ in range(max(1, total // (per_request * requests))):
        parts = [request(spec.name, make(per_request, rng), media, rng) for _ in range(requests)]
        out.extend(merge(parts))
    return out


def per_row(work: list[LogBatch], step: Callable[[LogBatch], Any]) -> float:
    """CPU microseconds per row of `step` over the batches, best of three."""
    rows = sum(len(b) for b in work)
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for batch in work:
            step(batch)
        best = min(best, time.process_time() - started)
    return best / rows * 1e6


def stored_bytes(work: list[LogBatch]) -> float:
    rows = [row for batch in work for row in encode_batch(batch)]
    return sum(len(row[12].encode()) for row in rows) / sum(len(b) for b in work)


def without_tensor(batch: LogBatch) -> LogBatch:
    assert isinstance(batch.frame, dict)
    columns = {k: v for k, v in batch.frame.items() if k == "score"}
    return dataclasses.replace(batch, frame=columns, media=None)


def measure(kind: str, label: str, per_request: int, requests: int, total: int) -> dict[str, float]:
    spec = IMAGE if kind == "image" else AUDIO
    work = batches(kind, per_request, requests, 0.05, total)
    tensors = [b.frame[spec.name] for b in work if isinstance(b.frame, dict)]
    one_row = tensors[0][0]
    out = {
        "descriptors_us": per_row(work, lambda b: describe(spec, b.frame[spec.name])),  # type: ignore[index]
        "payload_per_kept_row_us": per_row(work[:1], lambda b: [encode_tensor(one_row) for _ in range(len(b))]),
        "handover_pickle_us": per_row(work, lambda b: pickle.dumps(b, protocol=pickle.HIGHEST_PROTOCOL)),
        "tabular_columns_only_encode_us": per_row([without_tensor(b) for b in work], encode_batch),
    }
    for rate in (0.0, 0.05, 1.0):
        at_rate = batches(kind, per_request, requests, rate, total)
        out[f"encode_rate_{rate:g}_us"] = per_row(at_rate, encode_batch)
        out[f"stored_bytes_per_row_rate_{rate:g}"] = stored_bytes(at_rate)
    out = {name: round(value, 2) for name, value in out.items()}
    print(f"{kind} {label}:", flush=True)
    for name, value in out.items():
        print(f"    {name:<36} {value:>12,.1f}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000, help="image rows per figure (audio: a tenth)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    for kind, total in (("image", args.rows), ("audio", max(500, args.rows // 10))):
        for label, per_request, requests in (("100-row requests", 100, 1), ("1-row requests, runs of 500", 1, 500)):
            results[f"{kind}, {label}"] = measure(kind, label, per_request, requests, total)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
