"""Which processes a test started are still running, read from /proc (Linux).

A process is found by a tag in its environment: a variable set in the environment a server is started
with is inherited by everything it starts (multiprocessing's spawn children, the resource tracker,
retraining jobs) and stays readable in /proc/PID/environ after the process is reparented to init, so
an orphan is found even though it is no longer anyone's descendant.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TAG_VAR = "DRIFTGATE_TEST_TAG"
SESSION_VAR = "DRIFTGATE_TEST_SESSION"


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    start: int  # clock ticks after boot: a pid reused by a later process has another start
    cmdline: str
    rss_mb: float

    def __str__(self) -> str:
        return f"pid {self.pid} (parent {self.ppid}, {self.rss_mb:.0f} MB): {self.cmdline[:160]}"


def available() -> bool:
    return (PROC / "self" / "environ").exists()


def new_tag() -> str:
    return uuid.uuid4().hex


def _read(pid: int) -> Proc | None:
    """The process, or None if it is gone or a zombie (dead, waiting to be reaped)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        cmdline = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
    if fields[0] in ("Z", "X"):
        return None
    rss_mb = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return Proc(pid, int(fields[1]), int(fields[19]), cmdline.strip(), rss_mb)


def _pids() -> list[int]:
    return [int(p.name) for p in PROC.iterdir() if p.name.isdigit()]


def with_env(var: str, value: str) -> list[Proc]:
    """Live processes (this one excluded) whose initial environment has `var=value`."""
    needle = f"{var}={value}".encode()
    found = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        try:
            env = (PROC / str(pid) / "environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0") and (proc := _read(pid)) is not None:
            found.append(proc)
    return found


def tagged(tag: str) -> list[Proc]:
    return with_env(TAG_VAR, tag)


def descendants(pid: int) -> list[Proc]:
    """Live processes below `pid` (children, their children, ...)."""
    procs = [p for p in map(_read, _pids()) if p is not None]
    below, frontier = [], {pid}
    while frontier:
        level = [p for p in procs if p.ppid in frontier]
        below += level
        frontier = {p.pid for p in level}
    return below


def still_alive(procs: Iterable[Proc]) -> list[Proc]:
    """Those of `procs` still running (the same process: same pid and start time)."""
    alive = []
    for p in procs:
        now = _read(p.pid)
        if now is not None and now.start == p.start:
            alive.append(now)
    return alive


def wait_gone(procs: Iterable[Proc], timeout: float = 10.0) -> list[Proc]:
    """Poll until none of `procs` runs or `timeout` passes; those still running."""
    procs = list(procs)
    deadline = time.monotonic() + timeout
    while (alive := still_alive(procs)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def wait_tag_gone(tag: str, timeout: float = 10.0) -> list[Proc]:
    """Poll until no process carries `tag` or `timeout` passes; those still running."""
    deadline = time.monotonic() + timeout
    while (alive := tagged(tag)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def kill_all(procs: Iterable[Proc]) -> None:
    """SIGKILL what a test left behind, so that a failure does not leak processes into the session."""
    for p in still_alive(procs):
        with contextlib.suppress(OSError):
            os.kill(p.pid, signal.SIGKILL)


def is_spawn_child(p: Proc) -> bool:
    """A multiprocessing spawn child (a helper child of the server, or a uvicorn worker)."""
    return "multiprocessing.spawn" in p.cmdline


def is_resource_tracker(p: Proc) -> bool:
    return "multiprocessing.resource_tracker" in p.cmdline
