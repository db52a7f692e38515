"""Planted PII is never stored: an endpoint whose config redacts `email` (drop) and `customer_id`
(hash) gets requests carrying unique planted values, on the primary, on a shadow version (written by
the shadow's own log rows) and on a request refused for a bad feature; then every file under the data
directory (the database, its WAL, the spool) is searched for the raw values."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from driftgate.client import Client
from driftgate.core.redaction import hash_value
from tests.conftest import LiveServer, classification_data
from tests.reliability.pii_site import deploy_with_shadow, stored_rows

REDACT = {"email": "drop", "customer_id": "hash"}


def _planted() -> tuple[str, str]:
    tag = uuid.uuid4().hex
    return f"pii-{tag}@example.com", f"cust-{tag}"


def _pii_model() -> tuple[bytes, bytes]:
    """(skops artifact, reference CSV) of a classifier whose input schema has `email` and
    `customer_id` (it scores on x1, x2 and colour only), so those fields reach the log unless redacted."""
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    ref = classification_data(500, 3)
    ref.insert(3, "email", [f"user{i}@example.org" for i in range(len(ref))])
    ref.insert(4, "customer_id", [f"c{i}" for i in range(len(ref))])
    pre = ColumnTransformer(
        [("num", "passthrough", ["x1", "x2"]), ("cat", OneHotEncoder(handle_unknown="ignore"), ["colour"])],
        remainder="drop",
    )
    model = Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(ref.drop(columns="y"), ref["y"])
    return sio.dumps(model), ref.to_csv(index=False).encode()


def test_planted_pii_is_never_stored(client: Client, server: LiveServer, figures: dict[str, Any]) -> None:
    artifact, reference = _pii_model()
    svc = deploy_with_shadow(client, server, artifact, reference, REDACT)
    planted: list[tuple[str, str]] = []
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for i in range(20):
            email, customer = _planted()
            planted.append((email, customer))
            row = {"x1": 0.1 * i, "x2": 3.0, "colour": "red", "email": email, "customer_id": customer}
            assert http.post("/v1/endpoints/clf/predict", json={"instances": [row]}).status_code == 200
        email, customer = _planted()
        planted.append((email, customer))
        bad = {"x1": "not a number", "x2": 3.0, "colour": "red", "email": email, "customer_id": customer}
        assert http.post("/v1/endpoints/clf/predict", json={"instances": [bad]}).status_code == 422

    # Wait for the shadow's rows too (scored by an idle-priority child), then write everything queued.
    rows = stored_rows(svc, 20)

    # The rows are there, pseudonymised: the hash of a customer id, never the id or the email.
    hashed = {r["inputs"].get("customer_id") for r in rows}
    assert {hash_value(c) for _, c in planted[:20]} <= hashed
    assert not any("email" in r["inputs"] for r in rows)
    files = [p for p in Path(server.settings.data_dir).rglob("*") if p.is_file()]
    found = []
    for path in files:
        data = path.read_bytes()
        found += [(path.name, v) for pair in planted for v in pair if v.encode() in data]
    figures.update(
        planted_values=2 * len(planted),
        rows_stored=len(rows),
        files_searched=len(files),
        bytes_searched=sum(p.stat().st_size for p in files),
        raw_values_found=len(found),
    )
    assert not found, found
