"""What a rollout does next, from its state, the clock and the gates. Pure code.

A canary step passes when its request count and its duration are both reached and every gate
holds. A gate that fails rolls back at once, without waiting for the step to end. Gates that still
lack data, or are past their limit without conclusive evidence yet (`inconclusive`), hold the step
and pause the rollout after `max_step_seconds` rather than wait for ever or pass silently.
"""

from __future__ import annotations

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
    failed = [g for g in gates if g.status == "fail"]
    lacking = [g for g in gates if g.status == "insufficient_data"]
    if spec.strategy != "canary":
        # Shadow, A/B and blue-green wait for a person; the gates are shown, not acted on.
        if failed:
            return Decision("hold", "; ".join(g.describe() for g in failed), "failed")
        return Decision("hold", "waiting for promote or rollback", "manual")
    if failed:
        reason = "; ".join(g.describe() for g in failed)
        return Decision("rollback" if spec.auto else "hold", reason, "failed")
    waiting = []
    if step_rows < spec.min_requests_per_step:
        waiting.append(f"{step_rows}/{spec.min_requests_per_step} requests")
    if step_elapsed < spec.step_seconds:
        waiting.append(f"{step_elapsed:.0f}/{spec.step_seconds:g} s")
    unsure = [g for g in gates if g.status == "inconclusive"]
    if lacking or unsure:
        if lacking:
            verdict = "insufficient_data"
            reason = "insufficient data: " + ", ".join(g.describe().split(": ", 1)[0] for g in lacking)
            reason += "".join(f" ({g.samples}/{g.needed})" for g in lacking[:1])
        else:
            verdict = "inconclusive"
            reason = "; ".join(g.describe() for g in unsure)
        if not waiting and spec.max_step_seconds is not None and step_elapsed >= spec.max_step_seconds:
            return Decision("pause" if spec.auto else "hold", f"{reason} after {step_elapsed:.0f} s", verdict)
        if waiting:
            held = f"step {step + 1}: waiting for {', '.join(waiting)}"
            reason = held if lacking else f"{held}; {reason}"
        return Decision("hold", reason, verdict)
    if waiting:
        return Decision("hold", f"step {step + 1}: waiting for {', '.join(waiting)}", "waiting")
    held = "; ".join(g.describe() for g in gates) or "no gates configured"
    if not spec.auto:
        return Decision("hold", f"step {step + 1} passed ({held}); waiting for promote", "passed")
    if step + 1 >= len(spec.steps):
        return Decision("promote", f"all {len(spec.steps)} steps passed: {held}", "passed")
    return Decision("advance", f"step {step + 1} at {spec.steps[step]:g}% passed: {held}", "passed")
