"""`rollback`, as the route and the CLI ask it: instant where the baseline is loaded (a running
rollout, or a blue-green one promoted within its `keep_previous_s`), else a new rollout back to the
previous version, warmed first by the caller's `warm` (a server's data plane, or the CLI's offline
loader), so a version that cannot serve never gets traffic. The answer says which happened."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from driftgate.core.refs import VersionRef
from driftgate.rollout.controller import RolloutController, ref_of
from driftgate.rollout.standby import How

Warm = Callable[[VersionRef], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class RolledBack:
    row: dict[str, Any]
    """The rollout that now decides traffic: the one rolled back, or the new one back to the previous version."""
    how: How


async def roll_back(controller: RolloutController, endpoint: str, actor: str, reason: str, warm: Warm) -> RolledBack:
    row, how = await asyncio.to_thread(controller.rollback_target, endpoint, time.time())
    if how == "instant":
        return RolledBack(await asyncio.to_thread(controller.rollback_now, row, actor, reason), how)
    await warm(ref_of(row["baseline"]))
    return RolledBack(await asyncio.to_thread(controller.rollout_back, row, actor, reason), how)
