"""The multiprocess side of serving metrics (serving/metrics.py): where the workers' files live,
which workers are gone, and what this process reports about itself (memory, the refresh loop)."""

from __future__ import annotations

import glob
import os
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from driftgate.serving.metrics import ServingMetrics

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def multiprocess_dir() -> str | None:
    """The directory shared by the workers of one server, or None in single-process mode."""
    return os.environ.get(MULTIPROC_ENV) or None


def forget_dead_workers(path: str | None) -> list[int]:
    """`mark_process_dead` for every worker whose live-gauge files remain but whose process is gone
    (a worker killed without a clean shutdown; uvicorn starts a new one). Returns those pids."""
    from prometheus_client.multiprocess import mark_process_dead

    dead = set()
    for name in glob.glob(os.path.join(path or "", "gauge_live*_*.db")):
        match = _LIVE_FILE.search(name)
        if match and not _alive(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in dead:
        mark_process_dead(pid, path)
    return sorted(dead)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by uvicorn's supervisor) is dead for us
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return True


def _rss_bytes() -> float:
    try:
        with open("/proc/self/statm", "rb") as fh:
            return float(int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, IndexError):  # not Linux: peak RSS is the best stdlib offers
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return float(peak if sys.platform == "darwin" else peak * 1024)


def refresh_every(metrics: ServingMetrics, seconds: float = 1.0):  # pragma: no cover - trivial loop
    """An asyncio task body: `refresh()` every `seconds` (multiprocess mode: other workers' scrapes
    read what this one wrote last)."""
    import asyncio
    import logging

    async def loop() -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                metrics.refresh()
            except Exception:
                logging.getLogger("driftgate").exception("metrics refresh failed")

    return loop()
