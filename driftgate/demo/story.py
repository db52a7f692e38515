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
import uvicorn
from rich.console import Console
from rich.table import Table

from driftgate.client import Client
from driftgate.demo import phases, scenario
from driftgate.demo.phases import ENDPOINT
from driftgate.server.app import create_app
from driftgate.settings import Settings

RETRAIN_FUNCTION = "driftgate.demo.scenario:train"
GUARD_CONFIDENCE = 0.6


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
    # The demo runs the monitor on demand and analyses rollouts twice a second, so the story is brisk.
    settings = Settings(
        data_dir=data_dir, port=port, monitor_interval=0, rollout_interval=0.5, train_modules=["driftgate.demo"]
    )
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
        # An output guard: answers the model is unsure of are counted (and alertable).
        # How to retrain (the data scientist's own function, run in a subprocess): alerts and schedules use it.
        retraining = {"train": RETRAIN_FUNCTION, "data": "recent", "min_rows": 500, "rollout": {"strategy": "shadow"}}
        client.deploy(
            ENDPOINT,
            "fraud",
            version["version"],
            output_guard={"min_confidence": GUARD_CONFIDENCE},
            retraining=retraining,
        )
        console.print(
            f"3. deployed it to endpoint '{ENDPOINT}' on http://127.0.0.1:{port}, with an output guard "
            f"(confidence >= {GUARD_CONFIDENCE:.0%})"
        )

        calm = scenario.transactions(2000, seed=2)
        latencies, calm_ids, _ = phases.send_traffic(client, calm, batch=20)
        console.print(f"4. scored {len(calm_ids):,} ordinary transactions in {len(latencies)} requests")
        same = phases.three_protocols_agree(client, calm.head(50))
        console.print(
            f"5. native, Open Inference Protocol V2 and MLflow /invocations gave "
            f"{'identical' if same else 'DIFFERENT'} predictions"
        )
        calm_report = client.http.get(f"/v1/endpoints/{ENDPOINT}/drift", params={"last": len(calm_ids)}).json()
        console.print(f"6. drift check on that window: {_verdict(calm_report)}")

        client.http.post(
            "/v1/alert-rules",
            json={
                "name": "fraud-drift",
                "endpoint": ENDPOINT,
                "metric": "data_drift_share",
                "op": ">",
                "threshold": 0.3,
                "actions": ["retrain"],
            },
        ).raise_for_status()
        shifted = scenario.transactions(3000, seed=3, shift=1.0)
        more, ids, predicted = phases.send_traffic(client, shifted, batch=20)
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
        # Customers dispute the transactions the model got wrong: outcome events tied to predictions.
        wrong = [i for i, p, y in zip(ids, predicted, shifted[scenario.TARGET], strict=True) if p != y]
        client.events(ENDPOINT, [(i, "customer_disputed") for i in wrong])
        monitored = client.http.post(f"/v1/endpoints/{ENDPOINT}/monitor", json={"last": len(ids)})
        monitored.raise_for_status()
        metrics, breakdown = monitored.json()["metrics"], monitored.json()["breakdown"]
        alerts = client.http.get("/v1/alerts", params={"endpoint": ENDPOINT}).json()["alerts"]
        console.print(f"10. the monitor ran and alert rule 'fraud-drift' fired: {_alert_line(alerts)}")
        disputed = breakdown.get("event_rate", {}).get("customer_disputed")
        console.print(
            f"    it also counted customer disputes on {_pct(disputed)} of the window's predictions and "
            f"{_pct(metrics.get('output_guard_violation_rate'))} of answers below the guard's confidence"
        )

        run = phases.retraining(client, alerts)
        v2 = run["candidate"]["version"]
        rows, evaluation = run["rows"], run["evaluation"]
        console.print(
            f"11. the alert's action retrained in a subprocess on {rows['train']:,} labelled recent transactions: "
            f"v{v2} {evaluation['metric']} {evaluation['candidate']:.1%} vs v1 {evaluation['champion']:.1%} on "
            f"{rows['holdout']:,} held-out ones, so run {run['id']} {run['state']} and put v{v2} in shadow"
        )
        shadow = phases.shadow_phase(client, v2)
        console.print(
            f"12. v{v2} in shadow on 1,000 live transactions: agreed with v1 on {_pct(shadow['agreement'])}; "
            f"accuracy on the labels v{v2} {_pct(shadow['candidate'])} vs v1 {_pct(shadow['champion'])}"
        )
        canary = phases.canary_phase(client, v2, console)
        console.print(f"13. canary of v{v2}: {canary['state']} ({canary['reason']})")
        bad = client.http.post(f"/v1/endpoints/{ENDPOINT}/predict", json={"instances": [{"amount": "lots"}]})
        console.print(f"14. a bad request got {bad.status_code}: {bad.json()['error']}")
        requests, calls, queued = phases.burst(client, shifted)
        console.print(
            f"15. 16 clients at once sent {requests} one-row requests: micro-batching scored them in "
            f"{calls} model calls ({requests / max(calls, 1):.1f} requests per call; a call's oldest request "
            f"waited {queued * 1000:.1f} ms on average for it to start)"
        )
        batch = phases.batch(workdir, data_dir)
        console.print(
            f"16. batch: a month's {batch['rows']:,} transactions from a Parquet file scored by v{batch['version']} in "
            f"{batch['chunks']} chunks, {batch['seconds']:.1f} s with start-up, logged with ids -> {batch['output']}"
        )

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
        written, in_process = phases.log_counts(client)
        table.add_row("prediction log rows written (by the server itself)", f"{written:,} ({in_process:,})")
        table.add_row("alerts fired", str(len(alerts)))
        table.add_row("16 clients at once: requests / model calls", f"{requests} / {calls}")
        table.add_row("batch scoring (start-up included)", f"{batch['rows']:,} rows in {batch['seconds']:.1f} s")
        guarded = metrics.get("output_guard_violation_rate")
        table.add_row("disputed / below the guard", f"{_pct(disputed)} / {_pct(guarded)}")
        table.add_row(
            f"retraining run {run['id']} ({run['trigger']})",
            f"v{v2} {evaluation['metric']} {evaluation['candidate']:.1%} vs v1 {evaluation['champion']:.1%} "
            f"on {rows['holdout']:,} held-out rows: {run['state']}",
        )
        table.add_row(
            f"v{v2} rollout",
            f"shadow -> canary {' -> '.join(f'{w:g}%' for w in canary['steps'])} -> {canary['state']}",
        )
        console.print(table)
        if wait:
            keep_dashboard_up(console, port)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0 if same and canary["state"] == "promoted" and alerts else 1


def keep_dashboard_up(console: Console, port: int) -> None:
    """Leave the server up for a look at the dashboard, until Ctrl+C."""
    console.print(f"dashboard: http://127.0.0.1:{port}/  (Ctrl+C to stop)")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass


def _alert_line(alerts: list[dict[str, Any]]) -> str:
    if not alerts:
        return "none"
    a = alerts[0]
    return f"{a['metric']} = {a['value']:.2f} {a['op']} {a['threshold']:g} ({a['severity']})"


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
