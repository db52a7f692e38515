"""Starting a rollout from a request body, shared by the route and by retraining runs."""

from __future__ import annotations

import asyncio
from typing import Any

from driftgate.rollout.controller import RolloutController
from driftgate.serving.dataplane import DataPlane


async def start_rollout(
    rollouts: RolloutController, plane: DataPlane, endpoint: str, body: dict[str, Any], actor: str
) -> dict[str, Any]:
    """Validate, warm the candidate on reference rows (one that cannot serve never gets traffic),
    record the rollout, and switch this replica now (the others follow the revision bump)."""
    spec, champion, candidate = await asyncio.to_thread(rollouts.prepare, endpoint, body)
    await plane.warm(candidate)
    row = await asyncio.to_thread(rollouts.start, endpoint, spec, champion, candidate, actor)
    await plane.refresh(endpoint)
    return row
