"""The helper process (driftgate/child.py): low priority from its first instant, initializer run by name."""

from __future__ import annotations

import os

import pytest

from driftgate.child import NICENESS, ChildProcess, Priority

_STATE: dict[str, object] = {}


def _init(tag: str) -> None:
    """Runs in the child: records what the child looked like when its initializer started."""
    _STATE["tag"] = tag
    _STATE["nice"] = os.getpriority(os.PRIO_PROCESS, 0)
    _STATE["policy"] = os.sched_getscheduler(0) if hasattr(os, "sched_getscheduler") else None


def _state() -> dict[str, object]:
    return dict(_STATE)


@pytest.mark.parametrize("priority", ["nice", "idle"])
def test_the_child_is_low_priority_before_it_boots(priority: Priority) -> None:
    child = ChildProcess(_init, ("hello",), priority=priority)
    try:
        future = child.submit(_state)
        # Lowered by the parent as soon as the process exists: the child is still starting
        # (importing, unpickling its initializer) and must not do that at serving priority.
        (process,) = child.processes()
        assert os.getpriority(os.PRIO_PROCESS, process.pid) == NICENESS
        if priority == "idle" and hasattr(os, "SCHED_IDLE"):
            assert os.sched_getscheduler(process.pid) == os.SCHED_IDLE
        state = future.result(timeout=120)
        assert state["tag"] == "hello"  # the initializer, imported by name, ran with its arguments
        assert state["nice"] == NICENESS
        if priority == "idle" and hasattr(os, "SCHED_IDLE"):
            assert state["policy"] == os.SCHED_IDLE
    finally:
        child.close()
