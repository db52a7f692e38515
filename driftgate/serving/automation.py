"""Which rows are answered and which a person sees: the degree of automation (SPEC 4) and output guards.

Pure: numpy only. The statuses:

- `ok`: answered, nobody reviews it;
- `review`: deferred, answered as `predictions[i] = null`, `status[i] = "review"`; waits in the review
  queue for a person's decision;
- `audit` (logged only): answered, and queued for a person to confirm or overturn afterwards.

>>> d = decide("partial", np.array([[0.9, 0.1], [0.55, 0.45]]), review_threshold=0.7)
>>> d.logged, d.answered, d.queued
(['ok', 'review'], ['ok', 'review'], 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_RNG = np.random.default_rng()  # used on the event loop only (a Generator is not thread-safe)


@dataclass(frozen=True, slots=True)
class Decision:
    logged: list[str] | None
    """Status stored per row; None: every row `ok`."""
    answered: list[str] | None
    """Status answered per row; None: the answer carries no `status`."""
    queued: int
    """Rows queued for a person (deferred or audited)."""


def decide(
    automation: str,
    probabilities: np.ndarray | None,
    *,
    n: int | None = None,
    review_threshold: float | None = None,
    review_sample_rate: float = 0.0,
    violating: np.ndarray | None = None,
    guard_action: str = "count",
    rng: np.random.Generator | None = None,
) -> Decision:
    """The decision for one scored request.

    `human_only` and `assist` defer every row; `partial` defers rows whose largest probability is
    below `review_threshold`; `governed` answers every row and audits a `review_sample_rate` sample,
    the rows below the threshold and every guard violation; `full` answers everything. Whatever the
    level, a row that `violating` flags is deferred when `guard_action` is "review".
    """
    if n is None:
        if probabilities is None:
            raise ValueError("n is needed when there are no probabilities")
        n = len(probabilities)
    if automation in ("human_only", "assist"):
        status = ["review"] * n
        return Decision(status, status, n)
    if automation == "full" and (violating is None or guard_action != "review"):
        return Decision(None, None, 0)  # the common case, without allocating anything
    guard = violating if violating is not None else np.zeros(n, dtype=bool)
    deferred = guard if guard_action == "review" else np.zeros(n, dtype=bool)
    low = (
        probabilities.max(axis=1) < review_threshold
        if probabilities is not None and review_threshold is not None and automation in ("partial", "governed")
        else np.zeros(n, dtype=bool)
    )
    if automation == "partial":
        deferred = deferred | low
    if automation == "governed":
        sampled = (rng or _RNG).random(n) < review_sample_rate
        audited = (low | guard | sampled) & ~deferred
        logged = np.where(deferred, "review", np.where(audited, "audit", "ok")).tolist()
        answered = np.where(deferred, "review", "ok").tolist()
        return Decision(logged, answered, int((deferred | audited).sum()))
    status = np.where(deferred, "review", "ok").tolist()
    return Decision(status, status, int(deferred.sum()))
