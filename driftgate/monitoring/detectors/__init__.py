"""Streaming concept-drift detectors (pure: numpy only): `update(x)`, `update_many(xs)`, `drift_detected`."""

from driftgate.monitoring.detectors.adwin import ADWIN
from driftgate.monitoring.detectors.base import DriftDetector
from driftgate.monitoring.detectors.ddm import DDM
from driftgate.monitoring.detectors.page_hinkley import PageHinkley

__all__ = ["ADWIN", "DDM", "DriftDetector", "PageHinkley"]
