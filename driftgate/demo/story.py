"""`driftgate demo`: the whole story on embedded defaults, against a real server on loopback."""

from __future__ import annotations

import shutil
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import uvicorn
from rich.console import Console
from rich.table import Table

from driftgate.client import Client
from driftgate.demo import scenario
from driftgate.server.app import create_app
from driftgate.settings import Settings

ENDPOINT = "fraud"
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
        latencies, calm_ids, _ = _send_traffic(client, calm, batch=20)
        console.print(f"4. scored {len(calm_ids):,} ordinary transactions in {len(latencies)} requests")
        same = _three_protocols_agree(client, calm.head(50))
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

        run = _retraining(client, alerts)
        v2 = run["candidate"]["version"]
        rows, evaluation = run["rows"], run["evaluation"]
        console.print(
            f"11. the alert's action retrained in a subprocess on {rows['train']:,} labelled recent transactions: "
            f"v{v2} {evaluation['metric']} {evaluation['candidate']:.1%} vs v1 {evaluation['champion']:.1%} on "
            f"{rows['holdout']:,} held-out ones, so run {run['id']} {run['state']} and put v{v2} in shadow"
        )
        shadow = _shadow_phase(client, v2)
        console.print(
            f"12. v{v2} in shadow on 1,000 live transactions: agreed with v1 on {_pct(shadow['agreement'])}; "
            f"accuracy on the labels v{v2} {_pct(shadow['candidate'])} vs v1 {_pct(shadow['champion'])}"
        )
        canary = _canary_phase(client, v2, console)
        console.print(f"13. canary of v{v2}: {canary['state']} ({canary['reason']})")
        bad = client.http.post(f"/v1/endpoints/{ENDPOINT}/predict", json={"instances": [{"amount": "lots"}]})
        console.print(f"14. a bad request got {bad.status_code}: {bad.json()['error']}")
        requests, calls, queued = _burst(client, shifted)
        console.print(
            f"15. 16 clients at once sent {requests} one-row requests: micro-batching scored them in "
            f"{calls} model calls ({requests / max(calls, 1):.1f} requests per call; a call's oldest request "
            f"waited {queued * 1000:.1f} ms on average for it to start)"
        )
        batch = _batch(workdir, data_dir)
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
        written, in_process = _log_counts(client)
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
            console.print(f"dashboard: http://127.0.0.1:{port}/  (Ctrl+C to stop)")
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    shutil.rmtree(workdir, ignore_errors=True)
    return 0 if same and canary["state"] == "promoted" and alerts else 1


def _alert_line(alerts: list[dict[str, Any]]) -> str:
    if not alerts:
        return "none"
    a = alerts[0]
    return f"{a['metric']} = {a['value']:.2f} {a['op']} {a['threshold']:g} ({a['severity']})"


def _batch(workdir: Path, data_dir: Path) -> dict[str, Any]:
    """`driftgate batch score` on a file of a month of transactions, next to the running server."""
    import asyncio

    import pyarrow.parquet as pq

    from driftgate.server.batch import score_on_store

    month = scenario.transactions(50_000, seed=6, shift=1.0)[list(scenario.FEATURES)]
    source, target = workdir / "month.parquet", workdir / "month-scored.parquet"
    month.to_parquet(source)
    started = time.perf_counter()
    summary = asyncio.run(score_on_store(ENDPOINT, source, target, 10_000, data_dir, None))
    seconds = time.perf_counter() - started
    versions = pq.read_table(target, columns=["version"]).column("version").unique().to_pylist()
    return {
        "rows": summary.rows,
        "chunks": summary.chunks,
        "seconds": seconds,
        "version": versions[0] if len(versions) == 1 else versions,
        "output": target.name,
    }


