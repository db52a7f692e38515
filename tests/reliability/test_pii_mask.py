"""Planted PII inside free text is never stored: an endpoint whose config masks `note`
(`redact: {"note": "mask"}`) gets requests whose note carries a unique e-mail address and a unique
phone number, on the primary, on a shadow version (its own log rows) and on a request refused for a
bad feature. The stored notes read as the text with `[email]` and `#` for every digit, and no file
under the data directory (the database, its WAL, the spool) nor any log line holds a planted value."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from driftgate.client import Client
from tests.conftest import LiveServer, classification_data
from tests.reliability.pii_site import deploy_with_shadow, stored_rows


def _planted() -> tuple[str, str]:
    tag = secrets.token_hex(8)
    return f"pii-{tag}@example.com", "+49 " + " ".join(str(secrets.randbelow(10**4)).zfill(4) for _ in range(3))


def _note_model() -> tuple[bytes, bytes]:
    """(skops artifact, reference CSV) of a classifier whose inputs include a free-text `note` it
    does not score on, so the note reaches the log as sent unless redacted."""
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    ref = classification_data(500, 3)
    ref.insert(3, "note", [f"customer wrote about order {i}, please call back" for i in range(len(ref))])
    pre = ColumnTransformer(
        [("num", "passthrough", ["x1", "x2"]), ("cat", OneHotEncoder(handle_unknown="ignore"), ["colour"])],
        remainder="drop",
    )
    model = Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(ref.drop(columns="y"), ref["y"])
    return sio.dumps(model), ref.to_csv(index=False).encode()


def test_planted_pii_in_free_text_is_masked_everywhere(
    client: Client, server: LiveServer, figures: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    artifact, reference = _note_model()
    svc = deploy_with_shadow(client, server, artifact, reference, {"note": "mask"})
    planted: list[tuple[str, str]] = []
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for i in range(20):
            email, phone = _planted()
            planted.append((email, phone))
            note = f'Order {i}: mail {email} or call {phone}; "urgent"'
            row = {"x1": 0.1 * i, "x2": 3.0, "colour": "red", "note": note}
            assert http.post("/v1/endpoints/clf/predict", json={"instances": [row]}).status_code == 200
        email, phone = _planted()
        planted.append((email, phone))
        bad = {"x1": "not a number", "x2": 3.0, "colour": "red", "note": f"mail {email} or call {phone}"}
        assert http.post("/v1/endpoints/clf/predict", json={"instances": [bad]}).status_code == 422

    rows = stored_rows(svc, 20)

    notes = sorted({r["inputs"]["note"] for r in rows})
    assert notes == sorted(
        {f'Order {"#" * len(str(i))}: mail [email] or call +## #### #### ####; "urgent"' for i in range(20)}
    )
    files = [p for p in Path(server.settings.data_dir).rglob("*") if p.is_file()]
    values = [v for pair in planted for v in (*pair, pair[1].replace(" ", ""))]
    found = [(p.name, v) for p in files for v in values if v.encode() in p.read_bytes()]
    logged = [(r.name, v) for r in caplog.records for v in values if v in r.getMessage()]
    figures.update(
        planted_values=2 * len(planted),
        rows_stored=len(rows),
        files_searched=len(files),
        log_lines_searched=len(caplog.records),
        raw_values_found=len(found) + len(logged),
    )
    assert not found, found
    assert not logged, logged
