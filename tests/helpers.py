"""Small helpers shared by test modules: waiting on a condition, a live server with the test classifier
'clf' (tests/conftest.py `artifacts`) registered and deployed at endpoint 'clf', and a `python`-format
regression model on x1, x2 with its 1-row request body."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx

from driftgate.registry.registry import Registration
from tests.conftest import Artifacts, LiveServer, make_server

T = TypeVar("T")


def until(check: Callable[[], T | None], seconds: float = 60) -> T:
    """`check()`'s first truthy value, polled until `seconds` have passed (then the test fails)."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def deploy_clf(http: httpx.Client, artifacts: Artifacts, **config: Any) -> httpx.Client:
    """Register the skops classifier as model 'clf' v1 over HTTP and deploy it at endpoint 'clf'
    (`config`: more of the endpoint's config, e.g. `timeout_ms`)."""
    r = http.post(
        "/v1/models/clf/versions",
        data={"format": "sklearn", "target": "y"},
        files={"file": ("m.skops", artifacts.skops), "reference": ("ref.csv", artifacts.reference_csv)},
    )
    assert r.status_code == 201, r.text
    r = http.put("/v1/endpoints/clf", json={"model": "clf", "version": 1, **config})
    assert r.status_code == 200, r.text
    return http


@contextlib.contextmanager
def clf_server(tmp_path: Path, artifacts: Artifacts, **overrides: object) -> Iterator[LiveServer]:
    """A live server (settings `overrides`, e.g. `grpc_port`) with 'clf' deployed; stopped on exit."""
    srv = make_server(tmp_path, **overrides)
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as http:
            deploy_clf(http, artifacts)
        yield srv
    finally:
        srv.stop()


def python_model(name: str, artifact: bytes, artifacts: Artifacts) -> Registration:
    """A regression model on x1, x2 (format 'python' registers from the local side only)."""
    reference = artifacts.reference[["x1", "x2"]].to_csv(index=False).encode()
    return Registration(name, artifact, "python", reference, reference_filename="ref.csv")


def row(x1: float) -> dict[str, Any]:
    """A native request body of one row for `python_model`."""
    return {"instances": [{"x1": x1, "x2": 1.0}]}
