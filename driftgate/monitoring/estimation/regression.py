"""Label-free MAE and RMSE of a regressor: direct loss estimation (DLE).

A second model learns the first one's error from the inputs and its prediction, on the labelled
reference: one gradient-boosting regressor for the absolute error, one for the squared error.
On unlabelled rows the estimated MAE is the mean predicted absolute error and the RMSE the square
root of the mean predicted squared error. Valid under covariate shift, as long as the reference
covers the region the inputs moved to. scikit-learn is imported when a DLE is fitted, not before.

Bands and alert thresholds as for classifiers (`classification.MetricEstimate`): the spread of the
realised metric over reference chunks, scaled to the window's size; MAE and RMSE alert above.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftgate.monitoring.estimation.classification import BAND_SIGMAS, ChunkSpread, MetricEstimate, chunk_spread

METRICS = ("mae", "rmse")
MAX_CATEGORIES = 64


@dataclass(frozen=True)
class Encoder:
    """Columns to a float matrix: numbers as they are, categories as codes of their reference levels
    (an unseen level or a missing value is NaN, which gradient boosting routes on its own)."""

    names: list[str]
    levels: dict[str, dict[str, int]]  # categorical column -> level -> code

    @classmethod
    def fit(cls, columns: Mapping[str, np.ndarray]) -> Encoder:
        levels: dict[str, dict[str, int]] = {}
        for name, values in columns.items():
            if _numeric(values) is None:
                counts: dict[str, int] = {}
                for v in values:
                    if v is not None and v == v:
                        counts[str(v)] = counts.get(str(v), 0) + 1
                top = sorted(counts, key=lambda k: -counts[k])[:MAX_CATEGORIES]
                levels[name] = {level: i for i, level in enumerate(top)}
        return cls(list(columns), levels)

    def __call__(self, columns: Mapping[str, np.ndarray], prediction: np.ndarray) -> np.ndarray:
        n = len(prediction)
        out = np.full((n, len(self.names) + 1), np.nan)
        for j, name in enumerate(self.names):
            values = columns.get(name)
            if values is None:
                continue
            if name in self.levels:
                codes = self.levels[name]
                out[:, j] = [codes.get(str(v), np.nan) if v is not None else np.nan for v in values]
            else:
                numbers = _numeric(values)
                out[:, j] = numbers if numbers is not None else np.nan
        out[:, -1] = np.asarray(prediction, dtype=np.float64)
        return out


def _numeric(values: np.ndarray) -> np.ndarray | None:
    values = np.asarray(values)
    if values.dtype.kind in "biuf":
        return values.astype(np.float64)
    try:
        return np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _regressor(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    # Leaves of at least 40 rows: the error is noisy and an overfitted error model reads noise as loss.
    return HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, min_samples_leaf=40, random_state=seed)


def _one_thread() -> Any:
    """OpenMP's thread pool spins on busy cores: on a shared 2-core machine a 1.4 s fit took 74 s with
    the default pool. The monitor runs beside serving, so one thread is the right size anyway."""
    import sklearn.ensemble  # noqa: F401 - loads the OpenMP runtime first: the limit covers loaded libraries only
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _losses(target: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    error = np.asarray(target, dtype=np.float64) - np.asarray(prediction, dtype=np.float64)
    if not len(error):
        return {"mae": math.nan, "rmse": math.nan}
    return {"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error**2)))}


@dataclass(frozen=True)
class RegressionEstimator:
    encoder: Encoder
    absolute: Any  # fitted regressor of |error|
    squared: Any  # fitted regressor of error^2
    reference: dict[str, float]
    spread: ChunkSpread | None

    @classmethod
    def fit(
        cls,
        columns: Mapping[str, np.ndarray],
        prediction: np.ndarray,
        target: Sequence[Any] | np.ndarray,
        seed: int = 0,
    ) -> RegressionEstimator:
        """`columns`: the reference inputs (name -> values); rows with a missing target are left out."""
        target_f = np.asarray([np.nan if v is None else float(v) for v in target], dtype=np.float64)
        known = np.isfinite(target_f)
        prediction = np.asarray(prediction, dtype=np.float64)[known]
        target_f = target_f[known]
        kept = {name: np.asarray(values)[known] for name, values in columns.items()}
        encoder = Encoder.fit(kept)
        design = encoder(kept, prediction)
        error = target_f - prediction
        with _one_thread():
            absolute = _regressor(seed).fit(design, np.abs(error))
            squared = _regressor(seed).fit(design, error**2)
        spread = chunk_spread(len(error), lambda index: _losses(target_f[index], prediction[index]), METRICS)
        return cls(encoder, absolute, squared, _losses(target_f, prediction), spread)

    def expected_absolute_errors(self, columns: Mapping[str, np.ndarray], prediction: np.ndarray) -> np.ndarray:
        design = self.encoder(columns, np.asarray(prediction, dtype=np.float64))
        with _one_thread():
            return np.maximum(self.absolute.predict(design), 0.0)

    def estimate(self, columns: Mapping[str, np.ndarray], prediction: np.ndarray) -> dict[str, MetricEstimate]:
        prediction = np.asarray(prediction, dtype=np.float64)
        n = len(prediction)
        if n == 0:
            return {name: MetricEstimate(math.nan) for name in METRICS}
        design = self.encoder(columns, prediction)
        with _one_thread():
            values = {
                "mae": float(np.mean(np.maximum(self.absolute.predict(design), 0.0))),
                "rmse": float(np.sqrt(np.mean(np.maximum(self.squared.predict(design), 0.0)))),
            }
        out = {}
        for name in METRICS:
            se = self.spread.at(name, n) if self.spread else None
            reference = self.reference[name]
            above = reference + BAND_SIGMAS * se if se is not None else None
            out[name] = MetricEstimate(values[name], se, reference, alert_above=above)
        return out

    @staticmethod
    def realised(target: Sequence[Any] | np.ndarray, prediction: np.ndarray) -> dict[str, float]:
        target_f = np.asarray([np.nan if v is None else float(v) for v in target], dtype=np.float64)
        known = np.isfinite(target_f)
        return _losses(target_f[known], np.asarray(prediction, dtype=np.float64)[known]) | {"n": float(known.sum())}
