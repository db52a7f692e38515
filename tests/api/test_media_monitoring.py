"""Monitoring of text and image models through a real server (issue 22): the spam pipeline (skops, text)
and the digits MLP (ONNX, 8x8 images) of demo/media_models, registered with their declared schemas,
served, logged by the server's own recorder (descriptors for every row, payloads at the endpoint's
payload_sample_rate) and monitored: descriptor features and the image's MMD test in one drift report,
a calm window quiet, a dimmer lamp and a new spam campaign flagged, empty_answer_rate reported."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftgate.client import Client
from driftgate.demo import media_data, media_models
from driftgate.monitoring.descriptors import IMAGE_DESCRIPTORS, TEXT_DESCRIPTORS
from tests.conftest import make_server
from tests.media_fixtures import register_artifact

pytestmark = pytest.mark.slow
WINDOW = 300
ARTIFACTS: dict[str, media_models.MediaArtifact] = {}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    tmp = tmp_path_factory.mktemp("media-monitoring")
    artifacts = media_models.write_artifacts(tmp / "artifacts", reference_rows=400)
    ARTIFACTS.update(artifacts)
    server = make_server(tmp)
    try:
        with Client(server.url, timeout=180) as client:
            for kind in ("text", "image"):
                register_artifact(client, artifacts[kind])
            # Every image payload kept: the window's MMD sample is then the whole window, and the run
            # is a function of the images sent alone (the sampling itself is tested with the log).
            client.deploy("digits", "digits", 1, payload_sample_rate=1.0)
            client.deploy("spam", "spam", 1)
            yield client
    finally:
        server.stop()


def _monitor(client: Client, endpoint: str) -> dict[str, Any]:
    answer = client.http.post(f"/v1/endpoints/{endpoint}/monitor", json={"last": WINDOW})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _drifted(report: dict[str, Any]) -> set[str]:
    return {f["name"] for f in report["features"] if f["drifted"]}


def test_images_calm_then_a_dimmer_lamp(client: Client) -> None:
    images, _ = media_data.digit_images(WINDOW, seed=31, split="test")
    client.predict("digits", [{"image": i.tolist()} for i in images])
    calm = _monitor(client, "digits")
    assert calm["window"]["rows"] == WINDOW
    names = {f["name"]: f for f in calm["features"]}
    assert set(names) == {"image", *(f"image.{d}" for d in IMAGE_DESCRIPTORS)}
    assert names["image"]["test"] == "mmd" and names["image"]["n_current"] == WINDOW
    assert names["image.brightness"]["n_current"] == WINDOW and names["image.brightness"]["histogram"]
    assert not calm["dataset"]["drifted"], _drifted(calm)
    assert calm["metrics"]["empty_answer_rate"] == 0.0
    assert calm["breakdown"]["feature_drift"] == dict.fromkeys(names, 0.0)

    dim, _ = media_data.digit_images(WINDOW, seed=32, split="test", scale=0.6)
    client.predict("digits", [{"image": i.tolist()} for i in dim])
    report = _monitor(client, "digits")
    assert {"image.brightness", "image"} <= _drifted(report) and report["dataset"]["drifted"]
    assert report["metrics"]["data_drift_share"] == len(_drifted(report)) / 5
    latest = client.http.get("/v1/endpoints/digits/drift", params={"last": WINDOW}).json()
    assert {"image.brightness", "image"} <= _drifted(latest)


def test_texts_calm_then_a_new_campaign(client: Client) -> None:
    calm_texts = media_data.emails(WINDOW, seed=33)["text"].tolist()
    client.predict("spam", [{"text": t} for t in calm_texts])
    calm = _monitor(client, "spam")
    assert {f["name"] for f in calm["features"]} == {f"text.{d}" for d in TEXT_DESCRIPTORS}
    assert not calm["dataset"]["drifted"], _drifted(calm)
    assert calm["metrics"]["missing_rate"] == 0.0 and calm["metrics"]["schema_violation_rate"] == 0.0

    campaign = media_data.emails(WINDOW, seed=34, campaign=1.0, spam_share=0.6)["text"].tolist()
    client.predict("spam", [{"text": t} for t in campaign])
    report = _monitor(client, "spam")
    assert "text.unseen_token_share" in _drifted(report) and report["dataset"]["drifted"]


def test_too_few_sampled_payloads_leave_the_embedding_test_out_with_a_note(client: Client) -> None:
    client.deploy("digits-sampled", "digits", 1, payload_sample_rate=0.05)
    images, _ = media_data.digit_images(100, seed=35, split="test")
    client.predict("digits-sampled", [{"image": i.tolist()} for i in images])
    answer = client.http.post("/v1/endpoints/digits-sampled/monitor", json={"last": 100})
    report = answer.json()
    assert {f["name"] for f in report["features"]} == {f"image.{d}" for d in IMAGE_DESCRIPTORS}
    assert any("embedding drift (mmd) not tested" in note for note in report["notes"]), report.get("notes")


def _with_contacts(seed: int, n: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"{t} Mail {rng.choice(['ann.lee', 'bo.chen'])}@example.org, call 0151 {rng.integers(1000, 9999)}."
            for t in media_data.emails(n, seed)["text"]]  # fmt: skip


def test_a_masked_text_endpoint_is_compared_with_its_masked_reference(client: Client, tmp_path: Path) -> None:
    # Every e-mail carries an address and a number, which the log masks (the endpoint's `redact`): the
    # reference is masked alike, else every window would look new (the token "email", no numbers).
    reference = tmp_path / "contacts.parquet"
    pd.DataFrame({"text": _with_contacts(37, 400), "label": "ham"}).to_parquet(reference)
    art = ARTIFACTS["text"]
    client.register_model(
        "spam-contacts", Path(art.artifact).read_bytes(), art.format, reference=reference, target="label",
        schema=art.schema,
    )  # fmt: skip
    client.deploy("spam-masked", "spam-contacts", 1, redact={"text": "mask"})
    client.predict("spam-masked", [{"text": t} for t in _with_contacts(38, WINDOW)])
    report = _monitor(client, "spam-masked")
    assert not report["dataset"]["drifted"], _drifted(report)
