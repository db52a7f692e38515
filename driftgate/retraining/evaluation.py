"""Is a retrained model better than the champion? Both are scored on the same held-out rows. Pure code.

Classification compares accuracy; regression compares RMSE (lower is better). The point estimate
decides (`min_improvement` is the margin it must clear); for classification an exact McNemar test on
the rows where exactly one model is right says how sure that is, so a person reading the run can
tell a real gain from holdout noise. The rollout's own gates then judge the candidate on live traffic.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import binomtest


@dataclass(frozen=True, slots=True)
class Evaluation:
    metric: str  # "accuracy" | "rmse"
    champion: float | None  # None: not a finite number (a model that predicts NaN)
    candidate: float | None
    improvement: float | None  # candidate's gain in the metric's good direction: > 0 is better
    rows: int
    min_improvement: float
    better: bool
    p_value: float | None  # classification: exact McNemar test of "equally accurate"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        verdict = "better than" if self.better else "not better than"
        line = (
            f"{self.metric} {_shown(self.candidate)} {verdict} the champion's {_shown(self.champion)} on {self.rows} "
            f"held-out rows (gain {_shown(self.improvement, '+.4g')}, needed > {self.min_improvement:g})"
        )
        return line if self.p_value is None else f"{line}; McNemar p = {self.p_value:.3g}"


def _shown(value: float | None, spec: str = ".4g") -> str:
    return "not a number" if value is None else format(value, spec)


def rmse(truth: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(truth, float) - np.asarray(predicted, float)) ** 2)))


def mcnemar_p(champion_right: np.ndarray, candidate_right: np.ndarray) -> float:
    """Two-sided exact McNemar p-value: among rows where exactly one model is right, is either side
    more often the right one than a fair coin would be?"""
    only_candidate = int(np.sum(candidate_right & ~champion_right))
    only_champion = int(np.sum(champion_right & ~candidate_right))
    discordant = only_candidate + only_champion
    if discordant == 0:
        return 1.0
    return float(binomtest(only_candidate, discordant, 0.5).pvalue)


def compare(
    kind: str, truth: np.ndarray, champion: np.ndarray, candidate: np.ndarray, min_improvement: float = 0.0
) -> Evaluation:
    """`kind` is the champion's output kind ("classification" or "regression")."""
    if not len(truth) == len(champion) == len(candidate):
        raise ValueError(f"lengths differ: {len(truth)} labels, {len(champion)} and {len(candidate)} predictions")
    if not len(truth):
        raise ValueError("no held-out rows to compare on")
    if kind == "classification":
        # As the monitor and the rollout gates compare: by value, or failing that by text, so a label
        # that arrived as "1" matches a prediction of 1.
        champion_right, candidate_right = _same(champion, truth), _same(candidate, truth)
        champ, cand = float(np.mean(champion_right)), float(np.mean(candidate_right))
        gain, p_value, metric = cand - champ, mcnemar_p(champion_right, candidate_right), "accuracy"
    else:
        champ, cand = rmse(truth, champion), rmse(truth, candidate)
        gain, p_value, metric = champ - cand, None, "rmse"
    better = math.isfinite(gain) and gain > min_improvement
    return Evaluation(
        metric, _finite(champ), _finite(cand), _finite(gain), len(truth), min_improvement, better, p_value
    )


def _same(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    predicted, truth = np.asarray(predicted, dtype=object), np.asarray(truth, dtype=object)
    return (predicted == truth) | (predicted.astype(str) == truth.astype(str))


def _finite(value: float) -> float | None:
    """None for NaN or infinity (a model that predicts NaN): JSON columns refuse them on PostgreSQL."""
    return value if math.isfinite(value) else None
