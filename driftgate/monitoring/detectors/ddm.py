"""DDM, the Drift Detection Method (Gama et al. 2004) for a stream of 0/1 errors.

Same rule and defaults as River's `drift.binary.DDM`, so detections coincide: with p the error
rate since the last reset and s = sqrt(p (1 - p) / n), after `warm_start` values track the minimum
of p + s; warn above p_min + 2 s_min, detect above p_min + 3 s_min.

>>> import numpy as np
>>> rng = np.random.default_rng(42)
>>> errors = np.concatenate([rng.random(2000) < 0.1, rng.random(2000) < 0.4])
>>> DDM().update_many(errors).tolist()
[2293]
"""

from __future__ import annotations

import math

import numpy as np

from driftgate.monitoring.detectors.base import DriftDetector


class DDM(DriftDetector):
    def __init__(self, warm_start: int = 30, warning_threshold: float = 2.0, drift_threshold: float = 3.0) -> None:
        super().__init__()
        self.warm_start = warm_start
        self.warning_threshold = warning_threshold
        self.drift_threshold = drift_threshold
        self.reset()

    def reset(self) -> None:
        self._drift_detected = False
        self._warning_detected = False
        self._n = 0
        self._errors = 0.0
        self._p_min = math.inf
        self._s_min = math.inf
        self._ps_min = math.inf

    @property
    def warning_detected(self) -> bool:
        return self._warning_detected

    def update(self, x: float) -> bool:
        if self._drift_detected:
            self.reset()
        n = self._n = self._n + 1
        errors = self._errors = self._errors + x
        p = errors / n
        s = math.sqrt(p * (1 - p) / n)
        if n > self.warm_start:
            ps = p + s
            if ps <= self._ps_min:
                self._p_min, self._s_min, self._ps_min = p, s, ps
            p_min, s_min = self._p_min, self._s_min
            drift = self._drift_detected = ps > p_min + self.drift_threshold * s_min
            self._warning_detected = not drift and ps > p_min + self.warning_threshold * s_min
        return self._drift_detected

    def _scan(self, values: np.ndarray) -> int:
        """Consume values until the first detection; return its position or -1 (state then updated)."""
        n = self._n + np.arange(1, values.size + 1)
        errors = self._errors + np.cumsum(values)
        p = errors / n
        s = np.sqrt(p * (1 - p) / n)
        ps = p + s
        eligible = n > self.warm_start
        # Running minimum with ties won by the newer value, carried over from earlier batches.
        candidate = np.where(eligible, ps, np.inf)
        previous_min = np.minimum.accumulate(np.concatenate([[self._ps_min], candidate]))[:-1]
        is_new_min = eligible & (candidate <= previous_min)
        last_min = np.maximum.accumulate(np.where(is_new_min, np.arange(values.size), -1))
        p_min = np.where(last_min >= 0, p[np.maximum(last_min, 0)], self._p_min)
        s_min = np.where(last_min >= 0, s[np.maximum(last_min, 0)], self._s_min)
        drift = eligible & (ps > p_min + self.drift_threshold * s_min)
        hits = np.flatnonzero(drift)
        end = int(hits[0]) if hits.size else values.size - 1
        self._n, self._errors = int(n[end]), float(errors[end])
        self._p_min, self._s_min = float(p_min[end]), float(s_min[end])
        self._ps_min = self._p_min + self._s_min if math.isfinite(self._p_min) else math.inf
        self._warning_detected = bool(eligible[end] and ps[end] > p_min[end] + self.warning_threshold * s_min[end])
        if hits.size:
            self._warning_detected = False
            return end
        return -1