def _retraining(client: Client, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """The run the alert started (or one started now, should the alert not have fired), once ended."""
    runs = client.retraining_runs(ENDPOINT)
    run = runs[0] if runs else client.retrain(ENDPOINT, reason="concept drift")
    done = client.wait_for_run(run["id"], timeout=300)
    if done["state"] == "failed":
        raise RuntimeError(f"retraining run {done['id']} failed: {done['detail']}\n{done['log']}")
    return done


def _shadow_phase(client: Client, version: int) -> dict[str, float | None]:
    """The candidate sees a copy of live traffic; labels arrive; compare the two."""
    if client.rollout(ENDPOINT)["state"] != "running":  # the retraining run starts it when v2 is better
        client.start_rollout(ENDPOINT, "shadow", version, reason="retrained on pandemic data")
    frame = scenario.transactions(1000, seed=5, shift=1.0)
    _, ids, _ = _send_traffic(client, frame, batch=20)
    client.feedback(ENDPOINT, dict(zip(ids, frame[scenario.TARGET].tolist(), strict=True)))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        view = client.rollout(ENDPOINT)
        cand = view["versions"].get("candidate", {})
        if view["pairs"] >= len(ids) and cand.get("labelled", 0) >= len(ids):
            break
        time.sleep(0.2)
    versions = view["versions"]
    return {
        "agreement": view.get("agreement"),
        "candidate": versions.get("candidate", {}).get("accuracy"),
        "champion": versions.get("champion", {}).get("accuracy"),
    }


def _canary_phase(client: Client, version: int, console: Console) -> dict[str, Any]:
    """Canary with quality gates; traffic (and its labels) keeps coming until the controller decides."""
    client.start_rollout(
        ENDPOINT,
        "canary",
        version,
        steps=[25, 50, 100],
        min_requests_per_step=200,
        step_seconds=1,
        # v2 (trained on the 2,400 labelled rows the run saw) scores ~0.52 on pandemic labels, v1 ~0.35:
        # with 400 labels the gate's standard error is ~0.025, so 0.45 separates them. The gate fails only
        # on evidence (a sequential test), so a dip of v2's estimate under the limit holds the step as
        # `inconclusive` instead of rolling v2 back.
        analysis={"max_error_rate": 0.01, "max_latency_p99_ms": 500, "min_accuracy": 0.45, "min_labels": 400},
        reason="shadow looked good",
    )
    seed, step, deadline = 100, 0, time.monotonic() + 90
    view = client.rollout(ENDPOINT)
    while view["state"] == "running" and time.monotonic() < deadline:
        frame = scenario.transactions(200, seed=seed, shift=1.0)
        seed += 1
        _, ids, _ = _send_traffic(client, frame, batch=20)
        client.feedback(ENDPOINT, dict(zip(ids, frame[scenario.TARGET].tolist(), strict=True)))
        view = client.rollout(ENDPOINT)
        if view["state"] == "running" and view["step"] != step:
            step = view["step"]
            console.print(
                f"    canary step {step}/{len(view['steps'])}: v{version} answers {view['weight']:g}% of traffic"
            )
    return view


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


def _log_counts(client: Client) -> tuple[int, int]:
    """Rows the prediction log wrote, and how many of them the server wrote itself (the rest: its
    idle-priority writer process), from /metrics."""
    counts = {"driftgate_log_written_rows_total": 0.0, "driftgate_log_overflow_rows_total": 0.0}
    for line in client.http.get("/metrics").text.splitlines():
        name, _, value = line.partition(" ")
        if name in counts:
            counts[name] = float(value)
    return int(counts["driftgate_log_written_rows_total"]), int(counts["driftgate_log_overflow_rows_total"])


def _burst(client: Client, frame: Any, clients: int = 16, each: int = 25) -> tuple[int, int, float]:
    """`clients` callers sending one-row requests at once: (requests, model calls the endpoint made
    for them, mean seconds a call's oldest request waited for it to start), from /metrics."""
    rows = frame[list(scenario.FEATURES)].to_dict("records")

    def caller(i: int) -> None:
        for j in range(each):
            client.predict(ENDPOINT, [rows[(i * each + j) % len(rows)]])

    calls_before, queued_before = _batching_totals(client)
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(caller, range(clients)))
    calls_after, queued_after = _batching_totals(client)
    calls = int(calls_after - calls_before)
    return clients * each, calls, (queued_after - queued_before) / max(calls, 1)


def _batching_totals(client: Client) -> tuple[float, float]:
    """Model calls the demo endpoint's live versions made so far (shadows not counted), and the seconds
    their oldest requests waited for them to start, from /metrics."""
    totals = {"driftgate_model_batch_rows_count{": 0.0, "driftgate_model_queue_seconds_sum{": 0.0}
    for line in client.http.get("/metrics").text.splitlines():
        name, _, value = line.rpartition(" ")
        for prefix in totals:
            if name.startswith(prefix) and f'endpoint="{ENDPOINT}"' in name and 'role="primary"' in name:
                totals[prefix] += float(value)
    calls, queued = totals.values()
    return calls, queued


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
