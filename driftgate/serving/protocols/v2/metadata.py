"""Model and server metadata answers."""

from __future__ import annotations

from typing import Any


def model_metadata(
    name: str,
    versions: list[str],
    inputs: list[tuple[str, str]] | list[tuple[str, str, list[int]]],
    outputs: list[tuple[str, str, list[int]]],
    platform: str,
) -> dict[str, Any]:
    """`GET /v2/models/{name}` body. Inputs are (name, datatype), of shape [-1] (any batch), or
    (name, datatype, shape) (a tensor feature: [-1, *its shape])."""
    return {
        "name": name,
        "versions": list(versions),
        "platform": platform,
        "inputs": [{"name": i[0], "datatype": i[1], "shape": list(i[2]) if len(i) > 2 else [-1]} for i in inputs],
        "outputs": [{"name": n, "datatype": dt, "shape": list(shape)} for n, dt, shape in outputs],
    }


def server_metadata(version: str) -> dict[str, Any]:
    """`GET /v2` body."""
    return {"name": "driftgate", "version": version, "extensions": ["binary_tensor_data"]}
