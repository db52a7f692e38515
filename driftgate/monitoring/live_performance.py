"""The performance section of a live drift report: realised on the labelled rows of the window,
estimated (CBPE / DLE) on *every* row of it. Not pure: it scores the reference with the model.

The decision is the model's own: on the reference its `predict` (as served), on live rows the
logged output. Estimators are fitted once per model version and process (the reference's scores,
isotonic calibrators, a regressor's loss models) and kept in a small cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from driftgate.core.refs import VersionRef
from driftgate.monitoring.performance import Estimator, fit_estimator, performance_report, task_of
from driftgate.monitoring.scoring import ScoringVersion
from driftgate.monitoring.window_metrics import ANSWERED

CACHED_VERSIONS = 16


class _Fitted:
    def __init__(
        self, predictions: np.ndarray, scores: np.ndarray | None, estimator: Estimator | None, task: str
    ) -> None:
        self.predictions, self.scores, self.estimator, self.task = predictions, scores, estimator, task


# Keyed by the loaded version object as well as its name: two stores in one process (tests, a CLI
# beside a server) may both have a `clf` v1, with other reference data.
_cache: OrderedDict[VersionRef, tuple[ScoringVersion, int, _Fitted]] = OrderedDict()
_lock = threading.Lock()


def _object_array(values: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def _scores(version: ScoringVersion, probabilities: Sequence[Any]) -> np.ndarray | None:
    """(n, k) class probabilities when every row has them (k = the model's classes), else None."""
    classes = version.classes
    if not classes or not len(probabilities) or any(p is None or len(p) != len(classes) for p in probabilities):
        return None
    matrix = np.asarray(probabilities, dtype=np.float64)
    return matrix if np.all(np.isfinite(matrix)) else None


def _columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {str(name): frame[name].to_numpy() for name in frame.columns}


def _reference_fit(version: ScoringVersion, reference: pd.DataFrame, target: np.ndarray) -> _Fitted:
    with _lock:
        hit = _cache.get(version.ref)
        if hit is not None and hit[0] is version and hit[1] == len(reference):
            _cache.move_to_end(version.ref)
            return hit[2]
    frame = version.schema.to_frame({n: reference[n].tolist() for n in reference.columns}, len(reference))
    preds, proba = version.score(frame)
    predictions = _object_array(list(preds))
    scores = None
    if version.classes and proba is not None and np.ndim(proba) == 2 and np.shape(proba)[1] == len(version.classes):
        scores = np.asarray(proba, dtype=np.float64)
    fitted = _fit(version, target, predictions, scores, _columns(reference))
    with _lock:
        _cache[version.ref] = (version, len(reference), fitted)
        while len(_cache) > CACHED_VERSIONS:
            _cache.popitem(last=False)
    return fitted


def _fit(
    version: ScoringVersion,
    target: np.ndarray,
    predictions: np.ndarray,
    scores: np.ndarray | None,
    features: dict[str, np.ndarray],
) -> _Fitted:
    regression = version.output.get("kind") != "classification"
    if regression:
        predictions = np.asarray([np.nan if p is None else float(p) for p in predictions], dtype=np.float64)
    task = "regression" if regression else task_of(target, predictions, scores if scores is not None else None)
    if task == "probability":  # labels predicted as numbers in [0, 1]: still labels here
        task = "classification"
    known = np.asarray([t is not None and t == t for t in target], dtype=bool)
    estimator = fit_estimator(
        task,
        np.asarray(target[known].tolist()),
        predictions[known],
        reference_scores=None if scores is None else scores[known],
        classes=version.classes,
        reference_features={name: values[known] for name, values in features.items()},
    )
    return _Fitted(predictions, scores, estimator, task)


def live_performance(
    version: ScoringVersion,
    reference: pd.DataFrame,
    reference_target: np.ndarray | None,
    rows: Sequence[dict[str, Any]],
    *,
    baseline_rows: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """`performance_report` of the window's `rows` (store rows the model answered) against the
    version's labelled reference, or against the labelled rows of `baseline_rows` when given."""
    if baseline_rows is not None:
        base = [r for r in baseline_rows if r["status"] in ANSWERED]
        target = _object_array([r["label"] for r in base])
        if all(t is None for t in target):
            return {}
        names = list(reference.columns)
        inputs = pd.DataFrame([r["inputs"] or {} for r in base]).reindex(columns=names)
        fitted = _fit(
            version,
            target,
            _object_array([r["output"] for r in base]),
            _scores(version, [r["probabilities"] for r in base]),
            _columns(inputs),
        )
    elif reference_target is None:
        return {}
    else:
        target = np.asarray(reference_target, dtype=object)
        fitted = _reference_fit(version, reference, target)
    outputs = _object_array([r["output"] for r in rows])
    if fitted.task == "regression":
        outputs = np.asarray([np.nan if o is None else float(o) for o in outputs], dtype=np.float64)
    current = pd.DataFrame([r["inputs"] or {} for r in rows]).reindex(columns=list(reference.columns))
    return performance_report(
        target,
        fitted.predictions,
        _object_array([r["label"] for r in rows]),
        outputs,
        reference_scores=fitted.scores,
        current_scores=_scores(version, [r["probabilities"] for r in rows]),
        classes=version.classes,
        current_features=_columns(current),
        estimator=fitted.estimator,
        task=fitted.task,
    )
