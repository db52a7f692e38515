"""Concept drift from the error stream of labelled predictions. Pure: numpy and the detectors.

Classification: the 0/1 error stream goes to ADWIN; regression: the absolute errors go to
Page-Hinkley. DDM is not used by default: with River's rule it fired on about half of calm
5,000-value error streams (p = 0.1, 100 seeds; 16 % even with `warm_start=300`), ADWIN on none,
with a delay of about 55 values for a 0.1 -> 0.6 error-rate jump. Only rises of the error count:
a drop (a fixed model, a rollback) is a change too, but not one to alert on.

The stream covers labelled rows *before* the window as well (a detector needs a calm stretch to
see a change against), and the verdict is whether a detector fired at a position inside the
window; the caller marks those positions (the live monitor: rows predicted in the window, or
whose label arrived in it, so that a change whose labels come late is still reported once).
Stateless on purpose: recomputing over the labelled history on every run gives the same answer on
every replica and after a restart, and labels that arrive late, in any order or rewritten, are
simply part of the next run's stream, which detector state kept in memory would get wrong.

>>> import numpy as np
>>> rng = np.random.default_rng(3)
>>> errors = np.concatenate([rng.random(1000) < 0.1, rng.random(300) < 0.6]).astype(float)
>>> result = detect_concept_drift(errors, np.arange(1300.0), task="classification", in_window=np.arange(1300) >= 1000)
>>> result.fired, result.detector
(True, 'ADWIN')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftgate.monitoring.detectors import ADWIN, DriftDetector, PageHinkley


@dataclass(frozen=True)
class ConceptDrift:
    fired: bool
    detector: str | None = None
    index: int | None = None  # position in the error stream of the first detection inside the window
    ts: float | None = None  # prediction time of that row
    n: int = 0  # length of the error stream
    n_window: int = 0  # of which inside the window
    detections: dict[str, list[int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fired": self.fired,
            "detector": self.detector,
            "index": self.index,
            "ts": self.ts,
            "n": self.n,
            "n_window": self.n_window,
            "detections": self.detections,
        }


def error_stream(task: str, labels: Sequence[Any], predictions: Sequence[Any]) -> np.ndarray:
    """0/1 errors for classification (label != prediction), absolute errors for regression."""
    if task == "regression":
        return np.abs(np.asarray(labels, dtype=np.float64) - np.asarray(predictions, dtype=np.float64))
    return np.fromiter((_key(a) != _key(b) for a, b in zip(labels, predictions, strict=True)), float, len(labels))


def _key(value: Any) -> Any:
    # JSON round trips turn 1 into 1.0 or "1" into 1 depending on the client; compare by text form.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def detectors_for(task: str) -> dict[str, DriftDetector]:
    if task == "regression":
        return {"PageHinkley": PageHinkley()}
    return {"ADWIN": ADWIN()}


def _rises(errors: np.ndarray, hits: np.ndarray) -> list[int]:
    """The detections after which errors are higher than before (since the previous detection)."""
    kept, previous = [], 0
    for h in (int(x) for x in hits):
        recent = max(1, min(100, (h + 1 - previous) // 2))
        before, after = errors[previous : h + 1 - recent], errors[h + 1 - recent : h + 1]
        if before.size and after.mean() > before.mean():
            kept.append(h)
        previous = h + 1
    return kept


def detect_concept_drift(
    errors: np.ndarray,
    ts: np.ndarray,
    *,
    task: str,
    in_window: np.ndarray,
    detectors: dict[str, DriftDetector] | None = None,
) -> ConceptDrift:
    """Feed `errors` (in prediction-time order) to the task's detectors (or `detectors`); fired if a
    detection of a rise falls where `in_window` is true. The earliest such detection is reported."""
    errors = np.asarray(errors, dtype=np.float64)
    in_window = np.asarray(in_window, dtype=bool)
    detections: dict[str, list[int]] = {}
    best: tuple[int, str] | None = None
    for name, detector in (detectors or detectors_for(task)).items():
        hits = _rises(errors, detector.update_many(errors)) if errors.size else []
        detections[name] = hits
        inside = [h for h in hits if in_window[h]]
        if inside and (best is None or inside[0] < best[0]):
            best = (inside[0], name)
    n_window = int(in_window.sum())
    if best is None:
        return ConceptDrift(False, n=int(errors.size), n_window=n_window, detections=detections)
    index, name = best
    return ConceptDrift(True, name, index, float(ts[index]), int(errors.size), n_window, detections)
