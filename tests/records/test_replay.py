"""After a store outage the parked spool files reach the store in few transactions, none lost."""

from __future__ import annotations

from pathlib import Path

from driftgate.core.rows import count_rows
from driftgate.records.recorder import Recorder
from driftgate.store import Store
from tests.records.test_recorder import batch


class Outage:
    """The real store's writer, refusing while `down`; counts transactions and their predictions."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.down = False
        self.writes: list[int] = []

    def __call__(self, rows: list[tuple], *, replay: bool = False) -> None:
        if self.down:
            raise ConnectionError("store down")
        self.store.predictions.write_rows(rows, replay=replay)
        self.writes.append(count_rows(rows))


def _park(recorder: Recorder, files: int) -> list[str]:
    ids: list[str] = []
    for _ in range(files):
        b = batch(3)
        ids.extend(b.ids)
        recorder.record(b)
        recorder.flush()  # the store refuses: this flush's rows go to a spool file of their own
    return ids


def test_parked_files_are_replayed_many_per_transaction(tmp_path: Path, store: Store) -> None:
    outage = Outage(store)
    outage.down = True
    recorder = Recorder(outage, flush_interval=30, spool=tmp_path / "spool")
    ids = _park(recorder, 100)
    assert recorder.backlog_files == 100 and not recorder.store_available
    outage.down = False
    recorder.flush()
    assert recorder.store_available and recorder.backlog_files == 0
    # One transaction for all 100 files (one per file before: the log took ~20 s to catch up after a
    # 15 s PostgreSQL outage under load).
    assert outage.writes == [300]
    assert recorder.replayed_rows == 300
    assert store.predictions.known_ids("ep", ids) == set(ids)
    recorder.close()
    assert not list((tmp_path / "spool").rglob("*.log"))


def test_replay_transactions_stay_bounded(tmp_path: Path, store: Store) -> None:
    outage = Outage(store)
    outage.down = True
    recorder = Recorder(outage, flush_interval=30, batch_rows=10, spool=tmp_path / "spool")
    ids = _park(recorder, 30)
    outage.down = False
    recorder.flush()
    # At most 4 x batch_rows predictions per transaction, as the live writer takes them.
    assert sum(outage.writes) == 90 and max(outage.writes) <= 40 and len(outage.writes) == 3
    assert store.predictions.known_ids("ep", ids) == set(ids)
    recorder.close()
