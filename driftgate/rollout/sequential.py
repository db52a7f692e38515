"""Anytime-valid evidence that a rate breaks its limit: sequential tests for canary gates. Pure code.

The rollout controller re-checks its gates every second on a growing sample. A gate that fails as
soon as its point estimate crosses the limit fails good candidates by chance: a true error rate of
0.8 % against a 1 % limit, checked every 25 rows up to 5,000, reads over 1 % at some check in 3
runs of 4 (simulated). Here a rate gate fails only on
an e-value: a mixture of likelihood ratios, each of an alternative rate beyond the limit against the
limit itself. Under any true rate within the limit the mixture is a nonnegative supermartingale, so
by Ville's inequality it ever reaches 1/alpha with probability at most alpha, however often it is
checked (Ramdas et al., "Game-theoretic statistics and safe anytime-valid inference", 2023).

The alternatives lie beyond the limit at doubling distances in log-odds, equally weighted: for a
1 % error limit they run from 1.05 % to ~86 %, for a 0.5 accuracy minimum from 0.49 to ~0.002. A
candidate whose true rate is beyond the limit builds evidence at an exponential pace (the KL
divergence per observation), so it still fails, and one within it never does more often than alpha.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

Side = Literal["above", "below"]  # the gate breaks when the rate is above (a maximum) or below (a minimum)
# Log-odds from the limit to each alternative: doubling, so few alternatives (little dilution of the
# mixture) cover both rates just past the limit (a 0.45 accuracy against a 0.5 minimum) and far past
# it (50 % errors against a 1 % maximum).
OFFSETS = 0.05 * 2.0 ** np.arange(8)  # 0.05 .. 6.4
# The null rate is moved off 0 and 1 (where log-odds are infinite) only in the conservative direction:
# up for a maximum, down for a minimum. A limit within EDGE of the far end cannot be broken.
EDGE = 1e-4


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def null_rate(limit: float, side: Side) -> float:
    """The rate the evidence is measured against: the limit, or the nearest rate past it that has
    finite log-odds (testing against a stricter null keeps the test valid)."""
    return max(limit, EDGE) if side == "above" else min(limit, 1 - EDGE)


def alternatives(limit: float, side: Side) -> np.ndarray:
    """Rates beyond `limit` at `OFFSETS` in log-odds, nearest first."""
    sign = 1 if side == "above" else -1
    return 1 / (1 + np.exp(-(_logit(null_rate(limit, side)) + sign * OFFSETS)))


def log_evidence(hits: float, n: int, limit: float, side: Side) -> float:
    """Natural log of the e-value against "the rate is within `limit`" after `hits` of `n` events
    (errors, agreeing pairs, correct labels, ...). 0 with no data; larger means stronger evidence
    that the rate is beyond the limit; the gate fails at log(1 / alpha)."""
    if n <= 0:
        return 0.0
    if (side == "above" and limit <= 0 and hits > 0) or (side == "below" and limit >= 1 and hits < n):
        return math.inf  # one event past a limit of 0 (or 1) proves the rate beyond it
    if (side == "above" and limit >= 1 - EDGE) or (side == "below" and limit <= EDGE):
        return -math.inf  # (next to) nothing lies beyond the limit: the gate cannot break
    p0 = null_rate(limit, side)
    alt = alternatives(limit, side)
    misses = n - hits
    log_ratios = hits * np.log(alt / p0) + misses * np.log((1 - alt) / (1 - p0))
    top = float(log_ratios.max())
    return top + math.log(float(np.exp(log_ratios - top).mean()))


def breaks(hits: float, n: int, limit: float, side: Side, alpha: float) -> bool:
    """Whether the evidence that the rate is beyond `limit` reaches 1/alpha."""
    return log_evidence(hits, n, limit, side) >= math.log(1 / alpha)
