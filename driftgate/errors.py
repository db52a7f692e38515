"""One root error with an HTTP status; messages name the field, the expectation and what came.

The API layer maps every `DriftgateError` to `{"error": message, ...details}` with its status,
so the rest of the code raises these and never builds HTTP responses itself.
"""

from __future__ import annotations

from typing import Any


class DriftgateError(Exception):
    """Base error. `status_code` is what the HTTP layer answers; `details` join the JSON body."""

    status_code: int = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.message, **self.details}


class BadRequest(DriftgateError):
    status_code = 400


class InvalidInput(DriftgateError):
    """The request's data does not fit the model's input schema (missing feature, wrong type...)."""

    status_code = 422


class Unauthorized(DriftgateError):
    status_code = 401


class Forbidden(DriftgateError):
    status_code = 403


class NotFound(DriftgateError):
    status_code = 404


class ModelNotFound(NotFound):
    pass


class EndpointNotFound(NotFound):
    pass


class Conflict(DriftgateError):
    status_code = 409


class PayloadTooLarge(DriftgateError):
    status_code = 413


class UnsupportedFormat(BadRequest):
    pass


class UntrustedArtifact(BadRequest):
    """A pickle/joblib file can run arbitrary code when loaded; it needs explicit trust."""


class ModelFailed(DriftgateError):
    """The model raised while scoring. The message names the exception type, never a traceback."""

    status_code = 500


class StepFailed(DriftgateError):
    """A pipeline step (pre- or post-processing) raised or returned something unusable; `step` names it."""

    status_code = 500


class ModelTimeout(DriftgateError):
    status_code = 504


class NotReady(DriftgateError):
    status_code = 503
