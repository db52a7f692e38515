"""Rows the store refused: parked in spool files, written again oldest first once it takes them.

Both durability strategies end here when the store is down: a write-behind recorder parks the rows it
held in memory, a group-commit recorder marks the segment that already holds them. Writes are
idempotent (existing ids are kept), so a replay after a crash between "written" and "file removed"
is harmless.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Protocol

from driftgate.core.rows import Row, count_rows
from driftgate.records.spool import Spool

log = logging.getLogger("driftgate.recorder")
# Parked spool files replayed in one transaction at most (see `Backlog.replay`).
REPLAY_FILES = 256


class RowWriter(Protocol):
    """Writes encoded rows in one transaction; `replay=True` means some ids may already be stored."""

    def __call__(self, rows: list[Row], *, replay: bool = False) -> None: ...


def describe_error(exc: BaseException) -> str:
    """One line naming the error. Driver errors may quote statement parameters: only the first line."""
    orig = getattr(exc, "orig", None) or exc
    return f"{type(orig).__name__}: {str(orig).splitlines()[0][:200] if str(orig) else ''}"


class Backlog:
    """Parked spool files, oldest first, and whether the store takes writes (with backoff when not)."""

    def __init__(self, spool: Spool | None, batch_rows: int) -> None:
        self.spool = spool
        self.batch_rows = batch_rows
        self._paths: list[Path] = list(spool.adopted) if spool else []  # left by a crashed process
        self._lock = threading.Lock()
        self._retry_at = 0.0
        self._backoff = 0.5
        self.store_available = True
        self.spooled_rows = 0
        """Rows parked in spool files because the store refused them (not counting durable appends)."""
        self.replayed_rows = 0

    def __len__(self) -> int:
        return len(self._paths)

    @property
    def waiting(self) -> bool:
        """Files to replay, or a store that refused the last write."""
        return bool(self._paths) or not self.store_available

    @property
    def due(self) -> bool:
        """Waiting and past the backoff: the writer thread tries again."""
        return self.waiting and time.monotonic() >= self._retry_at

    def add(self, path: Path) -> None:
        """A spool file to replay (a segment whose rows the store refused)."""
        with self._lock:
            if path not in self._paths:
                self._paths.append(path)

    def park(self, rows: list[Row]) -> int:
        """Keep rows the store refused in a new spool file; returns how many predictions were lost
        (no spool, or it cannot be written)."""
        if not rows:
            return 0
        n = count_rows(rows)
        if self.spool is None:
            log.error("store unavailable and no spool: %d prediction log rows lost", n)
            return n
        try:
            path = self.spool.write_sealed(rows)
        except OSError as exc:
            log.error("store unavailable and spool not writable (%s): %d rows lost", describe_error(exc), n)
            return n
        self.add(path)
        self.spooled_rows += n
        return 0

    def store_down(self, exc: BaseException, n: int) -> None:
        if self.store_available:
            log.error(
                "the store refused %d prediction log rows (%s); spooling until it is back", n, describe_error(exc)
            )
        self.store_available = False
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, 5.0)

    def replay(self, write: RowWriter) -> None:
        """Write parked files to the store, oldest first; stop at the first refusal.

        Several files go in one transaction (up to `4 * batch_rows` predictions): an outage under load
        parks hundreds of small files, and one transaction each made the log take ~20 s to catch up
        after a 15 s PostgreSQL outage (in-process writer, 4 clients), with feedback answering 503
        for the newest ids meanwhile."""
        while True:
            with self._lock:
                candidates = list(self._paths[:REPLAY_FILES])
            if not candidates:
                break
            paths: list[Path] = []
            rows: list[Row] = []
            predictions = 0
            try:
                for path in candidates:
                    part = Spool.read(path) if path.exists() else []
                    n = count_rows(part)
                    if paths and predictions + n > 4 * self.batch_rows:  # the bound the writer keeps too
                        break
                    paths.append(path)
                    rows.extend(part)
                    predictions += n
                # One transaction per group; a single file bigger than the bound goes in chunks as before.
                step = max(len(rows), 1) if predictions <= 4 * self.batch_rows else self.batch_rows
                for start in range(0, len(rows), step):
                    write(rows[start : start + step], replay=True)
            except Exception as exc:
                self.store_down(exc, 0)
                return
            self.replayed_rows += predictions
            for path in paths:
                Spool.remove(path)
            with self._lock:
                # Only appends happen elsewhere: the files written are still the oldest ones.
                del self._paths[: len(paths)]
        if not self.store_available:
            log.warning("the store is back; parked prediction log rows are written")
        self.store_available = True
        self._backoff = 0.5
