"""`driftgate demo`: the whole story on embedded defaults, against a real server on loopback."""

from __future__ import annotations

import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import uvicorn
from rich.console import Console
from rich.table import Table

from driftgate.api.app import create_app
from driftgate.client import Client
from driftgate.demo import scenario
from driftgate.settings import Settings

ENDPOINT = "fraud"


class BackgroundServer:
    """uvicorn in a thread of this process, stopped cleanly (SIGTERM-like) on exit."""

    def __init__(self, settings: Settings) -> None:
        config = uvicorn.Config(create_app(settings), host=settings.host, port=settings.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the demo server did not start (is the port free?)")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def run(port: int, data_dir: Path, wait: bool, console: Console) -> int:
    shutil.rmtree(data_dir, ignore_errors=True)
    settings = Settings(data_dir=data_dir, port=port)
    console.rule("[bold]driftgate demo: card-transaction fraud")
    history = scenario.transactions(20_000, seed=1)
    console.print(
        f"1. trained a scikit-learn pipeline on {len(history):,} transactions "
        f"(fraud rate {history[scenario.TARGET].mean():.1%})"
    )
    model = scenario.train(history)
    workdir = Path(tempfile.mkdtemp(prefix="driftgate-demo-"))
    import skops.io as sio

    artifact = workdir / "fraud.skops"
    sio.dump(model, artifact)
    reference = history.sample(5000, random_state=0)

    with BackgroundServer(settings), Client(f"http://127.0.0.1:{port}") as client:
        version = client.register_model("fraud", artifact, "sklearn", reference=reference, target=scenario.TARGET)
        console.print(
            f"2. registered model 'fraud' v{version['version']} (skops, loaded safely) with "
            f"{len(version['schema']['features'])} features inferred from the reference data"
        )
        client.deploy(ENDPOINT, "fraud", version["version"])
        console.print(f"3. deployed it to endpoint '{ENDPOINT}' on http://127.0.0.1:{port}")

        calm = scenario.transactions(2000, seed=2)
        latencies, calm_ids, _ = _send_traffic(client, calm, batch=20)
        console.print(f"4. scored {len(calm_ids):,} ordinary transactions in {len(latencies)} requests")
        same = _three_protocols_agree(client, calm.head(50))
        console.print(
            f"5. native, Open Inference Protocol V2 and MLflow /invocations gave "
            f"{'identical' if same else 'DIFFERENT'} predictions"
        )
        calm_report = client.http.get(f"/v1/endpoints/{ENDPOINT}/drift", params={"last": len(calm_ids)}).json()
        console.print(f"6. drift check on that window: {_verdict(calm_report)}")

        shifted = scenario.transactions(3000, seed=3, shift=1.0)
        more, ids, predicted = _send_traffic(client, shifted, batch=20)
        latencies += more
        console.print(f"7. then the pandemic: {len(ids):,} transactions, online spending now normal")
        report = client.http.get(f"/v1/endpoints/{ENDPOINT}/drift", params={"last": len(ids)}).json()
        console.print(f"8. drift check on the new window: {_verdict(report)}")
        estimated = report.get("performance", {}).get("estimated", {}).get("estimated_accuracy")
        accepted = client.feedback(ENDPOINT, dict(zip(ids, shifted[scenario.TARGET].tolist(), strict=True)))
        accuracy = float(np.mean(np.asarray(predicted) == shifted[scenario.TARGET].to_numpy()))
        labelled = client.http.get(f"/v1/endpoints/{ENDPOINT}/drift", params={"last": len(ids)}).json()
        reference_acc = labelled.get("performance", {}).get("reference", {}).get("accuracy")
        console.print(
            f"9. the bank confirmed {accepted['accepted']:,} outcomes later: accuracy "
            f"{accuracy:.1%} against {_pct(reference_acc)} on the reference (concept drift)"
        )
        bad = client.http.post(f"/v1/endpoints/{ENDPOINT}/predict", json={"instances": [{"amount": "lots"}]})
        console.print(f"10. a bad request got {bad.status_code}: {bad.json()['error']}")

        table = Table("summary", "value", title="what happened")
        table.add_row("requests", f"{len(latencies):,}")
        table.add_row("rows scored and logged", f"{len(calm_ids) + len(ids):,}")
        table.add_row(
            "client latency p50 / p99", f"{statistics.median(latencies):.1f} / {np.percentile(latencies, 99):.1f} ms"
        )
        table.add_row("calm window drifted", str(calm_report["dataset"]["drifted"]))
        table.add_row(
            "pandemic window drifted", f"{report['dataset']['drifted']} ({', '.join(_drifted(report)) or '-'})"
        )
        table.add_row(
            "accuracy: reference / estimated / realised", f"{_pct(reference_acc)} / {_pct(estimated)} / {accuracy:.1%}"
        )
        table.add_row("protocols agreeing", "yes" if same else "no")
        console.print(table)
        if wait:
            console.print(f"dashboard: http://127.0.0.1:{port}/  (Ctrl+C to stop)")
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    shutil.rmtree(workdir, ignore_errors=True)
    return 0 if same else 1


def _drifted(report: dict[str, Any]) -> list[str]:
    return [f["name"] for f in report["features"] if f["drifted"]]


def _verdict(report: dict[str, Any]) -> str:
    if "features" not in report:
        return f"not computed ({report.get('error', report)})"
    names = _drifted(report)
    if not report["dataset"]["drifted"]:
        return "no drift"
    prediction = " and the predictions" if report.get("prediction", {}).get("drifted") else ""
    return f"DRIFT in {', '.join(names) or 'the joint distribution'}{prediction}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _send_traffic(client: Client, frame: Any, batch: int) -> tuple[list[float], list[str], list[int]]:
    features = frame[list(scenario.FEATURES)]
    latencies: list[float] = []
    ids: list[str] = []
    predicted: list[int] = []
    for start in range(0, len(features), batch):
        rows = features.iloc[start : start + batch].to_dict("records")
        t0 = time.perf_counter()
        answer = client.predict(ENDPOINT, rows)
        latencies.append((time.perf_counter() - t0) * 1000)
        ids.extend(answer["ids"])
        predicted.extend(answer["predictions"])
    return latencies, ids, predicted


def _three_protocols_agree(client: Client, frame: Any) -> bool:
    features = frame[list(scenario.FEATURES)]
    native = client.predict(ENDPOINT, features)["predictions"]
    split = {"dataframe_split": {"columns": list(features.columns), "data": features.to_numpy().tolist()}}
    mlflow = client.http.post(
        f"/v1/endpoints/{ENDPOINT}/invocations",
        content=orjson.dumps(split),
        headers={"content-type": "application/json"},
    ).json()["predictions"]
    inputs = []
    for name in features.columns:
        col = features[name]
        if col.dtype.kind in "if":
            inputs.append({"name": name, "shape": [len(col)], "datatype": "FP64", "data": col.astype(float).tolist()})
        else:
            inputs.append({"name": name, "shape": [len(col)], "datatype": "BYTES", "data": col.astype(str).tolist()})
    v2 = client.http.post(f"/v2/models/{ENDPOINT}/infer", json={"inputs": inputs}).json()
    v2_pred = next(o["data"] for o in v2["outputs"] if o["name"] == "predict")
    return native == mlflow == list(v2_pred)
