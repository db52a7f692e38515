"""Checks that an endpoint config fits the model version it names, before anything is stored."""

from __future__ import annotations

from driftgate.core.refs import VersionRef
from driftgate.errors import BadRequest
from driftgate.serving.endpoint_config import EndpointConfig
from driftgate.serving.runtime import LoadedVersion


def check_fits(cfg: EndpointConfig, version: LoadedVersion, ref: VersionRef) -> None:
    """A guard that cannot judge this model is refused: confidence needs class probabilities,
    min/max need numeric predictions."""
    guard = cfg.output_guard
    if guard is None:
        return
    kind = version.output.get("kind")
    if guard.min_confidence is not None and kind != "classification":
        raise BadRequest(
            f"output_guard.min_confidence needs a classifier with class probabilities; model {ref} is a {kind} model",
            field="output_guard.min_confidence",
        )
    classes = version.classes or []
    if (guard.min is not None or guard.max is not None) and any(not isinstance(c, int | float) for c in classes):
        raise BadRequest(
            f"output_guard.min/max need numeric predictions; model {ref} predicts classes {classes[:10]}",
            field="output_guard",
        )
