"""Page-Hinkley test for a change in the mean of a stream (two-sided CUSUM on deviations).

Difference from River's `drift.PageHinkley`: `delta` and `threshold` are in units of the stream's
standard deviation (estimated since the last reset) unless `scale` fixes the unit. River's
defaults (delta 0.005, threshold 50 in raw units) fire hundreds of times on calm unit-variance
data; ours (delta 0.25 sd, threshold 25 sd) follow CUSUM theory: about one false alarm per
million calm values, delay about 105 values for a 0.5 sd shift. `PageHinkley(delta=0.005,
threshold=50, alpha=0.9999, scale=1.0)` reproduces River's defaults.

>>> import numpy as np
>>> rng = np.random.default_rng(7)
>>> stream = np.concatenate([rng.normal(0, 1, 5000), rng.normal(1, 1, 1000)])
>>> PageHinkley().update_many(stream).tolist()
[5032]
"""

from __future__ import annotations

import math

import numpy as np

from driftgate.errors import InvalidInput
from driftgate.monitoring.detectors.base import DriftDetector

MIN_SCALE = 1e-12  # keeps a constant stream's first change finite rather than a division by zero


class PageHinkley(DriftDetector):
    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.25,
        threshold: float = 25.0,
        alpha: float = 1.0,
        mode: str = "both",
        scale: float | None = None,
    ) -> None:
        super().__init__()
        if mode not in ("up", "down", "both"):
            raise InvalidInput(f"mode must be 'up', 'down' or 'both'. Got {mode!r} instead.")
        if not 0 < alpha <= 1:
            raise InvalidInput(f"alpha (forgetting factor) must be in (0, 1]. Got {alpha} instead.")
        self.min_instances, self.delta, self.threshold = min_instances, delta, threshold
        self.alpha, self.mode, self.scale = alpha, mode, scale
        if alpha < 1:  # fading sums are computed as alpha^i * cumsum(alpha^-j e_j): keep alpha^-j small
            self.chunk_size = max(256, min(self.chunk_size, int(13.8 / -math.log(alpha))))
        self.reset()

    def reset(self) -> None:
        self._drift_detected = False
        self._n = 0
        self._shift = 0.0
        self._sum = 0.0  # of x - shift, for the running mean
        self._sum_sq = 0.0  # of (x - shift)^2, for the running standard deviation
        self._sum_increase = 0.0
        self._sum_decrease = 0.0
        self._min_increase = math.inf
        self._max_decrease = -1.0  # River's initial value, kept so that its detections are reproduced

    def _unit(self, n: np.ndarray | int, total: np.ndarray | float, total_sq: np.ndarray | float) -> np.ndarray:
        if self.scale is not None:
            return np.asarray(self.scale, dtype=np.float64)
        n_arr = np.asarray(n, dtype=np.float64)
        variance = np.divide(
            np.asarray(total_sq) - np.asarray(total) ** 2 / n_arr, n_arr - 1, out=np.zeros_like(n_arr), where=n_arr > 1
        )
        return np.maximum(np.sqrt(np.maximum(variance, 0.0)), MIN_SCALE)

    def _tests(
        self,
        increase: float | np.ndarray,
        min_increase: float | np.ndarray,
        decrease: float | np.ndarray,
        max_decrease: float | np.ndarray,
    ) -> np.ndarray:
        up = np.asarray(increase) - np.asarray(min_increase) > self.threshold
        down = np.asarray(max_decrease) - np.asarray(decrease) > self.threshold
        return up if self.mode == "up" else down if self.mode == "down" else up | down

    def update(self, x: float) -> bool:
        # Scalar twin of `_scan` in plain floats (same operations in the same order, so the same
        # values as the numpy path bit for bit), which is what makes one call cheap.
        if self._drift_detected:
            self.reset()
        value = float(x)
        if self._n == 0:
            self._shift = value
        n = self._n = self._n + 1
        value -= self._shift
        total = self._sum = self._sum + value
        total_sq = self._sum_sq = self._sum_sq + value * value
        if self.scale is not None:
            unit = float(self.scale)
        else:
            variance = (total_sq - total * total / n) / (n - 1) if n > 1 else 0.0
            unit = max(math.sqrt(max(variance, 0.0)), MIN_SCALE) if variance == variance else variance
        deviation = (value - total / n) / unit
        increase = self._sum_increase = self.alpha * self._sum_increase + deviation - self.delta
        decrease = self._sum_decrease = self.alpha * self._sum_decrease + deviation + self.delta
        self._min_increase = min(self._min_increase, increase)
        self._max_decrease = max(self._max_decrease, decrease)
        if n >= self.min_instances:
            up = increase - self._min_increase > self.threshold
            down = self._max_decrease - decrease > self.threshold
            self._drift_detected = up if self.mode == "up" else down if self.mode == "down" else up or down
        return self._drift_detected

    def _scan(self, values: np.ndarray) -> int:
        if self._n == 0:
            self._shift = float(values[0])
        shifted = values - self._shift
        n = self._n + np.arange(1, values.size + 1)
        total = self._sum + np.cumsum(shifted)
        total_sq = self._sum_sq + np.cumsum(shifted * shifted)
        deviation = (shifted - total / n) / self._unit(n, total, total_sq)
        increase = self._fading_sum(self._sum_increase, deviation - self.delta)
        decrease = self._fading_sum(self._sum_decrease, deviation + self.delta)
        min_increase = np.minimum.accumulate(np.minimum(increase, self._min_increase))
        max_decrease = np.maximum.accumulate(np.maximum(decrease, self._max_decrease))
        hits = np.flatnonzero((n >= self.min_instances) & self._tests(increase, min_increase, decrease, max_decrease))
        end = int(hits[0]) if hits.size else values.size - 1
        self._n, self._sum, self._sum_sq = int(n[end]), float(total[end]), float(total_sq[end])
        self._sum_increase, self._sum_decrease = float(increase[end]), float(decrease[end])
        self._min_increase, self._max_decrease = float(min_increase[end]), float(max_decrease[end])
        return end if hits.size else -1

    def _fading_sum(self, start: float, steps: np.ndarray) -> np.ndarray:
        """s_i = alpha * s_(i-1) + steps_i for all i at once."""
        if self.alpha == 1.0:
            return start + np.cumsum(steps)
        powers = self.alpha ** np.arange(1, steps.size + 1)
        return powers * (start + np.cumsum(steps / powers))
