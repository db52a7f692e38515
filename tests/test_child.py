"""The helper process (driftgate/child.py): low priority from its first instant, initializer run by name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from driftgate.child import NICENESS, PARENT_DEATH_SIGNAL, ChildProcess, ChildUnavailable, Priority
from tests import procs

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


# ---- dying with the parent ---------------------------------------------------------------------------

_PARENT = """
import os, sys, threading
from driftgate.child import ChildProcess
from tests.test_child import _init
child = ChildProcess(_init, ("orphan?",))
box = {}
# Started from a thread that then ends: Linux sends the parent-death signal when the spawning
# *thread* exits, which must not end the child while its parent process lives.
spawner = threading.Thread(target=lambda: box.setdefault("pid", child.call(os.getpid)))
spawner.start()
spawner.join()
print(box["pid"], child.call(os.getpid), flush=True)
sys.stdin.read()
"""

_JOB_PARENT = """
import os, subprocess, sys
from driftgate.child import PARENT_PID_ENV
job = '''
import os, subprocess, threading
from driftgate.child import PARENT_PID_ENV, die_with_parent, kill_process_group
die_with_parent(int(os.environ[PARENT_PID_ENV]), kill_process_group)
worker = subprocess.Popen(["sleep", "600"])  # what a train function starts (joblib workers, say)
print(worker.pid, flush=True)
threading.Event().wait()  # not stdin: the parent's end closes when it dies, which would end this early
'''
env = {**os.environ, PARENT_PID_ENV: str(os.getpid())}
proc = subprocess.Popen([sys.executable, "-c", job], env=env, start_new_session=True,
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
print(proc.pid, proc.stdout.readline().decode().strip(), flush=True)
sys.stdin.read()
"""


def _run_parent(code: str) -> tuple[subprocess.Popen[bytes], list[str], str]:
    """A parent process running `code`; its first output line, and the tag of its process tree."""
    tag = procs.new_tag()
    env = {**os.environ, procs.TAG_VAR: tag, "PYTHONPATH": str(Path(__file__).parents[1])}
    parent = subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert parent.stdout is not None
    line = parent.stdout.readline().decode().split()
    return parent, line, tag


@pytest.mark.skipif(not procs.available(), reason="reads /proc")
@pytest.mark.parametrize("code", [_PARENT, _JOB_PARENT], ids=["helper child", "subprocess job"])
def test_children_die_with_a_killed_parent(code: str) -> None:
    parent, line, tag = _run_parent(code)
    try:
        assert len(line) == 2, line
        if code is _PARENT:
            assert line[0] == line[1], "the child died when the thread that started it ended"
        assert len(procs.tagged(tag)) >= 2  # the parent and what it started
        parent.kill()
        parent.wait(timeout=30)
        left = procs.wait_tag_gone(tag, timeout=30)
        assert not left, "outlived their parent:\n" + "\n".join(map(str, left))
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=30)
        procs.kill_all(procs.tagged(tag))


_MANY_THREADS_PARENT = """
import os, sys, threading
from driftgate.child import ChildProcess
from tests.test_child import _init
child = ChildProcess(_init, ("orphan?",))
stop = threading.Event()
for _ in range(300):  # a server's many threads: its child is passed from one exiting thread to the next
    threading.Thread(target=stop.wait, daemon=True).start()
print(child.call(os.getpid), os.getpid(), flush=True)
sys.stdin.read()
"""


@pytest.mark.skipif(not procs.available(), reason="reads /proc")
def test_a_burst_of_parent_death_signals_does_not_hang_the_child() -> None:
    """The kernel sends the parent-death signal again each time a dying parent's child passes to
    another of its exiting threads; a handler that took a lock re-entered it and hung the child for
    good (kill -9 of the server left the log writer running under init)."""
    parent, line, tag = _run_parent(_MANY_THREADS_PARENT)
    try:
        child_pid = int(line[0])
        for _ in range(20000):  # the burst, on top of what the parent's own exit sends
            os.kill(child_pid, PARENT_DEATH_SIGNAL)
        parent.kill()
        parent.wait(timeout=30)
        left = procs.wait_tag_gone(tag, timeout=30)
        assert not left, "outlived their parent:\n" + "\n".join(map(str, left))
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=30)
        procs.kill_all(procs.tagged(tag))


def test_a_closed_child_never_starts_again() -> None:
    child = ChildProcess(_init, ("closed",))
    assert child.call(_state)["tag"] == "closed"
    child.close()
    with pytest.raises(ChildUnavailable):
        child.submit(_state)
    assert not child.processes()


def test_no_replacement_once_respawning_stopped() -> None:
    child = ChildProcess(_init, ("dying",))
    try:
        child.call(_state)
        (process,) = child.processes()
        child.stop_respawning()
        process.kill()  # the OOM killer, say, during shutdown
        process.join(timeout=30)
        with pytest.raises(ChildUnavailable):
            child.call(_state)
        assert not child.processes()
    finally:
        child.close()
