"""`driftgate demo --scenario inspection`: visual inspection on a factory line (the seeds' own example).

A camera photographs each phone; a model reads the part number stamped on it (scikit-learn's bundled
8x8 digits stand in for the photos). The model first runs in shadow beside the human inspector, who
decides; once it has earned trust it answers itself and sends only the photos it is unsure of to the
inspector. Then a lamp on the line dims: the photos' brightness drifts, the monitor catches it (the
brightness descriptor and the MMD test on the images), an alert fires, more photos go to review, and a
model retrained on the inspector's labels of dim photos is rolled out by canary.

Needs the `onnx` and `images` extras (scripts/demo installs them).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from driftgate.client import Client
from driftgate.demo import media_data, media_models
from driftgate.demo.phases import follow_rollout
from driftgate.settings import Settings

ENDPOINT = "line"
MODEL = "inspector"
FEATURE = media_models.IMAGE_FEATURE
DIM = 0.45  # the dimmed lamp: each pixel's value times this
REVIEW_THRESHOLD = 0.9


def run(port: int, data_dir: Path, wait: bool, console: Console) -> int:
    from driftgate.demo.story import BackgroundServer, keep_dashboard_up

    shutil.rmtree(data_dir, ignore_errors=True)
    settings = Settings(data_dir=data_dir, port=port, monitor_interval=0, rollout_interval=0.5)
    console.rule("[bold]driftgate demo: visual inspection on a factory line")
    workdir = Path(tempfile.mkdtemp(prefix="driftgate-inspection-"))
    images, digits = media_data.digit_images(1200, 0, split="train")
    model = media_models.train_image_model(images, digits, seed=0)
    artifact = workdir / "inspector.onnx"
    artifact.write_bytes(media_models.image_model_onnx(model))
    held_out, held_digits = media_data.digit_images(400, 1, split="test")
    console.print(
        f"1. trained a small neural network on {len(images):,} photos of part numbers and exported it to ONNX "
        f"(held-out accuracy {np.mean(model.predict(held_out.reshape(len(held_out), -1)) == held_digits):.1%})"
    )
    ok = False
    with BackgroundServer(settings), Client(f"http://127.0.0.1:{port}") as client:
        ref_images, ref_digits = media_data.digit_images(300, 2, split="test")
        reference = media_data.reference_frame(FEATURE, ref_images, ref_digits)
        version = client.register_model(
            MODEL, artifact, "onnx", reference=reference, target=media_models.TARGET, schema=media_models.IMAGE_SCHEMA
        )
        feature = version["schema"]["features"][0]
        console.print(
            f"2. registered '{MODEL}' v1 (ONNX, served in a worker process) with input '{feature['name']}': "
            f"a {'x'.join(map(str, feature['shape']))} {feature['dtype']} image"
        )
        # Shadow mode beside the inspector: every photo waits for a person; the model's answer is logged only.
        client.deploy(ENDPOINT, MODEL, 1, automation="human_only", payload_sample_rate=0.1)
        photos, truth = media_data.digit_images(300, 3, split="test")
        answers = _send(client, photos)
        labelled = _inspect(client, truth_by_id(answers, truth))
        shadow = _monitor(client, len(answers))
        console.print(
            f"3. shadow mode beside the human inspector: {len(answers)} photos, all decided by the inspector "
            f"({labelled} labelled in the review queue); the model agreed on {_pct(shadow['metrics'].get('accuracy'))}"
        )

        client.deploy(
            ENDPOINT, MODEL, 1, automation="partial", review_threshold=REVIEW_THRESHOLD, payload_sample_rate=0.1
        )
        client.http.post(
            "/v1/alert-rules",
            json={"name": "line-lighting", "endpoint": ENDPOINT, "metric": "data_drift_share", "op": ">",
                  "threshold": 0.25},
        ).raise_for_status()  # fmt: skip
        photos, truth = media_data.digit_images(600, 4, split="test")
        answers = _send(client, photos)
        calm_review = _review_share(answers)
        _feedback(client, answers, truth)
        calm = _monitor(client, len(answers))
        console.print(
            f"4. trusted with the confident ones (confidence >= {REVIEW_THRESHOLD:.0%}): {len(answers)} photos, "
            f"{calm_review:.1%} sent to the inspector; drift: {_verdict(calm['report'])}; "
            f"accuracy on the line's end-of-line checks {_pct(calm['metrics'].get('accuracy'))}"
        )

        dimmed_at = time.time()
        photos, truth = media_data.digit_images(600, 5, split="test", scale=DIM)
        answers = _send(client, photos)
        dim_review = _review_share(answers)
        dim = _monitor(client, len(answers))
        alerts = client.http.get("/v1/alerts", params={"endpoint": ENDPOINT}).json()["alerts"]
        brightness = _feature(dim["report"], f"{FEATURE}.brightness")
        console.print(
            f"5. a lamp on the line dims: {len(answers)} photos, mean brightness "
            f"{_mean_brightness(photos):.2f} (was {_mean_brightness(ref_images):.2f}); drift: {_verdict(dim['report'])}"
        )
        console.print(
            f"   brightness test p adj. {_fmt(brightness.get('p_value_adjusted'))}; alert: {_alert_line(alerts)}; "
            f"{dim_review:.1%} of the photos now go to the inspector (was {calm_review:.1%})"
        )
        labelled = _inspect(client, truth_by_id(answers, truth))
        _feedback(client, answers, truth)
        realised = _monitor(client, len(answers))["metrics"].get("accuracy")
        console.print(
            f"6. the inspector labelled {labelled} dim photos from the queue; the model's accuracy on dim photos: "
            f"{_pct(realised)}"
        )

        dim_photos, dim_digits = _labelled_photos(data_dir, since=dimmed_at)
        v2_model = media_models.train_image_model(
            np.concatenate([images, dim_photos]), np.concatenate([digits, dim_digits]), seed=0
        )
        artifact_v2 = workdir / "inspector-v2.onnx"
        artifact_v2.write_bytes(media_models.image_model_onnx(v2_model))
        v2 = client.register_model(
            MODEL, artifact_v2, "onnx", reference=reference, target=media_models.TARGET,
            schema=media_models.IMAGE_SCHEMA,
        )["version"]  # fmt: skip
        console.print(
            f"7. retrained on the {len(images):,} photos plus the {len(dim_photos)} dim ones the inspector labelled "
            f"(read back from the prediction log), registered v{v2}"
        )
        canary = _canary(client, v2, console)
        console.print(f"8. canary of v{v2}: {canary['state']} ({canary.get('reason', '')})")
        photos, truth = media_data.digit_images(600, 9, split="test", scale=DIM)
        answers = _send(client, photos)
        after_review = _review_share(answers)
        _feedback(client, answers, truth)
        after = _monitor(client, len(answers))["metrics"].get("accuracy")

        table = Table("summary", "value", title="what happened")
        table.add_row("shadow beside the inspector: agreement", _pct(shadow["metrics"].get("accuracy")))
        table.add_row("photos sent to review: normal light / dim / dim with v2", (
            f"{calm_review:.1%} / {dim_review:.1%} / {after_review:.1%}"))  # fmt: skip
        table.add_row("accuracy: normal light v1 / dim v1 / dim v2", (
            f"{_pct(calm['metrics'].get('accuracy'))} / {_pct(realised)} / {_pct(after)}"))  # fmt: skip
        table.add_row("normal light window drifted", str(calm["report"].get("dataset", {}).get("drifted")))
        table.add_row("dim window drifted", f"{dim['report'].get('dataset', {}).get('drifted')} ({_drifted(dim)})")
        table.add_row("alerts fired", str(len(alerts)))
        table.add_row(f"v{v2} rollout", canary["state"])
        console.print(table)
        ok = bool(alerts) and canary["state"] == "promoted" and not calm["report"]["dataset"]["drifted"]
        if wait:
            keep_dashboard_up(console, port)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


# ---- the line, the inspector, the monitor -----------------------------------------------------------


def _send(client: Client, photos: np.ndarray, batch: int = 20) -> list[tuple[str, Any, str]]:
    """Each photo scored: (prediction id, answer or None, status "ok" or "review")."""
    out: list[tuple[str, Any, str]] = []
    for start in range(0, len(photos), batch):
        rows = [{FEATURE: image.tolist()} for image in photos[start : start + batch]]
        answer = client.predict(ENDPOINT, rows)
        statuses = answer.get("status") or ["ok"] * len(rows)
        out.extend(zip(answer["ids"], answer["predictions"], statuses, strict=True))
    return out


def truth_by_id(answers: list[tuple[str, Any, str]], truth: np.ndarray) -> dict[str, int]:
    return {pid: int(t) for (pid, _, _), t in zip(answers, truth, strict=True)}


def _inspect(client: Client, truth: dict[str, int]) -> int:
    """The inspector works through the queue: each waiting photo gets its true part number."""
    done = 0
    while True:
        items = client.http.get("/v1/review", params={"endpoint": ENDPOINT, "limit": 500}).json()["items"]
        todo = [i for i in items if i["id"] in truth]
        if not todo:
            return done
        for item in todo:
            client.http.post(f"/v1/review/{item['id']}", json={"label": truth[item["id"]]}).raise_for_status()
            done += 1


def _feedback(client: Client, answers: list[tuple[str, Any, str]], truth: np.ndarray) -> None:
    """The end-of-line check confirms every answered phone's part number later."""
    outcomes = {pid: int(t) for (pid, _, status), t in zip(answers, truth, strict=True) if status == "ok"}
    if outcomes:
        client.feedback(ENDPOINT, outcomes)


