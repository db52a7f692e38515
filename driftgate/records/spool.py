"""The spool: append-only local files that hold prediction rows until the store has them.

Used two ways: with `--durable-log` every row is appended and fsynced here before its request is
answered (group commit: one fsync covers every request that arrived meanwhile); in any mode, rows
the store refused (the database is down) are parked here and written when it is back.

Layout: `spool/<owner>/seg-<n>.log`, one folder per process, held with an exclusive `flock` on
`spool/<owner>/lock`. A folder whose lock can be taken belongs to a process that is gone (a crash,
`kill -9`): the next recorder adopts its files and replays them into the store. Each append is one
frame, `<u32 length><u32 crc32><JSON array of rows>`; a torn last frame (the process died mid-write)
fails its length or checksum and is ignored - it was never fsynced, so never acknowledged.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import struct
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from driftgate.core.rows import COLUMNS, PREDICTION_COLUMNS, Row, from_legacy

log = logging.getLogger("driftgate.recorder")
HEADER = struct.Struct("<II")


@dataclass(eq=False)
class Segment:
    """One spool file and the bookkeeping that decides when it may go."""

    path: Path
    opened_at: float = field(default_factory=time.monotonic)
    size: int = 0
    pending: int = 0
    """Rows appended here and not yet confirmed written to the store."""
    sealed: bool = False
    """No more appends; the file can be removed (or replayed) once `pending` is zero."""
    failed: bool = False
    """Some rows could not be written from memory: replay the whole file from disk."""


def encode_frame(rows: Sequence[Row]) -> bytes:
    payload = orjson.dumps(list(rows))
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _current(row: list[Any]) -> Row:
    """A spooled row in today's `COLUMNS` form. Older servers spooled one row per prediction (its id
    first, then the endpoint: a string where a stored row has a row number), some before `parent_id`
    was added (padded with None: the column is nullable)."""
    if len(row) == len(COLUMNS) and isinstance(row[1], int):
        return tuple(row)
    return from_legacy(tuple(row) + (None,) * (len(PREDICTION_COLUMNS) - len(row)))


def read_frames(path: Path) -> Iterator[list[Row]]:
    """Every complete frame of a spool file, in order; stops at the first torn or corrupt one."""
    data = path.read_bytes()
    pos = 0
    while pos + HEADER.size <= len(data):
        length, crc = HEADER.unpack_from(data, pos)
        start, end = pos + HEADER.size, pos + HEADER.size + length
        if end > len(data) or zlib.crc32(data[start:end]) != crc:
            log.warning("spool file %s ends with a torn frame at byte %d; the rest is ignored", path.name, pos)
            return
        yield [_current(r) for r in orjson.loads(data[start:end])]
        pos = end


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Segment files under `root/<owner>/`, owned by this process while it lives.

    >>> import tempfile
    >>> spool = Spool(Path(tempfile.mkdtemp()))
    >>> row = ("0" * 28, 0, 1, "ep", "m", 1, "primary", 0.0, 1.0, "ok", 0, None, "{}", None, None, None)
    >>> seg = spool.append([row]); spool.sync(); _ = spool.seal()
    >>> [rows for rows in read_frames(seg.path)] == [[row]]
    True
    >>> spool.close()
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.dir = self.root / f"{os.getpid()}-{secrets.token_hex(4)}"
        self.dir.mkdir()
        self._lock_fd = os.open(self.dir / "lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._seq = 0
        self._active: Segment | None = None
        self._fd: int | None = None
        self.adopted = self._adopt_orphans()

    # ---- start-up ------------------------------------------------------------------------------

    def _adopt_orphans(self) -> list[Path]:
        """Move files of dead owners into this folder; they are returned oldest first for replay."""
        adopted: list[Path] = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and p != self.dir):
            lock = folder / "lock"
            try:
                fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live process owns it
                os.close(fd)
                continue
            try:
                for path in sorted(folder.glob("seg-*.log")):
                    target = self._next_path()
                    path.rename(target)
                    adopted.append(target)
                lock.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    folder.rmdir()
            finally:
                os.close(fd)
        if adopted:
            _fsync_dir(self.dir)
        return adopted

    def _next_path(self) -> Path:
        self._seq += 1
        return self.dir / f"seg-{self._seq:09d}.log"

    # ---- appending -----------------------------------------------------------------------------

    @property
    def active(self) -> Segment | None:
        return self._active

    def append(self, rows: Sequence[Row]) -> Segment:
        """Append one frame to the active segment (opening one if needed); not yet durable."""
        if self._active is None:
            path = self._next_path()
            self._fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
            _fsync_dir(self.dir)
            self._active = Segment(path)
        assert self._fd is not None
        frame = encode_frame(rows)
        view = memoryview(frame)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._active.size += len(frame)
        return self._active

    def sync(self) -> None:
        """Make everything appended so far durable: the group commit's one fsync."""
        if self._fd is not None:
            os.fsync(self._fd)

    def seal(self) -> Segment | None:
        """Close the active segment; later appends go to a new one."""
        seg = self._active
        if seg is None:
            return None
        assert self._fd is not None
        os.close(self._fd)
        self._fd, self._active = None, None
        seg.sealed = True
        return seg

    def write_sealed(self, rows: Sequence[Row]) -> Path:
        """A new, complete, fsynced file holding `rows` (parking rows the store refused)."""
        path = self._next_path()
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        try:
            os.write(fd, encode_frame(rows))
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.rename(path)
        _fsync_dir(self.dir)
        return path

    @staticmethod
    def read(path: Path) -> list[Row]:
        return [row for frame in read_frames(path) for row in frame]

    @staticmethod
    def remove(path: Path) -> None:
        path.unlink(missing_ok=True)

    def close(self) -> None:
        """Seal, and drop this process's folder if nothing is left in it."""
        self.seal()
        if not any(self.dir.glob("seg-*.log")):
            (self.dir / "lock").unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.dir.rmdir()
        os.close(self._lock_fd)
