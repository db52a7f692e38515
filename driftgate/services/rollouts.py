"""Starting and steering rollouts, for the routes, the CLI, retraining runs and the alert action alike.
Every change is applied through `Serving`: a server switches its traffic now (other replicas follow
the revision bump within a poll); the CLI's `Offline` only checks and warms."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Literal

from driftgate.errors import DriftgateError
from driftgate.rollout.controller import RolloutController
from driftgate.rollout.rollback import RolledBack, roll_back
from driftgate.services.serving import Serving

Steer = Literal["promote", "pause", "resume"]


class RolloutService:
    def __init__(self, controller: RolloutController, serving: Serving) -> None:
        self.controller = controller
        self.serving = serving

    async def start(self, endpoint: str, body: Mapping[str, Any], actor: str) -> dict[str, Any]:
        """Validate, warm the candidate on reference rows (one that cannot serve never gets traffic),
        record the rollout, and apply it."""
        spec, champion, candidate = await asyncio.to_thread(self.controller.prepare, endpoint, dict(body))
        await self.serving.warm(candidate)
        row = await asyncio.to_thread(self.controller.start, endpoint, spec, champion, candidate, actor)
        await self.serving.refresh(endpoint)
        return row

    async def steer(self, action: Steer, endpoint: str, actor: str, reason: str = "") -> dict[str, Any]:
        """Promote the candidate, pause the rollout or resume it, now."""
        act = {"promote": self.controller.promote, "pause": self.controller.pause, "resume": self.controller.resume}
        row = await asyncio.to_thread(act[action], endpoint, actor, reason)
        await self.serving.refresh(endpoint)
        return row

    async def rollback(self, endpoint: str, actor: str, reason: str = "") -> RolledBack:
        """Back to the champion: at once where it is loaded, else through a new rollout to it (warmed
        first). `RolledBack.how` says which."""
        done = await roll_back(self.controller, endpoint, actor, reason, self.serving.warm)
        await self.serving.refresh(endpoint)
        return done

    async def rollback_on_alert(self, endpoint: str, reason: str) -> dict[str, Any]:
        """The alert action `rollback`: instant only (a running rollout, or a blue-green one whose previous
        version is still loaded), never a new rollout. What happened, never an exception: nothing to roll
        back is an answer."""
        try:
            row = await asyncio.to_thread(self.controller.rollback, endpoint, "alert", reason)
        except DriftgateError as exc:  # no rollout running, or no such endpoint
            return {"ok": False, "detail": exc.message}
        await self.serving.refresh(endpoint)
        return {"ok": True, "detail": f"rollout {row['id']} rolled back to v{row['baseline']['version']}"}

    def current(self, endpoint: str) -> dict[str, Any]:
        return self.controller.current(endpoint)
