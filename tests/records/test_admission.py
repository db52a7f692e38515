"""Admission to the prediction log (issue 19, item 5): room for a request's rows is held before it is
scored, so an id is never handed out for a row the log drops. Real recorders, a real writer child."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np

from driftgate.core.ids import new_ids
from driftgate.records.log_process import ProcessRecorder
from driftgate.records.recorder import LogBatch, Recorder
from driftgate.store import Store


def batch(n: int) -> LogBatch:
    columns = {"x": np.arange(n, dtype=float)}
    return LogBatch("ep", "m", 1, "primary", time.time(), new_ids(n), columns, list(range(n)), None, 1.0, "ok")


def test_held_room_is_not_taken_by_others_and_an_admitted_batch_is_never_dropped() -> None:
    written: list[tuple] = []
    rec = Recorder(lambda rows, replay=False: written.extend(rows), flush_interval=3600, batch_rows=10**6, max_rows=10)
    try:
        admission = rec.admit(6)
        assert admission is not None
        assert rec.admit(5) is None  # 6 held + 5 > 10: refused now, not dropped later
        assert not rec.record(batch(5))  # a shadow or a failed request cannot take the held room
        assert rec.record(batch(4))  # what is left is free
        with admission:
            assert rec.record(batch(6))  # queued on its held room: 4 + 6 = 10
        assert rec.queued_rows == 10 and rec.dropped_rows == 5
        assert rec.admit(1) is None
        rec.flush()
        assert rec.admit(10) is not None  # written: room again
    finally:
        rec.close()


def test_room_not_used_is_given_back_when_the_request_ends() -> None:
    rec = Recorder(lambda rows, replay=False: None, flush_interval=3600, batch_rows=10**6, max_rows=10)
    try:
        admission = rec.admit(8)
        assert admission is not None
        with admission:  # the request failed before its rows were logged
            assert rec.admit(3) is None
        assert rec.admit(10) is not None
    finally:
        rec.close()


def test_rows_taken_back_from_a_starved_child_are_not_dropped(tmp_path: Path, store: Store, db_url: str) -> None:
    """A flush that takes over what the writer child holds used to put those rows (ids already handed
    out) through the in-process recorder's bound, which dropped them when it was full."""
    overflow = Recorder(
        Store.open(db=db_url).predictions.write_rows, flush_interval=3600, batch_rows=10**6, max_rows=10,
        spool=tmp_path / "spool",
    )  # fmt: skip
    # The stalled-call bound is pinned out of the way: this is about what a flush takes over from the
    # child, so the stopped child must keep holding its rows however slowly this test runs.
    rec = ProcessRecorder(
        overflow, data_dir=tmp_path, db=db_url, spool=tmp_path / "spool", flush_interval=0.02, stalled_call_s=3600
    )
    try:
        rec.record(batch(2))
        rec.flush()  # the child is up
        [child] = rec.processes()
        os.kill(child.pid, signal.SIGSTOP)
        try:
            for b in (batch(4), batch(4)):  # 8 rows the stopped child holds (its bound: 10)
                with rec.admit(len(b)) or _refused():
                    assert rec.record(b)
            late = batch(8)
            with rec.admit(8) or _refused():
                assert rec.record(late)  # past the child's bound: queued in-process, on its held room
            assert rec.admit(3) is None  # the in-process queue is full now
            rec.flush()  # the child does not answer: its 8 rows join the full in-process queue
        finally:
            os.kill(child.pid, signal.SIGCONT)
        assert store.predictions.count("ep") == 18
        assert rec.dropped_rows == 0
    finally:
        rec.close()


def _refused() -> object:
    raise AssertionError("the log refused a request it had room for")
