"""The recorder, its spool and the bulk writes, against real stores (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine

from driftgate.core.ids import new_ids
from driftgate.core.rows import as_dicts, count_rows, encode
from driftgate.core.rows import merge as rows_merge
from driftgate.errors import NotReady
from driftgate.records.recorder import LogBatch, Recorder
from driftgate.records.spool import Spool, encode_frame, read_frames
from driftgate.store import Store
from driftgate.store.predictions import PredictionRepo


def batch(n: int = 3, endpoint: str = "ep", role: str = "primary", **kw: object) -> LogBatch:
    frame = pd.DataFrame({"x": np.arange(n, dtype=float), "email": [f"user{i}@secret.example" for i in range(n)]})
    return LogBatch(
        endpoint, "m", 1, role, time.time(), new_ids(n), frame, list(range(n)), np.full((n, 2), 0.5), 1.5, "ok", **kw
    )


class FlakyWriter:
    """A store that refuses writes while `down` is set."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple] = {}
        self.down = False

    def __call__(self, rows: list[tuple], *, replay: bool = False) -> None:
        if self.down:
            raise ConnectionError("store down")
        for row in as_dicts(rows):
            self.rows.setdefault(row["id"], row)


def test_rows_are_encoded_redacted_and_round_trip(store: Store) -> None:
    b = batch(2, redact={"email": "hash"})
    b.frame.loc[1, "x"] = float("nan")
    rows = encode(b)
    store.predictions.write_rows(rows)
    stored = store.predictions.get(b.ids[1])
    assert stored is not None
    assert stored["inputs"]["x"] is None and stored["inputs"]["email"].startswith("sha256:")
    assert stored["output"] == 1 and stored["probabilities"] == [0.5, 0.5]
    assert as_dicts(rows)[0]["inputs"]["x"] == 0.0
    assert len(rows) == 1  # one stored row per request


def test_columns_encode_like_the_frame_they_stand_for() -> None:
    """The data plane hands over validated columns, not a DataFrame: same rows, same redaction."""
    framed = batch(3, redact={"email": "hash"})
    framed.frame.loc[1, "x"] = float("nan")
    columns = {name: framed.frame[name].to_numpy() for name in framed.frame.columns}
    as_columns = dataclasses.replace(framed, frame=columns)
    assert encode(as_columns) == encode(framed)
    dropped = dataclasses.replace(as_columns, redact={"email": "drop"})
    assert all("email" not in p["inputs"] for p in as_dicts(encode(dropped)))
    assert "email" in columns  # the caller's columns are left as they were


def test_writes_are_idempotent_on_both_paths(store: Store) -> None:
    rows = [row for _ in range(5) for row in encode(batch(10))]
    store.predictions.write_rows(rows[:2])
    store.predictions.write_rows(rows)  # clashes on 2 keys: falls back to insert-if-absent
    store.predictions.write_rows(rows, replay=True)
    assert store.predictions.count("ep") == 50


def test_recorder_writes_primary_and_shadow_and_close_flushes(store: Store) -> None:
    recorder = Recorder(store.predictions.write_rows, flush_interval=30)  # only close() writes
    recorder.record(batch(4))
    recorder.record(batch(3, role="shadow"))
    recorder.close()
    assert store.predictions.count("ep") == 7
    assert len(store.predictions.window("ep", role="shadow")) == 3


def test_full_queue_drops_and_counts() -> None:
    dropped: list[int] = []
    recorder = Recorder(FlakyWriter(), flush_interval=30, max_rows=5, on_drop=lambda b: dropped.append(len(b)))
    assert recorder.record(batch(4))
    assert not recorder.record(batch(4))
    assert recorder.dropped_rows == 4 and dropped == [4]
    recorder.close()


def test_store_outage_parks_rows_in_the_spool_and_writes_them_later(tmp_path: Path) -> None:
    writer = FlakyWriter()
    writer.down = True
    recorder = Recorder(writer, flush_interval=30, spool=tmp_path / "spool")
    batches = [batch(5) for _ in range(3)]
    for b in batches:
        recorder.record(b)
    recorder.flush()
    assert not recorder.store_available and recorder.spooled_rows == 15 and not writer.rows
    assert list((tmp_path / "spool").rglob("seg-*.log"))
    writer.down = False
    recorder.flush()
    assert recorder.store_available
    assert set(writer.rows) == {i for b in batches for i in b.ids}
    recorder.close()
    assert not list((tmp_path / "spool").rglob("seg-*.log"))


