"""Repeated errors logged once, then counted: an outage must not fill the disk with tracebacks.

A store outage makes every request and every background loop fail the same way, many times a
second (48 MB of tracebacks in 30 s before this existed). `RepeatedErrors` logs the first
occurrence of each kind of error with its traceback, then at most one line per `every` seconds
saying how many times it repeated, and one line when it stops (`resolved`).

>>> import logging
>>> now = [0.0]
>>> errors = RepeatedErrors(logging.getLogger("doctest"), every=60.0, clock=lambda: now[0])
>>> errors.error("sync", "endpoint sync failed")            # logged, with its traceback if any
True
>>> errors.error("sync", "endpoint sync failed")            # counted
False
>>> now[0] = 61.0; errors.error("sync", "endpoint sync failed")  # "... (repeated 2 times in 61 s)"
True
>>> errors.resolved("sync", "endpoint sync works again")    # "... (after 3 failures in 61.0 s)"
True
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

__all__ = ["RepeatedErrors"]


@dataclass
class _Run:
    """One kind of error while it keeps happening."""

    first: float
    last_logged: float
    total: int = 1
    unlogged: int = 0


class RepeatedErrors:
    """Rate-limited error logging, keyed by kind (any hashable: a name, a tuple of route and type)."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        every: float = 60.0,
        max_keys: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.every = every
        self.max_keys = max_keys
        self.clock = clock
        self.suppressed = 0
        """Occurrences counted and not logged on their own line, over the whole life of this object."""
        self._runs: dict[Hashable, _Run] = {}
        self._lock = threading.Lock()

    def error(
        self,
        key: Hashable,
        message: str,
        *args: object,
        exc_info: BaseException | bool | None = None,
        level: int = logging.ERROR,
    ) -> bool:
        """Log `message % args` (with `exc_info`) the first time `key` fails; later, only a count, at
        most every `every` seconds. True when a line was written."""
        now = self.clock()
        with self._lock:
            run = self._runs.get(key)
            if run is None:
                if len(self._runs) >= self.max_keys:  # unbounded keys must not grow memory either
                    self._runs.pop(next(iter(self._runs)))
                self._runs[key] = _Run(first=now, last_logged=now)
                summary = None
            else:
                run.total += 1
                run.unlogged += 1
                if now - run.last_logged < self.every:
                    self.suppressed += 1
                    return False
                summary = (run.unlogged, now - run.last_logged)
                run.unlogged = 0
                run.last_logged = now
        if summary is None:
            self.logger.log(level, message, *args, exc_info=exc_info)
        else:
            n, seconds = summary
            self.logger.log(level, f"{message} (repeated {n} times in {seconds:.0f} s)", *args)
        return True

    def resolved(self, key: Hashable, message: str | None = None, *args: object) -> bool:
        """`key` works again: say so once (with how often it failed) if it had failed; the next
        failure is logged in full again. True when a line was written."""
        with self._lock:
            run = self._runs.pop(key, None)
        if run is None:
            return False
        if message is not None:
            seconds = self.clock() - run.first
            self.logger.warning(f"{message} (after {run.total} failures in {seconds:.1f} s)", *args)
            return True
        return False

    def failing(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._runs
