"""The dashboard's performance panel in headless Chromium against a real server: estimated against
realised, each estimate with its band, and the three verdicts (data, performance, concept drift)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from driftgate.client import Client
from tests.conftest import Artifacts, LiveServer, classification_data

pytestmark = pytest.mark.browser
FEATURES = ["x1", "x2", "colour"]


@pytest.fixture
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: run scripts/browser (scripts/test does)"
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield instance
        instance.close()


def test_estimated_against_realised_with_bands(
    client: Client, server: LiveServer, artifacts: Artifacts, browser: object
) -> None:
    client.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
    client.deploy("clf", "clf", 1)
    for seed in (11, 12):  # two monitor runs: a line, not a point; half the rows labelled
        frame = classification_data(600, seed)
        ids = client.predict("clf", frame[FEATURES].to_dict(orient="records"))["ids"]
        client.feedback("clf", dict(zip(ids[:300], frame["y"].tolist()[:300], strict=True)))
        assert client.http.post("/v1/endpoints/clf/monitor", json={"last": 600}).status_code == 200
    page = browser.new_page()  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/")
    page.wait_for_selector('#performance .perf[data-metric="accuracy"]', timeout=30_000)
    card = page.locator('#performance .perf[data-metric="accuracy"]')
    assert card.locator("svg path.band").count() == 1
    assert card.locator("svg path.estimated").count() == 1 and card.locator("svg path.realised").count() == 1
    assert card.locator("svg path.threshold").count() == 1
    assert "est." in card.inner_text() and "2 estimates, 2 realised" in card.inner_text()
    assert page.locator('#performance .perf[data-metric="roc_auc"]').count() == 1
    note = page.locator("#performance-note").inner_text()
    assert "data drift: no" in note and "performance drift: no" in note and "concept drift: no" in note
    assert errors == []
