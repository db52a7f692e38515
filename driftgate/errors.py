"""One root error with an HTTP status; messages name the field, the expectation and what came.

The API layer maps every `DriftgateError` to `{"error": message, ...details}` with its status,
so the rest of the code raises these and never builds HTTP responses itself.
"""

from __future__ import annotations

import numbers
import reprlib
from typing import Any

# Values quoted in error messages come from requests: a depth-1000 nested array or a 60 MB list must
# cost neither a RecursionError (a 500) nor a full repr. reprlib stops at a few levels and items.
_SHORT = reprlib.Repr()
_SHORT.maxlevel = 3
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 6
_SHORT.maxstring = _SHORT.maxother = 80


def short_repr(value: Any) -> str:
    """`repr(value)`, cut to a few nesting levels, items and characters (for error messages)."""
    return _SHORT.repr(value)


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages ("expects a number, got string")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, numbers.Number):  # numpy's scalars too
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


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


class Overloaded(NotReady):
    """The server cannot take this work now (e.g. the prediction log's queue is full); nothing was done.
    Answered with `Retry-After`, so that clients back off and send it again."""

    def __init__(self, message: str, retry_after: int = 1, **details: object) -> None:
        super().__init__(message, retry_after_s=retry_after, **details)
        self.headers = {"Retry-After": str(retry_after)}
