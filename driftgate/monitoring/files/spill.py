"""Sorted numeric values kept on disk in bounded space, for exact KS and Wasserstein afterwards."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

SPILL_LIMIT = 4 << 30  # bytes of sorted reference values kept on disk at most; beyond, read twice
# Up to this many rows per file, `report_files` computes KS and Wasserstein from the raw values (read
# back one column at a time from the sorted spill); beyond, from the bins, with their error bounds.
# The live monitor's largest window (monitor.MAX_ROWS): any window it reports, a file report of the
# same rows computes the same way. Exact costs a merge of sorted runs and one two-sample pass per
# numeric column: about twice the time of the binned report on 1M + 1M rows x 20 numeric columns.
EXACT_ROWS = 1_000_000


def spill_budget() -> int:
    try:
        free = shutil.disk_usage(tempfile.gettempdir()).free
    except OSError:
        return 0
    return min(SPILL_LIMIT, free // 2)


class SortedSpill:
    """Append-only float64 segments in an anonymous temporary file, up to `limit` bytes.

    `put` returns a segment id; once a write would pass the limit (or fails) the spill closes
    itself, frees the file, and `open` turns False for good: callers then recompute instead.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._file: Any = None
        self._segments: list[tuple[int, int]] = []
        self._size = 0
        self.open = limit > 0

    def __enter__(self) -> SortedSpill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def put(self, values: np.ndarray) -> int:
        if not self.open:
            return -1
        nbytes = values.size * 8
        if self._size + nbytes > self.limit:
            self.close()
            return -1
        try:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="driftgate-spill-")  # noqa: SIM115 (closed by close())
            self._file.write(np.ascontiguousarray(values, dtype=np.float64).data)
        except OSError:
            self.close()
            return -1
        self._segments.append((self._size, values.size))
        self._size += nbytes
        return len(self._segments) - 1

    def get(self, segment: int) -> np.ndarray:
        offset, count = self._segments[segment]
        if count == 0:
            return np.zeros(0)
        self._file.seek(offset)
        return np.fromfile(self._file, dtype=np.float64, count=count)

    def close(self) -> None:
        self.open = False
        if self._file is not None:
            self._file.close()
            self._file = None


class SortedValues(Mapping[str, tuple[np.ndarray, np.ndarray]]):
    """(reference, current) finite values of each numeric feature, sorted, read back from the two
    spills one feature at a time (what `compare` takes as `raw` for exact KS and Wasserstein). A
    feature whose values did not all fit in a spill is absent: its statistics come from the bins."""

    def __init__(
        self,
        reference: tuple[SortedSpill, dict[str, list[int]]],
        current: tuple[SortedSpill, dict[str, list[int]]],
    ) -> None:
        self.reference, self.current = reference, current
        self.names = [
            name
            for name, parts in reference[1].items()
            if name in current[1] and reference[0].open and current[0].open and min(parts + current[1][name]) >= 0
        ]

    def __getitem__(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self.names:
            raise KeyError(name)
        return _merged(*self.reference, name), _merged(*self.current, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def _merged(spill: SortedSpill, segments: dict[str, list[int]], name: str) -> np.ndarray:
    parts = [spill.get(segment) for segment in segments[name]]
    values = np.concatenate(parts) if parts else np.zeros(0)
    # Sorted runs, one per batch: the stable sort (timsort for floats) merges them in O(n log runs).
    return np.sort(values, kind="stable") if len(parts) > 1 else values
