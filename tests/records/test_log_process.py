"""The prediction log written by a child process, against real stores and a real child."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from driftgate.core.ids import new_ids
from driftgate.core.rows import as_dicts, encode
from driftgate.records.log_process import FLUSH_PATIENCE_S, STALLED_CALL_S, ProcessRecorder
from driftgate.records.recorder import LogBatch, Recorder
from driftgate.store import Store


def batch(n: int = 3, **kw: object) -> LogBatch:
    columns = {"x": np.arange(n, dtype=float), "email": np.array([f"u{i}@secret.example" for i in range(n)], object)}
    return LogBatch(
        "ep", "m", 1, "primary", time.time(), new_ids(n), columns, list(range(n)), np.full((n, 2), 0.5), 1.5, "ok", **kw
    )


def recorder(
    tmp_path: Path,
    db_url: str,
    *,
    max_rows: int = 100_000,
    child_db: str | None = None,
    overflow_interval: float = 30,
    **kw: Any,
) -> ProcessRecorder:
    """A process recorder over the store at `db_url`, with its in-process recorder as the servers have it."""
    overflow = Recorder(
        Store.open(db=db_url).predictions.write_rows,
        flush_interval=overflow_interval,
        max_rows=max_rows,
        spool=tmp_path / "spool",
    )
    return ProcessRecorder(overflow, data_dir=tmp_path, db=child_db or db_url, spool=tmp_path / "spool", **kw)


def test_rows_are_written_by_the_child_and_flush_waits_for_them(tmp_path: Path, store: Store, db_url: str) -> None:
    rec = recorder(tmp_path, db_url, flush_interval=30)  # only flush() and close() send
    try:
        batches = [batch(5, redact={"email": "hash"}) for _ in range(4)]
        assert all(rec.record(b) for b in batches)
        assert rec.queued_rows == 20
        rec.flush()
        assert rec.queued_rows == 0 and rec.written_rows == 20
        assert store.predictions.count("ep") == 20
        row = store.predictions.get(batches[2].ids[3])
        assert row is not None and row["inputs"]["email"].startswith("sha256:") and row["output"] == 3
        # Written in the child, not in this process.
        [child] = rec.processes()
        assert child.pid != os.getpid() and child.is_alive()
    finally:
        rec.close()
    assert not child.is_alive()


def test_close_writes_what_is_queued(tmp_path: Path, store: Store, db_url: str) -> None:
    rec = recorder(tmp_path, db_url, flush_interval=30)
    b = batch(7)
    rec.record(b)
    rec.close()
    assert store.predictions.count("ep") == 7
    assert not rec.record(batch(1)), "a closed log takes nothing more"


def test_rows_go_in_process_while_the_child_is_behind(tmp_path: Path, store: Store, db_url: str) -> None:
    # The bound in rows; the bound in time (`stalled_call_s`) is pinned out of the way: on a busy machine
    # the child's first call (its start) may run past it, and then every batch goes in-process.
    rec = recorder(tmp_path, db_url, flush_interval=30, max_behind_rows=10, stalled_call_s=3600)
    try:
        assert rec.record(batch(6))
        assert rec.record(batch(6)), "past max_behind_rows: written in-process instead"
        assert rec.overflowed_rows == 6 and rec.queued_rows == 12
        rec.flush()
        assert store.predictions.count("ep") == 12 and rec.written_rows == 12 and rec.queued_rows == 0
        before = rec.overflowed_rows  # 12 if the flush found the child still starting on a busy machine
        assert rec.record(batch(6)) and rec.overflowed_rows == before, "the child has room again"
    finally:
        rec.close()
    assert store.predictions.count("ep") == 18


def test_the_overall_bound_drops_and_counts(tmp_path: Path, db_url: str) -> None:
    rec = recorder(tmp_path, db_url, flush_interval=30, max_rows=10, max_behind_rows=6)
    try:
        assert rec.record(batch(6))  # to the child
        assert rec.record(batch(6))  # in-process
        assert not rec.record(batch(6)), "the in-process queue is full too"
        assert rec.dropped_rows == 6
    finally:
        rec.close()


def test_a_child_that_cannot_start_costs_no_rows(tmp_path: Path, store: Store, db_url: str) -> None:
    rec = recorder(tmp_path, db_url, flush_interval=30, child_db="nosuchdialect://nowhere")
    try:
        for _ in range(3):
            rec.record(batch(4))
        rec.flush()
        assert store.predictions.count("ep") == 12
        assert rec.overflowed_rows == 12 and rec.dropped_rows == 0
    finally:
        rec.close()


def test_enough_waiting_rows_are_shipped_before_the_interval_ends(tmp_path: Path, store: Store, db_url: str) -> None:
    rec = recorder(tmp_path, db_url, flush_interval=3600, batch_rows=10)
    try:
        rec.start()
        rec.record(batch(6))
        time.sleep(0.5)
        assert store.predictions.count("ep") == 0  # below batch_rows: it waits for the interval
        rec.record(batch(6))  # 12 rows waiting: a hand-over now
        deadline = time.monotonic() + 30
        while (rec.queued_rows or store.predictions.count("ep") < 12) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.predictions.count("ep") == 12 and rec.queued_rows == 0
    finally:
        rec.close()


def test_a_killed_child_loses_nothing_that_was_handed_over(tmp_path: Path, store: Store, db_url: str) -> None:
    rec = recorder(tmp_path, db_url, flush_interval=0.02)
    try:
        first = batch(10)
        rec.record(first)
        rec.flush()
        [child] = rec.processes()
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
        later = [batch(10) for _ in range(5)]
        for b in later:
            rec.record(b)
        rec.flush()
        assert store.predictions.count("ep") == 60
        assert {p.pid for p in rec.processes()} != {child.pid}, "a fresh child took over"
    finally:
        rec.close()


def test_rows_left_in_the_spool_by_a_crash_are_replayed_on_start(tmp_path: Path, store: Store, db_url: str) -> None:
    # A previous server parked rows (its store was down) and died.
    def refuse(rows: list[tuple], *, replay: bool = False) -> None:
        raise ConnectionError("store down")

    parked = Recorder(refuse, flush_interval=30, spool=tmp_path / "spool")
    parked.record(batch(9))
    parked.flush()
    assert parked.spooled_rows == 9
    assert parked.spool is not None
    parked.spool.close()  # releases the folder's lock, as the process's exit would

    rec = recorder(tmp_path, db_url, flush_interval=30)
    try:
        rec.flush()  # what the server does before it starts serving
        assert store.predictions.count("ep") == 9
        assert rec.replayed_rows == 9 and rec.backlog_files == 0
        assert rec.processes() == [], "the in-process recorder replays; no child is needed for it"
    finally:
        rec.close()


def test_nothing_to_write_starts_no_child(tmp_path: Path, db_url: str) -> None:
    rec = recorder(tmp_path, db_url)
    rec.flush()
    assert rec.processes() == []
    rec.close()


def test_a_batch_the_child_cannot_encode_costs_that_batch_only(tmp_path: Path, store: Store, db_url: str) -> None:
    rec = recorder(tmp_path, db_url, flush_interval=30)
    try:
        good = batch(3)
        bad = batch(3)
        bad.frame = {"x": np.arange(2, dtype=float)}  # fewer values than ids: encoding fails
        rec.record(bad)
        rec.record(good)
        rec.flush()
        assert store.predictions.count("ep") == 3 and rec.dropped_rows == 3
    finally:
        rec.close()


@pytest.mark.parametrize("n", [1, 250])
def test_rows_match_the_in_process_encoding(tmp_path: Path, store: Store, db_url: str, n: int) -> None:
    b = batch(n)
    rec = recorder(tmp_path, db_url, flush_interval=30)
    try:
        rec.record(b)
        rec.flush()
    finally:
        rec.close()
    stored = {row["id"]: row for row in store.predictions.window("ep", last=n)}
    assert len(stored) == n
    for i, row in enumerate(as_dicts(encode(b))):  # the in-process encoding of the same batch
        assert stored[b.ids[i]]["inputs"] == row["inputs"] == {"x": float(i), "email": f"u{i}@secret.example"}
        assert stored[b.ids[i]]["output"] == row["output"] == i
        assert stored[b.ids[i]]["probabilities"] == row["probabilities"] == [0.5, 0.5]
        assert row["id"] == b.ids[i]


def test_flush_does_not_wait_for_a_starved_child(tmp_path: Path, store: Store, db_url: str) -> None:
    """On a saturated core the idle-priority child gets no CPU: a flush (feedback for a prediction
    just made) writes what the child holds in-process after `FLUSH_PATIENCE_S`."""
    rec = recorder(tmp_path, db_url, flush_interval=0.02)
    try:
        rec.record(batch(2))
        rec.flush()
        [child] = rec.processes()
        before = rec.overflowed_rows  # a child still starting on a busy machine counts here too
        os.kill(child.pid, signal.SIGSTOP)  # as starved as it gets
        try:
            batches = [batch(4) for _ in range(3)]
            for b in batches:
                rec.record(b)
            time.sleep(0.1)  # the sender has handed (some of) them to the stopped child
            started = time.monotonic()
            rec.flush()
            assert time.monotonic() - started < FLUSH_PATIENCE_S + 5
            assert store.predictions.count("ep") == 14
            assert rec.overflowed_rows - before == 12 and rec.queued_rows == 0
        finally:
            os.kill(child.pid, signal.SIGCONT)
        rec.record(batch(5))
        rec.flush()  # the child, running again, finishes its old call and takes new work
        assert store.predictions.count("ep") == 19
    finally:
        rec.close()
    assert store.predictions.count("ep") == 19 and rec.written_rows == 19


def test_rows_behind_a_stalled_call_are_written_in_process_without_a_flush(
    tmp_path: Path, store: Store, db_url: str
) -> None:
    """A `kill -9` of the server loses what waits here for the child, so it must not wait long: once a
    call to the child has run past `STALLED_CALL_S` (a starved idle-priority child), what waits behind it
    and what comes next are written by the in-process recorder on its own schedule, no flush needed."""
    rec = recorder(tmp_path, db_url, flush_interval=0.02, overflow_interval=0.02)
    try:
        rec.record(batch(2))
        rec.flush()
        [child] = rec.processes()
        os.kill(child.pid, signal.SIGSTOP)
        try:
            rec.record(batch(4))  # the sender hands it to the stopped child: a call that does not end
            deadline = time.monotonic() + 30
            while rec._call_started is None or time.monotonic() - rec._call_started <= STALLED_CALL_S:
                assert time.monotonic() < deadline, "the sender never called the child"
                time.sleep(0.02)
            rec.record(batch(3))
            while store.predictions.count("ep") < 9:  # no flush: the in-process recorder writes them
                assert time.monotonic() < deadline, f"{store.predictions.count('ep')} of 9 rows written"
                time.sleep(0.05)
        finally:
            os.kill(child.pid, signal.SIGCONT)
    finally:
        rec.close()
    assert store.predictions.count("ep") == 9
