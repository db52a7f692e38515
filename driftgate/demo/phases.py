"""The demo's conversations with its server (demo/story.py tells the story): traffic, the shadow and
canary phases, the retraining run, the batch job, and what /metrics says about the log and batching."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from driftgate.client import Client
from driftgate.demo import scenario

ENDPOINT = "fraud"


def batch(workdir: Path, data_dir: Path) -> dict[str, Any]:
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


def retraining(client: Client, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """The run the alert started (or one started now, should the alert not have fired), once ended."""
    runs = client.retraining_runs(ENDPOINT)
    run = runs[0] if runs else client.retrain(ENDPOINT, reason="concept drift")
    done = client.wait_for_run(run["id"], timeout=300)
    if done["state"] == "failed":
        raise RuntimeError(f"retraining run {done['id']} failed: {done['detail']}\n{done['log']}")
    return done


def shadow_phase(client: Client, version: int) -> dict[str, float | None]:
    """The candidate sees a copy of live traffic; labels arrive; compare the two."""
    if client.rollout(ENDPOINT)["state"] != "running":  # the retraining run starts it when v2 is better
        client.start_rollout(ENDPOINT, "shadow", version, reason="retrained on pandemic data")
    frame = scenario.transactions(1000, seed=5, shift=1.0)
    _, ids, _ = send_traffic(client, frame, batch=20)
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


def canary_phase(client: Client, version: int, console: Console) -> dict[str, Any]:
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

    def labelled_traffic(seed: int) -> None:
        frame = scenario.transactions(200, seed=seed, shift=1.0)
        _, ids, _ = send_traffic(client, frame, batch=20)
        client.feedback(ENDPOINT, dict(zip(ids, frame[scenario.TARGET].tolist(), strict=True)))

    return follow_rollout(client, ENDPOINT, version, labelled_traffic, console, seconds=90)


def follow_rollout(
    client: Client, endpoint: str, version: int, traffic: Callable[[int], None], console: Console, seconds: float
) -> dict[str, Any]:
    """Keep `traffic(seed)` (a batch of requests and their labels) coming while the rollout runs, telling
    each step as the controller takes it; the rollout's view once it ended (or `seconds` passed)."""
    seed, step, deadline = 100, 0, time.monotonic() + seconds
    view = client.rollout(endpoint)
    while view["state"] == "running" and time.monotonic() < deadline:
        traffic(seed)
        seed += 1
        view = client.rollout(endpoint)
        if view["state"] == "running" and view["step"] != step:
            step = view["step"]
            console.print(
                f"    canary step {step}/{len(view['steps'])}: v{version} answers {view['weight']:g}% of traffic"
            )
    return view


def log_counts(client: Client) -> tuple[int, int]:
    """Rows the prediction log wrote, and how many of them the server wrote itself (the rest: its
    idle-priority writer process), from /metrics."""
    counts = {"driftgate_log_written_rows_total": 0.0, "driftgate_log_overflow_rows_total": 0.0}
    for line in client.http.get("/metrics").text.splitlines():
        name, _, value = line.partition(" ")
        if name in counts:
            counts[name] = float(value)
    return int(counts["driftgate_log_written_rows_total"]), int(counts["driftgate_log_overflow_rows_total"])


def burst(client: Client, frame: Any, clients: int = 16, each: int = 25) -> tuple[int, int, float]:
    """`clients` callers sending one-row requests at once: (requests, model calls the endpoint made
    for them, mean seconds a call's oldest request waited for it to start), from /metrics."""
    rows = frame[list(scenario.FEATURES)].to_dict("records")

    def caller(i: int) -> None:
        for j in range(each):
            client.predict(ENDPOINT, [rows[(i * each + j) % len(rows)]])

    calls_before, queued_before = batching_totals(client)
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(caller, range(clients)))
    calls_after, queued_after = batching_totals(client)
    calls = int(calls_after - calls_before)
    return clients * each, calls, (queued_after - queued_before) / max(calls, 1)


def batching_totals(client: Client) -> tuple[float, float]:
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


def send_traffic(client: Client, frame: Any, batch: int) -> tuple[list[float], list[str], list[int]]:
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


def three_protocols_agree(client: Client, frame: Any) -> bool:
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
