"""Drift of live traffic: the logged predictions of a window against the version's reference data.

Not pure (it reads the store); the statistics come from the pure `monitoring.drift` package.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pandas as pd

from driftgate.core.refs import VersionRef
from driftgate.errors import BadRequest
from driftgate.monitoring.drift import compare_frames
from driftgate.monitoring.live_performance import live_performance
from driftgate.monitoring.scoring import ScoringVersion
from driftgate.monitoring.window_metrics import ANSWERED
from driftgate.registry.reference import from_parquet
from driftgate.store import Store

PREDICTION = "__prediction__"
DEFAULT_WINDOW = 5000
MIN_ROWS = 10


class LiveDrift:
    """Computes drift reports for endpoints; reference frames and their scores are cached per version."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._references: dict[VersionRef, tuple[pd.DataFrame, np.ndarray | None, np.ndarray | None]] = {}
        self._lock = threading.Lock()
        self.latest: dict[str, dict[str, Any]] = {}

    def _reference(self, version: ScoringVersion) -> tuple[pd.DataFrame, np.ndarray | None, np.ndarray | None]:
        """(reference features, model score on them, reference target)."""
        with self._lock:
            hit = self._references.get(version.ref)
            if hit is not None:
                return hit
            blob = self.store.models.blob(version.ref.model, version.ref.version, "reference")
            if blob is None:
                raise BadRequest(
                    f"model {version.ref} was registered without reference data, so there is nothing to compare "
                    "live traffic with; register a version with `reference`",
                    model=version.ref.model,
                )
            frame = from_parquet(blob)
            record = self.store.models.get(version.ref.model, version.ref.version)
            target = frame[record.target].to_numpy() if record.target and record.target in frame else None
            features = frame[version.schema.names]
            preds, proba = version.score(
                version.schema.to_frame({n: features[n].tolist() for n in features}, len(features))
            )
            hit = (features, _score_column(preds, proba), target)
            self._references[version.ref] = hit
            return hit

    def report(
        self,
        endpoint: str,
        version: ScoringVersion,
        *,
        last: int | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> dict[str, Any]:
        if last is not None and not 1 <= last <= 1_000_000:
            raise BadRequest(f"last must be between 1 and 1000000, got {last}", field="last")
        if last is None and since is None:
            last = DEFAULT_WINDOW
        rows = self.store.predictions.window(endpoint, last=last, since=since, until=until)
        rows = [r for r in rows if r["model"] == version.ref.model]
        return self.compare(endpoint, version, rows)

    def compare(
        self,
        endpoint: str,
        version: ScoringVersion,
        rows: list[dict[str, Any]],
        *,
        baseline_rows: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The drift report of logged `rows` (store rows, oldest first) against the version's
        reference data, or against `baseline_rows` (a past window of the same endpoint) when given."""
        rows = [r for r in rows if r["status"] in ANSWERED]
        if baseline_rows is None:
            reference, ref_scores, ref_target = self._reference(version)
        else:
            reference, ref_scores, ref_target = _baseline(baseline_rows, version.schema.names)
        if len(rows) < MIN_ROWS:
            raise BadRequest(
                f"the window holds {len(rows)} logged predictions of endpoint {endpoint!r}; drift needs at least "
                f"{MIN_ROWS}",
                endpoint=endpoint,
            )
        current = pd.DataFrame([r["inputs"] for r in rows]).reindex(columns=reference.columns)
        cur_scores = _score_column(
            np.asarray([r["output"] for r in rows], dtype=object),
            np.asarray([r["probabilities"] for r in rows], dtype=float) if rows[0]["probabilities"] else None,
        )
        ref_cols = {name: reference[name].to_numpy() for name in reference.columns}
        cur_cols = {name: current[name].to_numpy() for name in current.columns}
        if ref_scores is not None and cur_scores is not None:
            ref_cols[PREDICTION], cur_cols[PREDICTION] = ref_scores, cur_scores
        # The serving schema's kinds: the reference's `bool` column and the log's 0.0 / 1.0 are one
        # boolean feature, read the same way here as by `driftgate drift report` (drift.kinds).
        kinds = {f.name: f.kind for f in version.schema.features}
        drift = compare_frames(
            ref_cols, cur_cols, feature_types=kinds, prediction=PREDICTION if PREDICTION in ref_cols else None
        )
        labelled = [i for i, r in enumerate(rows) if r["label"] is not None]
        # Realised on the labelled rows, estimated on every row of the window (live_performance).
        drift.performance = live_performance(version, reference, ref_target, rows, baseline_rows=baseline_rows)
        body = drift.to_dict(include_histograms=True)
        body["window"] = {
            "endpoint": endpoint,
            "model": version.ref.model,
            "version": version.ref.version,
            "rows": len(rows),
            "labelled": len(labelled),
            "from": rows[0]["ts"],
            "to": rows[-1]["ts"],
            "computed_at": time.time(),
        }
        if baseline_rows is not None:
            body["window"]["baseline"] = {
                "rows": len(reference),
                "from": baseline_rows[0]["ts"],
                "to": baseline_rows[-1]["ts"],
            }
        self.latest[endpoint] = body
        return body


def _score_column(preds: np.ndarray, proba: np.ndarray | None) -> np.ndarray | None:
    """The output monitored for prediction drift: the positive-class probability for binary
    classifiers (more sensitive than labels), the predicted value for regression, else labels."""
    if proba is not None and proba.ndim == 2 and proba.shape[1] == 2:
        return proba[:, 1].astype(float)
    try:
        return preds.astype(float)
    except (TypeError, ValueError):
        return preds.astype(str)


def _baseline(
    rows: list[dict[str, Any]], names: list[str]
) -> tuple[pd.DataFrame, np.ndarray | None, np.ndarray | None]:
    """(features, scores, labels with None where unlabelled) of a past window used as the reference."""
    rows = [r for r in rows if r["status"] in ANSWERED]
    if len(rows) < MIN_ROWS:
        raise BadRequest(
            f"the baseline window holds {len(rows)} logged predictions; drift needs at least {MIN_ROWS}",
            field="baseline_since",
        )
    frame = pd.DataFrame([r["inputs"] for r in rows]).reindex(columns=names)
    scores = _score_column(
        np.asarray([r["output"] for r in rows], dtype=object),
        np.asarray([r["probabilities"] for r in rows], dtype=float) if rows[0]["probabilities"] else None,
    )
    labels = np.asarray([r["label"] for r in rows], dtype=object)
    return frame, scores, None if all(v is None for v in labels) else labels
