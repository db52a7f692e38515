"""Admission: log capacity held for a request before it is scored, so that an id is never handed
out for a row the log would drop (SPEC 5)."""

from __future__ import annotations

import contextvars
from collections.abc import Callable

_admitted: contextvars.ContextVar[Admission | None] = contextvars.ContextVar("driftgate_log_admission", default=None)


class Admission:
    """Queue capacity held for one request's rows, from before it is scored until its log batch is
    handed over, so that an id is never handed out for a row the log would drop (SPEC 5).

    Used as a context manager around the scoring: `Recorder.record` finds it in the request's context
    (the data plane need not pass it along) and queues a batch it covers even past the bound. On exit
    whatever was not used is given back.
    """

    def __init__(self, rows: int, release: Callable[[int], None] | None = None) -> None:
        self.rows = rows
        self._release = release
        self._token: contextvars.Token[Admission | None] | None = None

    def __enter__(self) -> Admission:
        self._token = _admitted.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _admitted.reset(self._token)
            self._token = None
        self.close()

    def take(self, rows: int) -> bool:
        """Use `rows` of what is held for a batch being queued: all of them or none."""
        if 0 < rows <= self.rows:
            self.rows -= rows
            return True
        return False

    def close(self) -> None:
        """Give back what was not used."""
        rows, self.rows = self.rows, 0
        if rows and self._release is not None:
            self._release(rows)


def take_admitted(rows: int) -> bool:
    """True when the current request holds capacity for these rows (and now uses it)."""
    admission = _admitted.get()
    return admission is not None and admission.take(rows)
