"""The dashboard at `/` in headless Chromium (Debian's, driven by Playwright) against a real server:
what SPEC 9 asks it to show is on the page, drawn from the API, offline."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftgate.client import Client
from tests.api.test_retraining import TRAIN, labelled_traffic
from tests.conftest import Artifacts, LiveServer, classification_data, make_server
from tests.media_fixtures import register_artifact

pytestmark = pytest.mark.browser
FEATURES = ["x1", "x2", "colour"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = make_server(tmp_path, train_modules=["tests.train_functions"], monitor_interval=0, rollout_interval=3600)
    yield srv
    srv.stop()


@pytest.fixture
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: run scripts/browser (scripts/test does)"
    with sync_playwright() as p:
        # No sandbox: tests run as root in a container. Offline: no request leaves loopback.
        instance = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield instance
        instance.close()


def story(client: Client, artifacts: Artifacts) -> None:
    """A retraining run whose v2 goes to a canary, traffic with drift and labels, monitor runs that
    fire an alert, and rows waiting for review."""
    client.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
    client.deploy("clf", "clf", 1, automation="partial", review_threshold=0.9)
    labelled_traffic(client, 200, seed=3, flip=True)
    done = client.wait_for_run(client.retrain("clf", train=TRAIN, min_rows=100, rollout=None)["id"], timeout=120)
    assert done["state"] == "succeeded", done["detail"]
    rule = {"name": "drifting", "endpoint": "clf", "metric": "data_drift_share", "op": ">", "threshold": 0.1}
    assert client.http.post("/v1/alert-rules", json=rule).status_code == 201
    shifted = classification_data(400, 4).assign(x1=lambda f: f["x1"] + 3)
    client.predict("clf", shifted[FEATURES].to_dict(orient="records"))
    for last in (500, 600):  # two runs (a line, not a point), both with labelled rows
        assert client.http.post("/v1/endpoints/clf/monitor", json={"last": last}).status_code == 200
    # Last: a canary would send a whole request to v2 now and then, out of v1's monitored window.
    client.start_rollout("clf", "canary", 2, steps=[25, 100], analysis={"max_error_rate": 0.5})


def test_the_dashboard_shows_endpoints_rollout_metrics_drift_alerts_review_and_runs(
    client: Client, server: LiveServer, artifacts: Artifacts, browser: object
) -> None:
    story(client, artifacts)
    page = browser.new_page()  # type: ignore[attr-defined]
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(server.url) else outside.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-loaded]", timeout=30_000)

    row = page.locator('#endpoints tr[data-endpoint="clf"]')
    assert "v1 75% / v2 25%" in row.inner_text() and "canary v2: running" in row.inner_text()
    card = page.locator("#rollout-card").inner_text()
    assert "canary rollout" in card and "clf v1 -> v2" in card and "step 1 of 2 (25% -> 100%)" in card

    drift_share = page.locator('#metrics .metric[data-metric="data_drift_share"]')
    assert drift_share.count() == 1 and drift_share.locator("svg path").count() == 1
    assert page.locator('#metrics .metric[data-metric="accuracy"]').count() == 1

    x1 = page.locator('#drift .feature[data-feature="x1"]')
    assert "drifted" in x1.inner_text() and x1.locator("svg.histogram rect").count() > 4
    assert "stable" in page.locator('#drift .feature[data-feature="x2"]').inner_text()
    colour = page.locator('#drift .feature[data-feature="colour"] svg.histogram rect')
    assert colour.count() == 8  # three categories and "(other)", reference and current side by side
    assert "1 of 3 features drifted" in page.locator("#drift-note").inner_text()

    assert "drifting" in page.locator("#alerts").inner_text()
    waiting = page.locator("#review tbody tr").count()
    assert waiting > 0  # partial automation deferred unsure rows
    # A reviewer labels the first one from the page: it is stored as the label and leaves the queue.
    # What they type survives the page's refresh (every 5 s) while they decide.
    form = page.locator("#review form.decide").first
    decided = form.get_attribute("data-id")
    label = "1" if form.locator("input").input_value() == "0" else "0"  # not the model's answer, pre-filled
    form.locator("input").fill(label)
    loaded = page.evaluate("document.body.dataset.loaded")
    page.wait_for_function(f"document.body.dataset.loaded !== '{loaded}'", timeout=30_000)
    assert page.locator(f'#review form.decide[data-id="{decided}"] input').input_value() == label
    form.locator("button").click()
    page.wait_for_function(f"document.querySelectorAll('#review tbody tr').length === {waiting - 1}", timeout=30_000)
    queue = client.http.get("/v1/review", params={"endpoint": "clf", "limit": 1000}).json()["items"]
    assert decided not in {i["id"] for i in queue}
    labels = server.app.state.services.store.predictions.window("clf", last=5000)
    assert {p["id"]: p["label"] for p in labels}[decided] == int(label)
    runs = page.locator("#retraining").inner_text()
    assert "succeeded" in runs and "v2" in runs and "accuracy" in runs

    # Another endpoint is one click away.
    client.deploy("other", "clf", 1)
    page.reload()
    page.wait_for_selector('#endpoints tr[data-endpoint="other"]', timeout=30_000)
    page.locator('#endpoints tr[data-endpoint="other"]').click()
    page.wait_for_function("document.querySelector('#detail-title').textContent.includes('other')")
    page.wait_for_selector("#retraining p.muted", timeout=30_000)
    assert "No retraining run yet" in page.locator("#retraining").inner_text()
    assert errors == [] and outside == []


def test_a_protected_server_asks_for_a_token_and_uses_it(tmp_path: Path, artifacts: Artifacts, browser: object) -> None:
    from driftgate.store import Store

    store = Store.open(tmp_path / "data")
    admin = store.tokens.create("admin", name="t")
    reader = store.tokens.create("predict", name="r")
    store.close()
    srv = make_server(tmp_path)
    try:
        with Client(srv.url, token=admin) as client:
            client.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
            client.deploy("clf", "clf", 1)
        page = browser.new_page()  # type: ignore[attr-defined]
        page.goto(srv.url + "/")
        page.wait_for_function("document.querySelector('#error').textContent.includes('401')", timeout=30_000)
        assert "enter a token above" in page.locator("#error").inner_text()
        page.fill("#token", reader)
        page.dispatch_event("#token", "change")
        page.wait_for_selector('#endpoints tr[data-endpoint="clf"]', timeout=30_000)
        page.wait_for_function("document.querySelector('#review').textContent.length > 0", timeout=30_000)
        assert "needs an admin token" in page.locator("#review").inner_text()
        assert page.locator("#error").inner_text() == ""
    finally:
        srv.stop()


def test_an_answer_to_the_old_token_does_not_bring_its_error_back(
    tmp_path: Path, artifacts: Artifacts, browser: object
) -> None:
    """CI once saw the 401 from before the token was entered still on the page after the new token's
    data was drawn: the refresh started without a token ended last. Here the tokenless request to
    /v1/endpoints is held until the refresh with the token has ended, then let through."""
    from driftgate.store import Store

    store = Store.open(tmp_path / "data")
    reader = store.tokens.create("predict", name="r")
    store.close()
    srv = make_server(tmp_path)
    held: list[object] = []
    try:
        page = browser.new_page()  # type: ignore[attr-defined]

        def hold_the_tokenless_one(route: object, request: object) -> None:
            if "authorization" not in request.headers and not held:  # type: ignore[attr-defined]
                held.append(route)
            else:
                route.continue_()  # type: ignore[attr-defined]

        page.route("**/v1/endpoints", hold_the_tokenless_one)
        page.goto(srv.url + "/")
        page.wait_for_function("document.querySelector('#token') !== null")
        page.fill("#token", reader)
        page.dispatch_event("#token", "change")
        page.wait_for_function("document.body.dataset.loaded !== undefined", timeout=30_000)
        assert len(held) == 1 and page.locator("#error").inner_text() == ""
        ended = int(page.evaluate("Number(document.body.dataset.refreshes || 0)"))
        with page.expect_response(lambda r: r.url.endswith("/v1/endpoints") and r.status == 401):
            held[0].continue_()  # type: ignore[attr-defined]
        page.wait_for_function(f"Number(document.body.dataset.refreshes || 0) > {ended}", timeout=30_000)
        assert page.locator("#error").inner_text() == ""
    finally:
        srv.stop()


def test_the_review_queue_shows_an_image_and_a_text(tmp_path: Path, browser: object) -> None:
    """Issue 22: a person labels photos and e-mails from the queue. The image is drawn from the logged
    tensor in the page (pixels as sent, scaled by the schema's max), the e-mail is shown as text (escaped:
    markup in it stays text), and nothing is fetched from outside the server."""
    from driftgate.demo import media_data, media_models

    arts = media_models.write_artifacts(tmp_path / "models", reference_rows=120)
    srv = make_server(tmp_path)
    try:
        with Client(srv.url) as client:
            for kind in ("image", "text"):
                register_artifact(client, arts[kind])
                client.deploy(arts[kind].name, arts[kind].name, 1, automation="human_only")
            images, _ = media_data.digit_images(2, seed=7)
            images[0] = 0.0
            images[0][2:6, 2:6] = media_data.PIXEL_MAX  # a white square on black: known pixels
            answer = client.predict("digits", [{"image": image.tolist()} for image in images])
            assert answer["status"] == ["review", "review"]
            mail = "<b>free</b> prize: write to <script>alert(1)</script> now"
            client.predict("spam", [{"text": mail}])
        page = browser.new_page()  # type: ignore[attr-defined]
        outside: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(srv.url) else outside.append(r.url))
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(srv.url + "/")
        page.wait_for_selector('#endpoints tr[data-endpoint="digits"]', timeout=30_000)
        page.locator('#endpoints tr[data-endpoint="digits"]').click()
        page.wait_for_function(
            "document.querySelectorAll('#review canvas.thumb[data-feature=\"image\"][data-drawn]').length === 2",
            timeout=30_000,
        )
        first = answer["ids"][0]
        pixels = page.evaluate(
            """id => { const c = document.querySelector(`#review form.decide[data-id="${id}"]`).closest("tr")
                         .querySelector("canvas.thumb");
                       const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                       return [c.width, c.height, d[0], d[4 * (3 * 8 + 3)]]; }""",
            first,
        )
        assert pixels == [8, 8, 0, 255]  # black corner, white square: the tensor as sent, scaled by max 16

        page.locator('#endpoints tr[data-endpoint="spam"]').click()
        page.wait_for_selector('#review blockquote.text[data-feature="text"]', timeout=30_000)
        shown = page.locator('#review blockquote.text[data-feature="text"]')
        assert shown.inner_text() == mail and shown.locator("script, b").count() == 0
        assert errors == [] and outside == []
    finally:
        srv.stop()
