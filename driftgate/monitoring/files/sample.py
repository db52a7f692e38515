"""A uniform row sample of a file, batch by batch, in bounded memory."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from driftgate.monitoring.drift.kinds import FeatureKind
from driftgate.monitoring.files.columns import column_rows


class RowSample:
    """Uniform sample of rows without replacement: the rows with the `size` smallest random keys,
    in key order (so any prefix is itself a uniform sample).

    Candidates are buffered and cut back to `size` rows only when the buffer doubles; a batch
    offers at most its own `size` smallest keys, and only those rows are converted to numpy.
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size, self.seed = size, seed
        self._rng = np.random.default_rng(seed)
        self._keys: list[np.ndarray] = []
        self._parts: dict[str, list[np.ndarray]] = {}
        self._buffered = 0
        self._threshold = math.inf  # a key at or above this cannot enter any more
        self._settled = True

    def add(
        self, batch: pa.RecordBatch, kinds: dict[str, FeatureKind], floats: dict[str, np.ndarray] | None = None
    ) -> None:
        """Offer every row of `batch`; only rows that can enter the sample are converted to numpy.

        floats: numeric columns of the batch already converted with `as_floats` (reused, not redone).
        """
        keys = self._rng.random(batch.num_rows)
        chosen = self._candidates(keys)
        if chosen is not None:
            keys = keys[chosen]
        for name, kind in kinds.items():
            known = floats.get(name) if floats is not None and kind.is_numeric else None
            if known is not None:
                part = known if chosen is None else known[chosen]
            else:
                part = column_rows(batch.column(name), kind, chosen)
            self._parts.setdefault(name, []).append(part)
        self._keys.append(keys)
        self._buffered += keys.size
        self._settled = False
        if self._buffered >= 2 * self.size:
            self._settle()

    def _candidates(self, keys: np.ndarray) -> np.ndarray | None:
        """The sorted rows of a batch that may enter the sample (None: all of them)."""
        chosen = np.flatnonzero(keys < self._threshold) if self._threshold < math.inf else None
        if (keys.size if chosen is None else chosen.size) > self.size:  # beyond its own bottom `size`: never kept
            pool = keys if chosen is None else keys[chosen]
            bottom = np.argpartition(pool, self.size - 1)[: self.size]
            chosen = np.sort(bottom if chosen is None else chosen[bottom])
        return chosen

    def _settle(self) -> None:
        if self._settled:
            return
        keys = np.concatenate(self._keys) if self._keys else np.zeros(0)
        keep = np.argpartition(keys, self.size)[: self.size] if keys.size > self.size else np.arange(keys.size)
        keep = keep[np.argsort(keys[keep])]  # key order
        self._keys = [keys[keep]]
        self._parts = {name: [np.concatenate(parts)[keep]] for name, parts in self._parts.items()}
        self._buffered = keep.size
        if keep.size >= self.size:
            self._threshold = float(keys[keep[-1]])
        self._settled = True

    @property
    def keys(self) -> np.ndarray:
        self._settle()
        return self._keys[0] if self._keys else np.zeros(0)

    @property
    def columns(self) -> dict[str, np.ndarray]:
        self._settle()
        return {name: parts[0] for name, parts in self._parts.items()}

    def head(self, rows: int) -> dict[str, np.ndarray]:
        return {name: values[:rows] for name, values in self.columns.items()}
