"""A rollout row as people read it (GET .../rollouts/current, history, the CLI). Pure code."""

from __future__ import annotations

from typing import Any

from driftgate.rollout.spec import ACTIVE_STATES
from driftgate.rollout.standby import kept_until


def describe(row: dict[str, Any]) -> dict[str, Any]:
    """GET .../rollouts/current: strategy, state, step and weight, per-version counts, gates, reason."""
    spec = row["spec"]
    weight = float(row["weight"])
    champion, candidate = row["baseline"], row["candidate"]
    if row["state"] in ACTIVE_STATES:
        shares = {"shadow": 0.0, "blue_green": 100.0}.get(row["strategy"], weight)
    else:
        shares = 100.0 if row["state"] == "promoted" else 0.0
    analysis = row["analysis"] or {}
    out: dict[str, Any] = {
        "id": row["id"],
        "endpoint": row["endpoint"],
        "strategy": row["strategy"],
        "state": row["state"],
        "champion": champion,
        "candidate": candidate,
        "weight": shares,
        "traffic": [
            {**champion, "weight": 100.0 - shares, "role": "champion"},
            {**candidate, "weight": shares, "role": "shadow" if row["strategy"] == "shadow" else "candidate"},
        ],
        "step": row["step"] + 1 if row["strategy"] == "canary" else None,
        "steps": spec.get("steps") if row["strategy"] == "canary" else None,
        "gates": analysis.get("gates", []),
        "verdict": analysis.get("verdict"),
        "versions": analysis.get("versions", {}),
        "pairs": analysis.get("pairs", 0),
        "agreement": analysis.get("agreement"),
        "reason": row["reason"],
        "actor": row["actor"],
        "started_at": row["started_at"],
        "step_started_at": row["step_started_at"],
        "updated_at": row["updated_at"],
        "finished_at": row["finished_at"],
        # Blue-green: until when a rollback after promotion is instant (the previous version is loaded).
        "keep_previous_until": kept_until(row),
        "spec": spec,
    }
    return out
