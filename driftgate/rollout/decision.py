"""What a rollout does next, from its state, the clock and the gates. Pure code.

A canary step passes when its request count and its duration are both reached and every gate
holds. A gate that fails rolls back at once, without waiting for the step to end. Gates that still
lack data, or are past their limit without conclusive evidence yet (`inconclusive`), hold the step
and pause the rollout after `max_step_seconds` rather than wait for ever or pass silently.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from driftgate.rollout.analysis import Gate
from driftgate.rollout.spec import RolloutSpec

Action = Literal["hold", "advance", "promote", "rollback", "pause"]


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str
    # "waiting" | "insufficient_data" | "inconclusive" | "passed" | "failed" | "manual": what the gates say now.
    verdict: str


def decide(
    spec: RolloutSpec,
    step: int,
    step_rows: int,
    step_elapsed: float,
    gates: Sequence[Gate],
) -> Decision:
    """The next move of a running rollout."""
    by_status = _by_status(gates)
    failed = by_status["fail"]
    if spec.strategy != "canary":
        return _manual(failed)
    if failed:
        return Decision("rollback" if spec.auto else "hold", _described(failed), "failed")
    waiting = _waiting_for(spec, step_rows, step_elapsed)
    lacking, unsure = by_status["insufficient_data"], by_status["inconclusive"]
    if lacking or unsure:
        return _in_doubt(spec, step, step_elapsed, waiting, lacking, unsure)
    if waiting:
        return Decision("hold", _waiting_reason(step, waiting), "waiting")
    return _passed(spec, step, gates)


def _by_status(gates: Sequence[Gate]) -> defaultdict[str, list[Gate]]:
    """The gates by status, each list in the gates' order."""
    grouped: defaultdict[str, list[Gate]] = defaultdict(list)
    for gate in gates:
        grouped[gate.status].append(gate)
    return grouped


def _manual(failed: Sequence[Gate]) -> Decision:
    """Shadow, A/B and blue-green wait for a person; the gates are shown, not acted on."""
    if failed:
        return Decision("hold", _described(failed), "failed")
    return Decision("hold", "waiting for promote or rollback", "manual")


def _described(gates: Sequence[Gate]) -> str:
    return "; ".join(g.describe() for g in gates)


def _waiting_for(spec: RolloutSpec, step_rows: int, step_elapsed: float) -> list[str]:
    """What the step still lacks of its request count and duration."""
    waiting = []
    if step_rows < spec.min_requests_per_step:
        waiting.append(f"{step_rows}/{spec.min_requests_per_step} requests")
    if step_elapsed < spec.step_seconds:
        waiting.append(f"{step_elapsed:.0f}/{spec.step_seconds:g} s")
    return waiting


def _waiting_reason(step: int, waiting: Sequence[str]) -> str:
    return f"step {step + 1}: waiting for {', '.join(waiting)}"


def _in_doubt(
    spec: RolloutSpec,
    step: int,
    step_elapsed: float,
    waiting: Sequence[str],
    lacking: Sequence[Gate],
    unsure: Sequence[Gate],
) -> Decision:
    """Gates lacking data or evidence hold the step; past `max_step_seconds` they pause the rollout."""
    verdict, reason = _doubt(lacking, unsure)
    if not waiting and spec.max_step_seconds is not None and step_elapsed >= spec.max_step_seconds:
        return Decision("pause" if spec.auto else "hold", f"{reason} after {step_elapsed:.0f} s", verdict)
    if waiting:
        held = _waiting_reason(step, waiting)
        reason = held if lacking else f"{held}; {reason}"
    return Decision("hold", reason, verdict)


def _doubt(lacking: Sequence[Gate], unsure: Sequence[Gate]) -> tuple[str, str]:
    """The verdict and reason of gates that cannot conclude: missing data first."""
    if lacking:
        reason = "insufficient data: " + ", ".join(g.describe().split(": ", 1)[0] for g in lacking)
        return "insufficient_data", reason + "".join(f" ({g.samples}/{g.needed})" for g in lacking[:1])
    return "inconclusive", _described(unsure)


def _passed(spec: RolloutSpec, step: int, gates: Sequence[Gate]) -> Decision:
    """Every gate holds and the step is long enough: advance, promote, or wait for a person."""
    held = _described(gates) or "no gates configured"
    if not spec.auto:
        return Decision("hold", f"step {step + 1} passed ({held}); waiting for promote", "passed")
    if step + 1 >= len(spec.steps):
        return Decision("promote", f"all {len(spec.steps)} steps passed: {held}", "passed")
    return Decision("advance", f"step {step + 1} at {spec.steps[step]:g}% passed: {held}", "passed")
