"""A candidate that burns 50 ms of pure-Python CPU per call (holding the GIL) before answering like
the champion: the worst neighbour a shadow can be. Registered as format `python`
(`slow_shadow:BusyModel`), so the server needs this folder on PYTHONPATH."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "serving"))
from model import FEATURES, TARGET, build_pipeline, make_data

BUSY_S = float(os.environ.get("SHADOW_BUSY_MS", "50")) / 1000


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class BusyModel:
    def __init__(self) -> None:
        ref = make_data(5000, seed=7)
        self.model = build_pipeline().fit(ref[FEATURES], ref[TARGET])
        self.classes_ = self.model.classes_

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        spin(BUSY_S)
        return self.model.predict(frame)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        spin(BUSY_S)
        return self.model.predict_proba(frame)
