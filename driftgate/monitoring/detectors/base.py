"""What every streaming drift detector offers: `update(x)`, `update_many(xs)` and `drift_detected`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

import numpy as np


class DriftDetector(ABC):
    """A detector watches one stream (an error indicator, a loss, a score) for a change in its mean.

    After a detection the next value starts a fresh detector, as River's detectors do.
    """

    def __init__(self) -> None:
        self._drift_detected = False

    @property
    def drift_detected(self) -> bool:
        """Whether the latest value (or the last value of the latest batch) triggered a detection."""
        return self._drift_detected

    @abstractmethod
    def reset(self) -> None:
        """Forget everything seen so far."""

    @abstractmethod
    def update(self, x: float) -> bool:
        """Feed one value; returns `drift_detected`."""

    @abstractmethod
    def _scan(self, values: np.ndarray) -> int:
        """Vectorised core: consume `values` up to the first detection and return its position,
        or consume all of them and return -1."""

    # Values scanned per vectorised step: big enough to amortise numpy calls, small enough that
    # the work redone after a detection (the rest of a chunk) stays cheap.
    chunk_size = 1 << 16

    def update_many(self, values: Iterable[float] | np.ndarray) -> np.ndarray:
        """Feed many values at once; returns the positions (within `values`) that triggered a detection.

        Gives the same detections as calling `update` on each value in turn, only much faster.
        """
        array = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=np.float64).ravel()
        if array.size == 0:
            return np.zeros(0, dtype=np.int64)
        if self._drift_detected:
            self.reset()
        detections: list[int] = []
        start = 0
        while start < array.size:
            found = self._scan(array[start : start + self.chunk_size])
            if found < 0:
                start += self.chunk_size
                continue
            detections.append(start + found)
            start += found + 1
            self.reset()
        self._drift_detected = bool(detections and detections[-1] == array.size - 1)
        return np.asarray(detections, dtype=np.int64)
