"""What the planted-PII tests share: a model deployed with redaction rules and a shadow of itself (so
that both roles' rows are searched), and the wait until both have stored the planted requests."""

from __future__ import annotations

import time
from typing import Any

from driftgate.client import Client
from tests.conftest import LiveServer


def deploy_with_shadow(
    client: Client, server: LiveServer, artifact: bytes, reference: bytes, redact: dict[str, str]
) -> Any:
    """Versions 1 and 2 of 'clf', v1 at endpoint 'clf' with `redact`, v2 shadowing it; the server's
    services once the rules are in effect."""
    for _ in range(2):
        client.register_model("clf", artifact, "sklearn", reference=reference, target="y")
    client.deploy("clf", "clf", 1, redact=redact)
    client.start_rollout("clf", "shadow", 2)
    svc = server.app.state.services
    deadline = time.monotonic() + 30
    while not svc.dataplane.state("clf").config.redact:
        assert time.monotonic() < deadline, "the endpoint's redaction never took effect"
        time.sleep(0.05)
    return svc


def stored_rows(svc: Any, shadow_rows: int) -> list[dict[str, Any]]:
    """Every stored row of 'clf' once the shadow's `shadow_rows` are in (an idle-priority child scores
    them), with everything queued written."""
    deadline = time.monotonic() + 240
    while True:
        svc.recorder.flush()
        rows = svc.store.predictions.window("clf", role=None)
        if sum(r["role"] == "shadow" for r in rows) >= shadow_rows:
            break
        assert time.monotonic() < deadline, "the shadow's rows were never logged"
        time.sleep(0.1)
    svc.recorder.flush()
    return rows
