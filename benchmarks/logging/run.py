"""Prediction log throughput: store bulk writes and the whole recorder, SQLite and PostgreSQL.

    .venv/bin/python benchmarks/logging/run.py [--rows 200000] [--pg postgresql+psycopg://...]

Rows look like a 12-feature request (10 numeric, 2 categorical) with class probabilities. Three
figures per store: `write` (pre-encoded rows through `PredictionRepo.write_rows` in 20k-row
transactions), `recorder` (LogBatch of 100 rows handed to `Recorder.record`, timed until `close()`
returns, i.e. encoded, redaction-free, written) and `recorder 1-row` (one row per batch, what a
stream of single-row requests hands over). `durable` adds the spool with group commit. `encode`
times the encoding alone (CPU time of one thread) on batches shaped like the serving benchmark's
(20 features, 18 numeric), merged as the recorder merges them.
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, text

from driftgate.core.ids import new_ids
from driftgate.core.rows import count_rows, encode, merge
from driftgate.records.recorder import LogBatch, Recorder
from driftgate.store import Store

PG = os.environ.get("DRIFTGATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def batches(total: int, per_batch: int, seed: int = 0) -> list[LogBatch]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(total // per_batch):
        frame = pd.DataFrame(
            {f"x{i}": rng.normal(size=per_batch) for i in range(10)}
            | {
                "merchant": rng.choice(["online", "shop", "atm"], per_batch),
                "country": rng.choice(["DE", "FR"], per_batch),
            }
        )
        out.append(_log_batch(frame, per_batch, rng))
    return out


def _log_batch(inputs: pd.DataFrame | dict[str, np.ndarray], n: int, rng: np.random.Generator) -> LogBatch:
    """A request's log batch: `n` rows of `inputs`, a binary classifier's answers."""
    proba = rng.random((n, 2))
    return LogBatch(
        "bench",
        "clf",
        1,
        "primary",
        time.time(),
        new_ids(n),
        inputs,
        rng.integers(0, 2, n).tolist(),
        proba / proba.sum(1, keepdims=True),
        0.4,
        "ok",
    )


def serving_batch(per_request: int, requests: int, rng: np.random.Generator) -> LogBatch:
    """What the recorder gets while serving `benchmarks/serving`'s model: the validated columns of
    `requests` requests (18 numeric, 2 categorical features) merged into one batch (`rows.merge`)."""
    parts = []
    for _ in range(requests):
        columns = {f"x{i:02d}": rng.normal(size=per_request) for i in range(18)} | {
            "region": rng.choice(np.array(["north", "south", "east", "west"], object), per_request),
            "channel": rng.choice(np.array(["web", "app", "store"], object), per_request),
        }
        parts.append(_log_batch(columns, per_request, rng))
    return merge(parts)[0]


def measure_encode(rows: int, per_request: int, requests: int) -> float:
    """Predictions per second through `encode` alone (one thread), merged runs as the recorder sees them."""
    rng = np.random.default_rng(5)
    work = [serving_batch(per_request, requests, rng) for _ in range(max(1, rows // (per_request * requests)))]
    started = time.process_time()
    for batch in work:
        encode(batch)
    return sum(len(b) for b in work) / (time.process_time() - started)


def measure_write(store: Store, rows: int) -> float:
    encoded = [r for b in batches(rows, 1000, seed=1) for r in encode(b)]
    total = count_rows(encoded)
    step = max(1, 20_000 * len(encoded) // total)  # stored rows holding ~20k predictions
    started = time.perf_counter()
    for start in range(0, len(encoded), step):
        store.predictions.write_rows(encoded[start : start + step])
    return total / (time.perf_counter() - started)


def measure_recorder(store: Store, rows: int, per_batch: int, spool: Path | None = None) -> float:
    work = batches(rows, per_batch, seed=2 + per_batch)
    recorder = Recorder(
        store.predictions.write_rows,
        flush_interval=0.2,
        batch_rows=5000,
        max_rows=10**7,
        spool=spool,
        durable=spool is not None,
    )
    before = store.predictions.count("bench")
    started = time.perf_counter()
    for batch in work:
        recorder.record(batch)
    recorder.close()
    elapsed = time.perf_counter() - started
    written = store.predictions.count("bench") - before
    assert written == len(work) * per_batch, (written, len(work) * per_batch)
    return written / elapsed


def run_store(label: str, store: Store, rows: int) -> list[tuple[str, str, float]]:
    spool = Path(tempfile.mkdtemp()) / "spool"
    results = [
        (label, "write (encoded rows, 20k/txn)", measure_write(store, rows)),
        (label, "recorder, 100-row batches", measure_recorder(store, rows, 100)),
        (label, "recorder, 1-row batches", measure_recorder(store, rows // 5, 1)),
        (label, "recorder durable (spool + fsync), 100-row batches", measure_recorder(store, rows, 100, spool)),
    ]
    for row in results:
        print(f"{row[0]:<11} {row[1]:<52} {row[2]:>10,.0f} rows/s", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--pg", default=PG)
    args = parser.parse_args()
    for label, per_request, requests in (
        ("100-row requests, runs of 16", 100, 16),
        ("1-row requests, runs of 500", 1, 500),
    ):
        rate = measure_encode(args.rows, per_request, requests)
        print(
            f"{'encode':<11} {label + ' (20 features)':<52} {rate:>10,.0f} rows/s ({1e6 / rate:.2f} us/row)", flush=True
        )
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(db=f"sqlite:///{tmp}/bench.db")
        run_store("SQLite", store, args.rows)
        store.close()
    schema = "bench_" + secrets.token_hex(4)
    admin = create_engine(args.pg)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        store = Store.open(db=f"{args.pg}?options=-csearch_path%3D{schema}")
        run_store("PostgreSQL", store, args.rows)
        store.close()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


if __name__ == "__main__":
    main()
