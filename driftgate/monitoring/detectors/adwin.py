"""ADWIN, adaptive windowing (Bifet and Gavaldà 2007), on prefix sums of fixed-size blocks.

Every `clock` values the window (everything since the last reset) is split at block boundaries
whose newer side holds 1, 2, 3, 4, 5, 6, 8, 10, ... blocks (a geometric grid, like the bucket
boundaries of ADWIN's exponential histogram) and a cut is declared when the two sides' means differ
by more than River's bound: eps = sqrt(2 m v d) + 2/3 d m, with d = ln(2 ln(W) / delta),
m = 1/(n0 - l + 1) + 1/(n1 - l + 1), v the window variance. Because checks and splits only fall
on block boundaries, all checks of a batch are computed at once from prefix sums; that is what
makes `update_many` fast. As in River 0.26 the detector starts afresh after a detection.

>>> import numpy as np
>>> rng = np.random.default_rng(7)
>>> stream = np.concatenate([rng.normal(0, 1, 5000), rng.normal(1, 1, 1000)])
>>> ADWIN().update_many(stream).tolist()
[5055]
"""

from __future__ import annotations

import math

import numpy as np

from driftgate.errors import InvalidInput
from driftgate.monitoring.detectors.base import DriftDetector

GRID_RATIO = 1.25  # growth of the newer side between tested splits
CHECKS_PER_STEP = 2048  # checks evaluated together, bounds the (checks x splits) matrix


