"""What a model call can fail with besides the model's own exception, whichever way it runs
(serving/isolation.py), and what it returns."""

from __future__ import annotations

from typing import Any

import numpy as np

from driftgate.errors import DriftgateError

Scores = tuple[np.ndarray, "np.ndarray | None"]


class ModelUnavailable(DriftgateError):
    """The version cannot take this request now (hung, or its worker restarting): shed, retry later.
    `headers` carry `Retry-After` for the HTTP layer; the body says `retry_after_s`."""

    status_code = 503

    def __init__(self, message: str, retry_after: int = 1, **details: Any) -> None:
        super().__init__(message, retry_after_s=retry_after, **details)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


class WorkerCrashed(RuntimeError):
    """The worker process died while scoring: every request of that call fails with this (500)."""


class WorkerHung(RuntimeError):
    """A call ran past the endpoint's timeout; its worker was killed (its callers had their 504)."""
