"""Canary analysis: gate values from what the candidate and the champion did. Pure code.

A gate reports `insufficient_data` until it has `min_samples` observations (or `min_labels`
labelled rows), so a rollout never passes, or fails, on a handful of requests.

The rate gates (error rate, latency p99 as the share of requests over the limit, agreement,
accuracy) pass while their estimate holds, and fail only on evidence that the candidate breaks them
(`sequential.py`: an anytime-valid test, so checking every second does not fail good candidates by
chance). Past the limit without that evidence yet they are `inconclusive`: the step holds while more
data comes. `confidence` bounds the chance that a candidate within every limit is ever failed
(split evenly over the rate gates). The other gates compare their estimate with the limit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from driftgate.monitoring.drift.statistics import jensen_shannon_distance
from driftgate.rollout.sequential import Side, log_evidence
from driftgate.rollout.spec import Analysis

GateStatus = Literal["pass", "fail", "inconclusive", "insufficient_data"]
EVIDENCE_CAP = 1e12  # e-values are reported up to this (they grow exponentially with data)
TAIL = 0.01  # the latency gate: a p99 under the limit is at most 1 % of requests over it


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
    # Rate gates: the e-value against "the candidate is within the limit", and the one that fails it.
    evidence: float | None = None
    evidence_needed: float | None = None

    def describe(self) -> str:
        if self.status == "insufficient_data":
            return f"{self.name}: insufficient data ({self.samples}/{self.needed})"
        word = {"pass": "holds", "fail": "fails", "inconclusive": "inconclusive"}[self.status]
        text = f"{self.name} {word}: {self.value:.4g} (must be {self.op} {self.threshold:g}, n={self.samples}"
        if self.evidence is not None and self.status != "pass":
            text += f", evidence {self.evidence:.3g} of {self.evidence_needed:g} to fail"
        return text + ")"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _gate(
    name: str,
    value: float | None,
    threshold: float,
    op: Literal["<=", ">="],
    n: int,
    need: int,
    test: tuple[float, float, Side, float] | None = None,
) -> Gate:
    """`test`: (events, limit on their rate, side, alpha) for a rate gate; it fails only on evidence."""
    if n < need or value is None:
        return Gate(name, value, threshold, op, "insufficient_data", n, need)
    ok = value <= threshold if op == "<=" else value >= threshold
    if test is None:
        return Gate(name, float(value), threshold, op, "pass" if ok else "fail", n, need)
    hits, limit, side, alpha = test
    evidence = min(math.exp(min(log_evidence(hits, n, limit, side), 700.0)), EVIDENCE_CAP)
    status: GateStatus = "pass" if ok else "fail" if evidence >= 1 / alpha else "inconclusive"
    return Gate(name, float(value), threshold, op, status, n, need, round(evidence, 4), round(1 / alpha, 4))


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
    rate_gates = sum(
        x is not None
        for x in (analysis.max_error_rate, analysis.max_latency_p99_ms, analysis.min_agreement, analysis.min_accuracy)
    )
    alpha = (1 - analysis.confidence) / max(rate_gates, 1)
    gates: list[Gate] = []
    test: tuple[float, float, Side, float]
    if analysis.max_error_rate is not None:
        rate = candidate.errors / candidate.rows if candidate.rows else None
        test = (candidate.errors, analysis.max_error_rate, "above", alpha)
        gates.append(_gate("error_rate", rate, analysis.max_error_rate, "<=", candidate.rows, need, test))
    if analysis.max_latency_p99_ms is not None:
        lat = candidate.latencies_ms
        p99 = float(np.percentile(lat, 99)) if len(lat) else None
        over = float((lat > analysis.max_latency_p99_ms).sum())
        test = (over, TAIL, "above", alpha)
        gates.append(_gate("latency_p99_ms", p99, analysis.max_latency_p99_ms, "<=", len(lat), need, test))
    if analysis.min_agreement is not None:
        value = agreement(pairs, analysis.agreement_tolerance, candidate.classification)
        agreed = 0.0 if value is None else value * len(pairs)
        test = (agreed, analysis.min_agreement, "below", alpha)
        gates.append(_gate("agreement", value, analysis.min_agreement, ">=", len(pairs), need, test))
    if analysis.max_prediction_drift is not None:
        n = min(len(candidate.outputs), len(champion.outputs))
        value = output_distance(candidate.outputs, champion.outputs, candidate.classification)
        gates.append(_gate("prediction_drift", value, analysis.max_prediction_drift, "<=", n, need))
    if analysis.min_accuracy is not None:
        scores = candidate.label_scores
        value = float(scores.mean()) if len(scores) and candidate.classification else None
        test = (float(scores.sum()), analysis.min_accuracy, "below", alpha)
        gates.append(_gate("accuracy", value, analysis.min_accuracy, ">=", len(scores), analysis.min_labels, test))
    if analysis.min_estimated_accuracy is not None:
        conf = candidate.confidences
        n = 0 if conf is None else len(conf)
        value = float(conf.mean()) if conf is not None and n else None
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