def test_durable_rows_are_fsynced_before_the_await_returns(tmp_path: Path) -> None:
    writer = FlakyWriter()
    writer.down = True  # nothing reaches the store: only the spool can hold the rows
    recorder = Recorder(writer, flush_interval=30, spool=tmp_path / "spool", durable=True)
    batches = [batch(2) for _ in range(20)]

    async def send() -> None:
        await asyncio.gather(*(recorder.record_durable(b) for b in batches))

    asyncio.run(send())
    on_disk = {row["id"] for path in (tmp_path / "spool").rglob("seg-*.log") for row in as_dicts(Spool.read(path))}
    assert on_disk == {i for b in batches for i in b.ids}
    # A crash now: the process's lock goes away with it; a new recorder adopts and replays the files.
    os.close(recorder.spool._lock_fd)  # type: ignore[union-attr]
    writer.down = False
    again = Recorder(writer, flush_interval=30, spool=tmp_path / "spool", durable=True)
    again.flush()
    assert set(writer.rows) == on_disk
    again.close()


def test_a_torn_last_frame_is_ignored(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    seg = spool.append(encode(batch(2)))
    spool.append(encode(batch(3)))
    spool.seal()
    data = seg.path.read_bytes()
    seg.path.write_bytes(data[:-7])  # the process died in the middle of the second write
    assert [count_rows(frame) for frame in read_frames(seg.path)] == [2]
    spool.close()


def test_spool_files_of_a_row_per_prediction_are_replayed(tmp_path: Path, store: Store) -> None:
    """A server from before batches spooled one row per prediction (some without `parent_id`)."""
    old_id = "018f3a2b4c5d" + "cd" * 10
    path = tmp_path / "seg-000000001.log"
    path.write_bytes(
        encode_frame(
            [
                (old_id, "ep", "m", 1, "primary", 5.0, '{"x": 1.0}', "1", "[0.2, 0.8]", 2.0, "ok", None),
                ("shadow-1", "ep", "m", 2, "shadow", 5.0, '{"x": 1.0}', "0", None, 3.0, "ok", None, old_id),
            ]
        )
    )
    store.predictions.write_rows(Spool.read(path), replay=True)
    primary, shadow = store.predictions.get(old_id), store.predictions.get("shadow-1")
    assert primary is not None and shadow is not None
    assert (primary["inputs"], primary["output"], primary["probabilities"]) == ({"x": 1.0}, 1, [0.2, 0.8])
    assert (shadow["parent_id"], shadow["version"], shadow["probabilities"]) == (old_id, 2, None)


def test_record_durable_without_durable_mode_just_queues(store: Store) -> None:
    recorder = Recorder(store.predictions.write_rows, flush_interval=30)
    asyncio.run(recorder.record_durable(batch(2)))
    assert recorder.queued_rows == 2
    recorder.close()
    assert store.predictions.count("ep") == 2


def test_redacted_values_reach_neither_the_spool_nor_the_store(tmp_path: Path) -> None:
    secret = b"user1@secret.example"
    writer = FlakyWriter()
    writer.down = True
    recorder = Recorder(writer, flush_interval=30, spool=tmp_path / "spool", durable=True)
    asyncio.run(recorder.record_durable(batch(3, redact={"email": "drop"}, error="bad value user1@secret.example")))
    recorder.record(batch(3, redact={"email": "hash"}))
    recorder.flush()
    files = list((tmp_path / "spool").rglob("seg-*.log"))
    assert files and all(secret not in f.read_bytes() for f in files)
    store = Store.open(tmp_path / "db")
    writer.down = False
    recorder._write = store.predictions.write_rows  # the same rows, now into a real SQLite file
    recorder.close()
    store.close()
    assert store.predictions.count("ep") == 6
    for path in (tmp_path / "db").iterdir():
        assert secret not in path.read_bytes(), path.name


def test_an_unreachable_database_is_not_ready() -> None:
    repo = PredictionRepo(create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none"))
    with pytest.raises(NotReady):
        repo.known_ids("ep", ["a"])
    with pytest.raises(NotReady):
        repo.add_labels("ep", [("a", 1)])


def test_count_range_can_stop_counting_early(store: Store) -> None:
    """Monitor scheduling asks "any rows?" and "more than N?": a limit answers without a full count."""
    b = batch(30)
    store.predictions.write_rows(encode(b))
    store.predictions.write_rows(encode(batch(5, role="shadow")))
    assert store.predictions.count_range("ep") == 30
    assert store.predictions.count_range("ep", role=None) == 35
    assert store.predictions.count_range("ep", limit=1) == 1
    assert store.predictions.count_range("ep", role=None, limit=31) == 31
    assert store.predictions.count_range("ep", limit=100) == 30
    assert store.predictions.count_range("ep", since=b.ts + 1, limit=1) == 0
    assert store.predictions.count_range("other", limit=5) == 0


def test_merged_batches_encode_to_the_rows_of_their_parts() -> None:
    """The log writer process gets runs of small batches as one batch with per-row times and latencies."""
    rules = {"email": "hash"}

    def part(n: int, ts: float, latency: float, status: str | list[str] = "ok", **kw: object) -> LogBatch:
        cols = {"x": np.arange(n, dtype=float) + ts, "email": np.array([f"u{i}@x.example" for i in range(n)], object)}
        return LogBatch(
            "ep",
            "m",
            1,
            "primary",
            ts,
            new_ids(n),
            cols,
            list(range(n)),
            np.full((n, 2), 0.25),
            latency,
            status,
            redact=rules,
            **kw,
        )

    parts = [part(1, 10.0, 1.5), part(3, 11.0, 2.5, ["ok", "review", "ok"]), part(2, 12.0, 3.5)]
    framed = dataclasses.replace(part(2, 13.0, 4.5), frame=pd.DataFrame({"x": [1.0, 2.0], "email": ["a", "b"]}))
    other_version = dataclasses.replace(part(1, 14.0, 5.5), version=2)
    merged = rows_merge([*parts, framed, other_version, part(2, 15.0, 6.5)])
    # One run of three, then the frame (kept as it is), then a new run for each change of key.
    assert [len(b) for b in merged] == [6, 2, 1, 2]
    assert merged[1] is framed
    expected = [row for b in [*parts, framed, other_version, part(2, 15.0, 6.5)] for row in encode(b)]
    got = [row for b in merged for row in encode(b)]
    # Still one stored row per request; the last part was made twice, so its key differs.
    assert len(got) == len(expected) == 6
    assert got[:5] == expected[:5] and got[5][1:] == expected[5][1:]
    decoded = as_dicts(got[:3])
    assert [p["ts"] for p in decoded] == [10.0, 11.0, 11.0, 11.0, 12.0, 12.0]
    assert [p["latency_ms"] for p in decoded] == [1.5, 2.5, 2.5, 2.5, 3.5, 3.5]
    assert [p["status"] for p in decoded] == ["ok", "ok", "review", "ok", "ok", "ok"]
    assert [p["id"] for p in decoded] == [i for b in parts for i in b.ids]
    assert decoded[0]["inputs"]["email"].startswith("sha256:")
    assert [r[10] for r in got[:3]] == [0, 1, 0]  # rows waiting for review, per stored row


def test_numeric_columns_of_a_big_request_are_packed_together_and_read_back() -> None:
    """Numeric columns of one dtype are stored as one block (the first column holds it, the others
    name it); every value, null and column comes back in order, also merged with other requests."""
    n = 12
    rng = np.random.default_rng(3)

    def big(status: str | list[str] = "ok") -> LogBatch:
        x = rng.normal(size=n)
        x[4] = np.nan
        cols = {
            "a": x,
            "label": np.array([f"c{i % 3}" for i in range(n)], object),
            "b": rng.normal(size=n),
            "count": np.arange(n, dtype=np.int64),
            "c": rng.normal(size=n),
            "flag": np.arange(n) % 2 == 0,
        }
        return LogBatch("ep", "m", 1, "primary", 1.0, new_ids(n), cols, [1] * n, np.full((n, 2), 0.5), 1.0, status)

    parts = [big(), big(["ok"] * 5 + ["review"] * 7), big()]
    for rows in ([r for p in parts for r in encode(p)], encode(rows_merge(parts)[0])):
        assert len(rows) == 3
        assert rows[0][12].count('"b64"') == 1 + 1 + 1  # float block, int64 column, bool column
        assert '"columns":["a","b","c"]' in rows[0][12] and '"b":{"in":"a"}' in rows[0][12]
        assert [r[10] for r in rows] == [0, 7, 0]
        decoded = as_dicts(rows)
        for i, p in enumerate(parts):
            got = decoded[i * n : (i + 1) * n]
            for j, prediction in enumerate(got):
                assert list(prediction["inputs"]) == ["a", "label", "b", "count", "c", "flag"]
                for name, values in p.frame.items():
                    want = values[j].item() if isinstance(values[j], np.generic) else values[j]
                    if isinstance(want, float) and np.isnan(want):
                        assert prediction["inputs"][name] is None
                    else:
                        assert prediction["inputs"][name] == want


def test_runs_of_small_batches_are_encoded_together_and_a_bad_one_costs_only_itself(store: Store) -> None:
    def one(i: int, rows: int = 1) -> LogBatch:
        cols = {"x": np.full(rows, float(i)), "c": np.array([f"k{i}"] * rows, object)}
        return LogBatch("ep", "m", 1, "primary", float(i), new_ids(1), cols, [i], np.full((1, 2), 0.5), 1.0, "ok")

    batches = [one(i) for i in range(300)]
    batches[150] = one(150, rows=2)  # two rows of inputs for one id: cannot be encoded
    recorder = Recorder(store.predictions.write_rows, flush_interval=60, batch_rows=10**6, max_rows=10**6)
    for b in batches:
        recorder.record(b)
    recorder.close()
    assert recorder.dropped_rows == 1 and recorder.written_rows == 299
    for i in (0, 149, 151, 299):
        stored = store.predictions.get(batches[i].ids[0])
        assert stored is not None
        assert stored["inputs"] == {"x": float(i), "c": f"k{i}"} and stored["output"] == i and stored["ts"] == i
    assert store.predictions.get(batches[150].ids[0]) is None