def _monitor(client: Client, last: int) -> dict[str, Any]:
    result = client.http.post(f"/v1/endpoints/{ENDPOINT}/monitor", json={"last": last})
    result.raise_for_status()
    body = result.json()
    return {"metrics": body.get("metrics", {}), "report": body}  # the drift report, with the run's metrics


def _labelled_photos(data_dir: Path, since: float) -> tuple[np.ndarray, np.ndarray]:
    """The photos the inspector labelled since the lamp dimmed (every review row keeps its pixels)."""
    from driftgate.core.payload import decode_tensor
    from driftgate.store import Store

    store = Store.open(data_dir)
    photos, digits = [], []
    try:
        for chunk in store.predictions.iter_with_labels(ENDPOINT, since=since, role="primary"):
            for row in chunk:
                image = row["inputs"].get(FEATURE)
                if row.get("label") is not None and image is not None and row.get("status") == "review":
                    photos.append(decode_tensor(image))
                    digits.append(int(row["label"]))
    finally:
        store.close()
    return np.asarray(photos, dtype=np.float32), np.asarray(digits, dtype=np.int64)


def _canary(client: Client, version: int, console: Console) -> dict[str, Any]:
    """Canary of the retrained version on dim photos; the end-of-line checks keep labels coming."""
    client.start_rollout(
        ENDPOINT,
        "canary",
        version,
        steps=[50, 100],
        min_requests_per_step=150,
        step_seconds=1,
        analysis={"max_error_rate": 0.01, "min_accuracy": 0.8, "min_labels": 150},
        reason="retrained on the inspector's labels of dim photos",
    )

    def dim_photos_checked(seed: int) -> None:
        photos, truth = media_data.digit_images(200, seed, split="test", scale=DIM)
        _feedback(client, _send(client, photos), truth)

    return follow_rollout(client, ENDPOINT, version, dim_photos_checked, console, seconds=120)


# ---- words ----------------------------------------------------------------------------------------


def _review_share(answers: list[tuple[str, Any, str]]) -> float:
    return sum(status == "review" for _, _, status in answers) / max(len(answers), 1)


def _mean_brightness(photos: np.ndarray) -> float:
    return float(np.mean(photos) / media_data.PIXEL_MAX)


def _feature(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next((f for f in report.get("features", []) if f.get("name") == name), {})


def _drifted(run: dict[str, Any]) -> str:
    return ", ".join(f["name"] for f in run["report"].get("features", []) if f.get("drifted")) or "-"


def _verdict(report: dict[str, Any]) -> str:
    if "dataset" not in report:
        return f"not computed ({report.get('notes') or report.get('error')})"
    drifted = [f["name"] for f in report.get("features", []) if f.get("drifted")]
    return f"DRIFT in {', '.join(drifted)}" if report["dataset"].get("drifted") else "no drift"


def _alert_line(alerts: list[dict[str, Any]]) -> str:
    if not alerts:
        return "none fired"
    a = alerts[0]
    return f"'{a['rule']}' fired ({a['metric']} = {a['value']:.2f} {a['op']} {a['threshold']:g})"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2g}"