class ADWIN(DriftDetector):
    def __init__(
        self, delta: float = 0.002, clock: int = 32, min_window_length: int = 5, grace_period: int = 10
    ) -> None:
        super().__init__()
        if not 0 < delta < 1:
            raise InvalidInput(f"delta must be in (0, 1). Got {delta} instead.")
        if clock < 1:
            raise InvalidInput(f"clock must be an int >= 1. Got {clock} instead.")
        self.delta, self.clock = delta, clock
        self.min_window_length, self.grace_period = min_window_length, grace_period
        self.reset()

    def reset(self) -> None:
        self._drift_detected = False
        self._shift: float | None = None
        # Prefix sums over completed blocks since the reset; index k = the first k blocks.
        self._prefix = np.zeros(64)
        self._prefix_sq = np.zeros(64)
        self._blocks = 0
        self._partial: list[float] = []
        self._grid_span = (math.inf, -math.inf)  # cache of `_cut_at_end`: none yet

    @property
    def width(self) -> int:
        """Values in the window (since the last reset)."""
        return self._blocks * self.clock + len(self._partial)

    @property
    def estimation(self) -> float:
        """Mean of the window."""
        if self.width == 0 or self._shift is None:
            return 0.0
        return self._shift + (self._prefix[self._blocks] + sum(self._partial)) / self.width

    def update(self, x: float) -> bool:
        if self._drift_detected:
            self.reset()
        value = float(x)
        if self._shift is None:
            self._shift = value
        partial = self._partial
        partial.append(value - self._shift)
        if len(partial) == self.clock:
            block = np.array(partial)
            self._partial = []
            self._append_block(float(block.sum()), float(np.dot(block, block)))
            self._drift_detected = self._cut_at_end()
        return self._drift_detected

    def _append_block(self, total: float, squares: float) -> None:
        """`_append_blocks` for one block, without the array round trip (same prefix sums)."""
        end = self._blocks + 1
        if end + 1 > self._prefix.size:
            capacity = max(2 * self._prefix.size, end + 1)
            self._prefix = np.resize(self._prefix, capacity)
            self._prefix_sq = np.resize(self._prefix_sq, capacity)
        self._prefix[end] = self._prefix[end - 1] + total
        self._prefix_sq[end] = self._prefix_sq[end - 1] + squares
        self._blocks = end

    def _cut_at_end(self) -> bool:
        """`_cuts` for the one window that ends at the newest block: the check `update` makes.

        The same float operations as `_cuts` (so the same answer bit for bit), with what depends only
        on the split grid cached between calls, because one window's check is a few dozen splits and
        the numpy calls, not the arithmetic, are its cost.
        """
        end = self._blocks
        width = end * self.clock
        if width <= self.grace_period:
            return False
        if not self._grid_span[0] < end <= self._grid_span[1]:  # the grid below `end` changed
            count = int(np.searchsorted(_GRID_FLOATS, end, side="left"))
            if count == 0:  # one block: no split leaves a block on the older side
                return False
            self._cache_grid(count)
        newer_rows, inverse_newer, newer_ok = self._grid_cache
        total, total_sq = float(self._prefix[end]), float(self._prefix_sq[end])
        variance = max(total_sq - total * total / width, 0.0) / width
        older = self._prefix[end - self._grid_sizes]
        older_rows = width - newer_rows  # n0 (exact: integers below 2**53)
        mean_gap = older / older_rows - (total - older) / newer_rows
        log_term = float(np.log(2 * np.log(np.array([max(width, 2)], dtype=np.float64)) / self.delta)[0])
        m_recip = 1 / np.maximum(older_rows - (self.min_window_length - 1), 1) + inverse_newer
        epsilon = np.sqrt(2 * m_recip * variance * log_term) + 2 / 3 * log_term * m_recip
        cut = np.abs(mean_gap) > epsilon
        if self.clock < self.min_window_length:  # otherwise every older side holds enough values
            cut &= older_rows >= self.min_window_length
        return bool((cut & newer_ok).any())

    def _cache_grid(self, count: int) -> None:
        # Valid while the number of grid sizes below `end` stays `count`.
        self._grid_span = (float(_GRID_FLOATS[count - 1]), float(_GRID_FLOATS[count]))
        self._grid_sizes = _GRID_SIZES[: _GRID_DISTINCT[count]]
        newer_rows = (self._grid_sizes * self.clock).astype(np.float64)
        inverse_newer = 1 / np.maximum(newer_rows - (self.min_window_length - 1), 1)
        self._grid_cache = (newer_rows, inverse_newer, newer_rows >= self.min_window_length)

    def _scan(self, values: np.ndarray) -> int:
        if self._shift is None:
            self._shift = float(values[0])
        needed = self.clock - len(self._partial)
        if values.size < needed:  # the batch does not complete the open block
            self._partial.extend((values - self._shift).tolist())
            return -1
        head = np.concatenate([np.asarray(self._partial), values[:needed] - self._shift])
        body = values[needed:] - self._shift
        full = body.size // self.clock
        blocks = np.concatenate([head[None, :], body[: full * self.clock].reshape(full, self.clock)])
        first_new = self._blocks + 1
        self._append_blocks(blocks.sum(axis=1), np.einsum("ij,ij->i", blocks, blocks))
        cut_at = self._first_cut(first_new, self._blocks)
        if cut_at >= 0:
            return needed - 1 + (cut_at - first_new) * self.clock
        self._partial = body[full * self.clock :].tolist()
        return -1

    def _append_blocks(self, sums: np.ndarray, squares: np.ndarray) -> None:
        end = self._blocks + sums.size
        if end + 1 > self._prefix.size:  # grow by doubling so that appending one block is O(1) amortised
            capacity = max(2 * self._prefix.size, end + 1)
            self._prefix = np.resize(self._prefix, capacity)
            self._prefix_sq = np.resize(self._prefix_sq, capacity)
        self._prefix[self._blocks + 1 : end + 1] = self._prefix[self._blocks] + np.cumsum(sums)
        self._prefix_sq[self._blocks + 1 : end + 1] = self._prefix_sq[self._blocks] + np.cumsum(squares)
        self._blocks = end

    def _first_cut(self, first: int, last: int) -> int:
        """The first block count k in [first, last] whose window (blocks 0..k) has a cut, or -1."""
        for start in range(first, last + 1, CHECKS_PER_STEP):
            ends = np.arange(start, min(last, start + CHECKS_PER_STEP - 1) + 1)
            hits = np.flatnonzero(self._cuts(ends))
            if hits.size:
                return int(ends[hits[0]])
        return -1

    def _cuts(self, ends: np.ndarray) -> np.ndarray:
        """For each window size `ends` (in blocks), whether any tested split is a cut."""
        width = ends * self.clock
        newer = _split_grid(int(ends.max()))  # blocks on the newer side
        split = ends[:, None] - newer[None, :]
        valid = split >= 1
        split = np.where(valid, split, 0)
        n0 = split * self.clock
        n1 = width[:, None] - n0
        total, total_sq = self._prefix[ends], self._prefix_sq[ends]
        variance = np.maximum(total_sq - total**2 / width, 0.0) / width
        mean_gap = self._prefix[split] / np.maximum(n0, 1) - (total[:, None] - self._prefix[split]) / np.maximum(n1, 1)
        log_term = np.log(2 * np.log(np.maximum(width, 2)) / self.delta)[:, None]
        smallest = self.min_window_length - 1
        m_recip = 1 / np.maximum(n0 - smallest, 1) + 1 / np.maximum(n1 - smallest, 1)
        epsilon = np.sqrt(2 * m_recip * variance[:, None] * log_term) + 2 / 3 * log_term * m_recip
        valid &= (n0 >= self.min_window_length) & (n1 >= self.min_window_length)
        cut = valid & (np.abs(mean_gap) > epsilon)
        return cut.any(axis=1) & (width > self.grace_period)


def _grid_steps() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The float sizes 1, 2, 3, ... (growing by `GRID_RATIO`), their integer parts deduplicated,
    and for each prefix of the sizes how many distinct integer parts it holds."""
    sizes, size = [], 1.0
    while size < 2.0**62:
        sizes.append(size)
        size = max(size + 1, size * GRID_RATIO)
    floats = np.asarray(sizes)
    whole = floats.astype(np.int64)
    distinct = np.concatenate([[0], np.cumsum(np.concatenate([[True], whole[1:] != whole[:-1]]))])
    return floats, np.unique(whole), distinct


_GRID_FLOATS, _GRID_SIZES, _GRID_DISTINCT = _grid_steps()
_FIRST_SIZE = _GRID_SIZES[:1].copy()


def _split_grid(max_blocks: int) -> np.ndarray:
    """1, 2, 3, 4, 5, 6, 7, 9, 11, ... blocks below `max_blocks`: every size up to 4, then growing by
    `GRID_RATIO` (at least [1]). Precomputed once; callers must not modify the returned array."""
    count = int(np.searchsorted(_GRID_FLOATS, max_blocks, side="left"))
    return _GRID_SIZES[: _GRID_DISTINCT[count]] if count else _FIRST_SIZE
