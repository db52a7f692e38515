"""A retraining run of a model with a declared text feature (issue 22) registers its successor with the
same declaration: the training window alone would make the text column categorical (no text input
metrics, no max_chars bound)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from driftgate.client import Client
from tests.conftest import LiveServer, make_server
from tests.media_fixtures import HAM, SPAM, TEXT_SCHEMA, text_frame, text_model


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = make_server(tmp_path, train_modules=["tests.media_fixtures"], monitor_interval=0, rollout_interval=0.2)
    yield srv
    srv.stop()


def test_the_retrained_version_keeps_the_declared_text_feature(client: Client) -> None:
    client.register_model("spam", text_model(), "sklearn", reference=text_frame(), target="label", schema=TEXT_SCHEMA)
    client.deploy("spam", "spam", 1)
    for round_ in range(3):
        texts = [f"{t} {round_} {i}" for i in range(6) for t in SPAM + HAM]
        ids = client.predict("spam", [{"text": t} for t in texts])["ids"]
        labels = ["spam" if any(t.startswith(s) for s in SPAM) else "ham" for t in texts]
        client.feedback("spam", dict(zip(ids, labels, strict=True)))
    run = client.retrain("spam", train="tests.media_fixtures:train_text", min_rows=100, rollout=None)
    done = client.wait_for_run(run["id"], timeout=180)
    # registered either way; rolled out only if better than a champion that is already right
    assert done["state"] in ("succeeded", "rejected"), (done["detail"], done["log"])
    assert done["candidate"] == {"model": "spam", "version": 2}
    (feature,) = client.model("spam")["versions"][-1]["schema"]["features"]
    assert (feature["name"], feature["kind"], feature["max_chars"]) == ("text", "text", 1000)
