"""Canary analysis: gate values from what the candidate and the champion did. Pure code.

A gate reports `insufficient_data` until it has `min_samples` observations (or `min_labels`
labelled rows), so a rollout never passes, or fails, on a handful of requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from driftgate.monitoring.drift.statistics import jensen_shannon_distance
from driftgate.rollout.spec import Analysis

GateStatus = Literal["pass", "fail", "insufficient_data"]


@dataclass(slots=True)
class VersionSample:
    """One version's rows in the analysis window."""

    rows: int = 0
    errors: int = 0
    latencies_ms: np.ndarray = field(default_factory=lambda: np.empty(0))
    outputs: list[Any] = field(default_factory=list)
    confidences: np.ndarray | None = None  # max class probability per row, classifiers only
    # Against labels that arrived: 1.0 per correct row (classification) or the absolute error.
    label_scores: np.ndarray = field(default_factory=lambda: np.empty(0))
    classification: bool = True


@dataclass(slots=True)
class Gate:
    name: str
    value: float | None
    threshold: float
    op: Literal["<=", ">="]
    status: GateStatus
    samples: int
    needed: int

    def describe(self) -> str:
        if self.status == "insufficient_data":
            return f"{self.name}: insufficient data ({self.samples}/{self.needed})"
        word = "holds" if self.status == "pass" else "fails"
        return f"{self.name} {word}: {self.value:.4g} (must be {self.op} {self.threshold:g}, n={self.samples})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _gate(name: str, value: float | None, threshold: float, op: Literal["<=", ">="], n: int, need: int) -> Gate:
    if n < need or value is None:
        return Gate(name, value, threshold, op, "insufficient_data", n, need)
    ok = value <= threshold if op == "<=" else value >= threshold
    return Gate(name, float(value), threshold, op, "pass" if ok else "fail", n, need)


def agreement(pairs: Sequence[tuple[Any, Any]], tolerance: float, classification: bool = True) -> float | None:
    """Share of (candidate, champion) outputs that agree: equal labels, or numbers within `tolerance`
    relative difference for regression."""
    if not pairs:
        return None
    if classification:
        agree = sum(a == b or str(a) == str(b) for a, b in pairs)
    else:
        cand = np.asarray([a for a, _ in pairs], dtype=float)
        champ = np.asarray([b for _, b in pairs], dtype=float)
        agree = int((np.abs(cand - champ) <= tolerance * np.maximum(np.abs(champ), 1e-12)).sum())
    return agree / len(pairs)


def output_distance(candidate: Sequence[Any], champion: Sequence[Any], classification: bool) -> float | None:
    """Jensen-Shannon distance between the two versions' output distributions (0 same, 1 disjoint)."""
    if not candidate or not champion:
        return None
    if classification:
        keys = sorted({str(v) for v in candidate} | {str(v) for v in champion})
        index = {k: i for i, k in enumerate(keys)}
        a = np.bincount([index[str(v)] for v in candidate], minlength=len(keys)).astype(float)
        b = np.bincount([index[str(v)] for v in champion], minlength=len(keys)).astype(float)
        return jensen_shannon_distance(b, a)
    champ = np.asarray(champion, dtype=float)
    cand = np.asarray(candidate, dtype=float)
    edges = np.unique(np.quantile(champ, np.linspace(0, 1, 11)))
    if len(edges) < 2:
        edges = np.array([champ.min() - 0.5, champ.max() + 0.5])
    edges[0], edges[-1] = -np.inf, np.inf
    return jensen_shannon_distance(np.histogram(champ, edges)[0], np.histogram(cand, edges)[0])


def evaluate_gates(
    analysis: Analysis,
    candidate: VersionSample,
    champion: VersionSample,
    pairs: Sequence[tuple[Any, Any]],
) -> list[Gate]:
    """Every configured gate's value and verdict for the candidate."""
    need = analysis.min_samples
    gates: list[Gate] = []
    if analysis.max_error_rate is not None:
        rate = candidate.errors / candidate.rows if candidate.rows else None
        gates.append(_gate("error_rate", rate, analysis.max_error_rate, "<=", candidate.rows, need))
    if analysis.max_latency_p99_ms is not None:
        lat = candidate.latencies_ms
        p99 = float(np.percentile(lat, 99)) if len(lat) else None
        gates.append(_gate("latency_p99_ms", p99, analysis.max_latency_p99_ms, "<=", len(lat), need))
    if analysis.min_agreement is not None:
        value = agreement(pairs, analysis.agreement_tolerance, candidate.classification)
        gates.append(_gate("agreement", value, analysis.min_agreement, ">=", len(pairs), need))
    if analysis.max_prediction_drift is not None:
        n = min(len(candidate.outputs), len(champion.outputs))
        value = output_distance(candidate.outputs, champion.outputs, candidate.classification)
        gates.append(_gate("prediction_drift", value, analysis.max_prediction_drift, "<=", n, need))
    if analysis.min_accuracy is not None:
        scores = candidate.label_scores
        value = float(scores.mean()) if len(scores) and candidate.classification else None
        gates.append(_gate("accuracy", value, analysis.min_accuracy, ">=", len(scores), analysis.min_labels))
    if analysis.min_estimated_accuracy is not None:
        conf = candidate.confidences
        n = 0 if conf is None else len(conf)
        value = float(conf.mean()) if n else None
        gates.append(_gate("estimated_accuracy", value, analysis.min_estimated_accuracy, ">=", n, need))
    return gates


def summary(sample: VersionSample) -> dict[str, Any]:
    """Per-version figures shown beside the gates (also for strategies without gates)."""
    lat = sample.latencies_ms
    out: dict[str, Any] = {
        "rows": sample.rows,
        "errors": sample.errors,
        "error_rate": sample.errors / sample.rows if sample.rows else None,
        "latency_p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
        "latency_p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
        "labelled": len(sample.label_scores),
    }
    if len(sample.label_scores):
        key = "accuracy" if sample.classification else "mae"
        out[key] = float(sample.label_scores.mean())
    if sample.confidences is not None and len(sample.confidences):
        out["estimated_accuracy"] = float(sample.confidences.mean())
    if sample.outputs and sample.classification:
        values, counts = np.unique(np.asarray([str(v) for v in sample.outputs]), return_counts=True)
        out["class_share"] = {
            str(v): round(float(c) / len(sample.outputs), 4) for v, c in zip(values, counts, strict=True)
        }
    elif sample.outputs:
        arr = np.asarray(sample.outputs, dtype=float)
        out["prediction_mean"] = float(arr.mean())
    return out
