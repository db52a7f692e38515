"""The `driftgate` command line against a data dir in tmp_path; `serve` and `demo` as real processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from driftgate.cli import app
from driftgate.store import Store
from tests.conftest import Artifacts, free_port

ROW = {"x1": 0.5, "x2": 3.0, "colour": "red"}
DRIFTGATE = [str(Path(sys.executable).parent / "driftgate")]


def run(*args: str) -> tuple[int, str]:
    """Invoke the CLI in-process; output without rich's line wrapping."""
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "400"})
    return result.exit_code, result.output


@pytest.fixture
def files(tmp_path: Path, artifacts: Artifacts) -> Path:
    (tmp_path / "model.skops").write_bytes(artifacts.skops)
    (tmp_path / "model.joblib").write_bytes(artifacts.pickle)
    (tmp_path / "reference.csv").write_bytes(artifacts.reference_csv)
    return tmp_path


def test_serve_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    code, output = run("serve", "--host", "0.0.0.0", "--port", str(free_port()), "--data-dir", str(tmp_path / "d"))
    assert code != 0
    assert "refusing to serve 0.0.0.0 without an API token" in output
    assert "driftgate token create" in output and "--insecure" in output


def test_register_list_deploy_and_token(files: Path) -> None:
    data = ["--data-dir", str(files / "data")]
    code, output = run(
        "models", "register", "clf", str(files / "model.skops"), "--format", "sklearn",
        "--reference", str(files / "reference.csv"), "--target", "y", *data,
    )  # fmt: skip
    assert code == 0, output
    assert "registered clf version 1 (skops)" in output
    code, output = run(
        "models", "register", "clf", str(files / "model.skops"), "--format", "sklearn",
        "--reference", str(files / "reference.csv"), "--target", "y", "--description", "second", *data,
    )  # fmt: skip
    assert code == 0 and "version 2" in output, output

    code, output = run("models", "list", *data)
    assert code == 0, output
    lines = [line for line in output.splitlines() if " clf " in line]
    assert len(lines) == 2
    assert all("skops" in line and "classification" in line for line in lines)

    code, output = run("deploy", "fraud", "--model", "clf", "--version", "1", *data)
    assert code == 0, output
    assert "endpoint fraud -> clf v1" in output
    code, output = run("deploy", "fraud", "--model", "clf", "--config", '{"timeout_ms": 1500}', *data)
    assert code == 0 and "clf v2" in output, output  # the default version is 'latest'
    # A pipeline step that does not import is refused before anything is stored.
    missing = '{"pipeline": {"pre": [{"name": "clean", "function": "tests.pipeline_steps:nope"}]}}'
    code, output = run("deploy", "fraud", "--model", "clf", "--config", missing, *data)
    assert code == 2 and "pipeline step 'clean'" in output and "has no attribute 'nope'" in output, output

    code, output = run("token", "create", "--scope", "predict", "--name", "app", *data)
    assert code == 0, output
    token = output.strip()
    assert token.startswith("dg_predict_")

    store = Store.open(files / "data")
    try:
        assert store.endpoints.get("fraud")[0]["version"] == 2
        assert store.endpoints.get("fraud")[0]["timeout_ms"] == 1500
        assert [t["name"] for t in store.tokens.list()] == ["app"]
        assert store.models.versions("clf")[1].description == "second"
    finally:
        store.close()
    assert token.encode() not in (files / "data" / "driftgate.db").read_bytes()


def test_rollout_promote_rollback_and_pause_from_the_command_line(files: Path) -> None:
    data = ["--data-dir", str(files / "data")]
    for _ in range(2):
        code, _out = run(
            "models", "register", "clf", str(files / "model.skops"), "--format", "sklearn",
            "--reference", str(files / "reference.csv"), "--target", "y", *data,
        )  # fmt: skip
        assert code == 0
    assert run("deploy", "clf", "--model", "clf", "--version", "1", *data)[0] == 0

    code, output = run(
        "rollout", "clf", "--strategy", "canary", "--version", "2", "--steps", "10,50,100",
        "--analysis", '{"min_agreement": 0.9}', "--reason", "weekly retrain", *data,
    )  # fmt: skip
    assert code == 0, output
    assert "canary clf v1 -> v2 running, candidate at 10%, step 1/3" in output
    code, output = run("rollout", "clf", "--strategy", "shadow", "--version", "2", *data)
    assert code == 2 and "already has a canary rollout" in output
    # The same checks as PUT /v1/endpoints/{e}: moving the endpoint under a running rollout would leave
    # the rollout's baseline on the old version (deploy used to exit 0 and move it).
    code, output = run("deploy", "clf", "--model", "clf", "--version", "2", *data)
    assert code != 0 and "has a canary rollout running" in output, output
    store = Store.open(files / "data")
    try:
        assert store.endpoints.get("clf")[0]["version"] == 1
        assert store.rollouts.active("clf")["baseline"]["version"] == 1
    finally:
        store.close()
    code, output = run("pause", "clf", "--reason", "incident", *data)
    assert code == 0 and "paused" in output and "reason: incident" in output
    code, output = run("rollout", "clf", *data)
    assert code == 0 and "paused" in output
    code, output = run("promote", "clf", *data)
    assert code == 0 and "promoted" in output
    store = Store.open(files / "data")
    assert store.endpoints.get("clf")[0]["version"] == 2
    actions = [h["action"] for h in store.endpoints.history("clf")]
    assert actions[:3] == ["rollout.promote", "rollout.pause", "rollout.start"]
    assert all(h["actor"] == "cli" for h in store.endpoints.history("clf")[:3])
    code, output = run("rollback", "clf", *data)
    assert code == 2 and "no rollout running" in output
    code, output = run("rollout", "clf", "--strategy", "canary", "--version", "1", "--steps", "50,10", *data)
    assert code == 2 and "steps" in output


def test_retrain_from_the_command_line(tmp_path: Path, artifacts: Artifacts) -> None:
    from driftgate.client import Client
    from tests.api.test_retraining import labelled_traffic
    from tests.conftest import make_server

    srv = make_server(tmp_path, monitor_interval=0)
    try:
        with Client(srv.url) as client:
            client.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
            client.deploy("clf", "clf", 1)
            labelled_traffic(client, 300, seed=5, flip=True)
    finally:
        srv.stop()
    data = ["--data-dir", str(tmp_path / "data")]
    canary = '{"strategy": "canary", "steps": [50, 100]}'
    train = ["--train", "tests.train_functions:train", "--min-rows", "100"]
    code, output = run("retrain", "clf", *train, "--rollout", canary, "--reason", "flipped", *data)
    assert code == 0, output
    assert "succeeded" in output and "registered clf v2" in output and "canary rollout" in output
    assert re.search(r"60[│ ]+accuracy[│ ]+0\.0\d+[│ ]+0\.9\d*[│ ]+yes", output), output
    code, output = run("rollout", "clf", *data)
    assert "canary clf v1 -> v2 running, candidate at 50%" in output, output
    code, output = run("retrain", "clf", "--train", "tests.train_functions:broken", "--min-rows", "100", *data)
    assert code == 1 and "failed" in output and "RuntimeError: no good" in output, output
    code, output = run("retrain", "clf", *train, "--rollout", "{", *data)
    assert code == 2 and "--rollout is not JSON" in output
    code, output = run("retrain", "clf", "--list", *data)
    assert code == 0 and re.search(r"2[│ ].*manual[│ ]+failed", output), output
    assert re.search(r"1[│ ].*manual[│ ]+succeeded[│ ]+v2", output), output


def test_cli_errors_are_messages_not_tracebacks(files: Path) -> None:
    data = ["--data-dir", str(files / "data")]
    cases = [
        (["models", "register", "m", str(files / "model.joblib"), "--format", "sklearn"], "pickle"),
        (["models", "register", "m", str(files / "nothing.skops"), "--format", "sklearn"], "no such file"),
        (["models", "register", "m", str(files / "model.skops"), "--format", "keras"], "format"),
        (["deploy", "e", "--model", "ghost", "--version", "1"], "ghost"),
        (["deploy", "e", "--model", "ghost", "--version", "99999999999999999999"], "version"),
        (["deploy", "bad name", "--model", "ghost"], "endpoint name"),
        (["token", "create", "--scope", "root"], "scope"),
        (["deploy", "e", "--model", "ghost", "--config", "{"], "--config must be a JSON object"),
        (["deploy", "e", "--model", "ghost", "--config", "[1]"], "--config must be a JSON object"),
    ]
    for args, expected in cases:
        code, output = run(*args, *data)
        assert code != 0, (args, output)
        assert expected in output, (args, output)
        assert "Traceback" not in output, (args, output)
    code, output = run(
        "models", "register", "m", str(files / "model.joblib"), "--format", "sklearn",
        "--reference", str(files / "reference.csv"), "--target", "y", "--trust-pickle", *data,
    )  # fmt: skip
    assert code == 0 and "(pickle)" in output, output


def test_register_a_python_class(files: Path) -> None:
    source = files / "doubler.py"
    source.write_text(
        textwrap.dedent(
            """
            class Doubler:
                def predict(self, frame):
                    return 2 * frame["x1"].to_numpy()
            """
        )
    )
    (files / "ref.csv").write_text("x1\n1.0\n2.0\n3.0\n")
    code, output = run(
        "models", "register", "dbl", f"{source}:Doubler", "--format", "python",
        "--reference", str(files / "ref.csv"), "--data-dir", str(files / "data"),
    )  # fmt: skip
    assert code == 0, output
    assert "registered dbl version 1 (python)" in output


def _wait_ready(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become ready")


@pytest.fixture
def public_server(files: Path) -> Iterator[tuple[str, str]]:
    """`driftgate serve --host 0.0.0.0` with an admin token and a deployed model; (url, token)."""
    data = ["--data-dir", str(files / "data")]
    code, output = run(
        "models", "register", "clf", str(files / "model.skops"), "--format", "sklearn",
        "--reference", str(files / "reference.csv"), "--target", "y", *data,
    )  # fmt: skip
    assert code == 0, output
    assert run("deploy", "clf", "--model", "clf", *data)[0] == 0
    code, token = run("token", "create", "--scope", "admin", *data)
    assert code == 0
    port = free_port()
    proc = subprocess.Popen(
        [*DRIFTGATE, "serve", "--host", "0.0.0.0", "--port", str(port), *data],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        yield url, token.strip()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_serve_on_a_public_address_with_a_token(public_server: tuple[str, str]) -> None:
    url, token = public_server
    assert httpx.post(f"{url}/v1/endpoints/clf/predict", json={"instances": [ROW]}).status_code == 401
    answer = httpx.post(
        f"{url}/v1/endpoints/clf/predict", json={"instances": [ROW]}, headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == "clf"


@pytest.mark.slow
def test_demo_tells_the_story_and_exits(tmp_path: Path) -> None:
    port = free_port()
    result = subprocess.run(
        [*DRIFTGATE, "demo", "--no-wait", "--port", str(port), "--data-dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "COLUMNS": "200"},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "registered model 'fraud' v1" in out
    assert "gave identical predictions" in out
    assert "DRIFT in" in out
    assert "protocols agreeing" in out and "yes" in out
    assert "alert rule 'fraud-drift' fired: data_drift_share" in out
    assert "canary of v2: promoted (all 3 steps passed" in out
    retrained = re.search(r"v2 accuracy ([\d.]+)% vs v1 ([\d.]+)% on 600 held-out ones, so run 1 succeeded", out)
    assert retrained is not None and float(retrained[1]) > float(retrained[2]), out  # the alert's run, judged
    assert "with an output guard" in out and "customer disputes on" in out and "n/a of the window" not in out
    burst = re.search(r"16 clients at once sent (\d+) one-row requests: micro-batching scored them in (\d+) model", out)
    assert burst is not None and 0 < int(burst[2]) <= int(burst[1]), out  # every request scored, none twice
    assert re.search(r"16\. batch: a month's 50,000 transactions from a Parquet file scored by v2 in 5 chunks", out)
    assert "Traceback" not in result.stdout + result.stderr
    # --no-wait means the server is gone afterwards.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/v2/health/live", timeout=1)


@pytest.mark.slow
def test_the_inspection_demo_tells_its_story_and_exits(tmp_path: Path) -> None:
    """Issue 22's demo: shadow beside the inspector, the dimming lamp caught, review, retrain, canary."""
    port = free_port()
    result = subprocess.run(
        [*DRIFTGATE, "demo", "--no-wait", "--scenario", "inspection", "--port", str(port),
         "--data-dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, "COLUMNS": "200"},
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "registered 'inspector' v1 (ONNX" in out and "a 8x8 float32 image" in out
    assert re.search(
        r"shadow mode beside the human inspector: 300 photos, all decided by the inspector \(300 labelled", out
    )
    assert re.search(r"sent to the inspector; drift: no drift;", out), out
    dimmed = re.search(r"a lamp on the line dims: .*drift: DRIFT in ([^\n]*)", out)
    assert dimmed is not None and "image.brightness" in dimmed[1], out
    assert "alert: 'line-lighting' fired (data_drift_share" in out
    shares = re.search(r"([\d.]+)% of the photos now go to the inspector \(was ([\d.]+)%\)", out)
    assert shares is not None and float(shares[1]) > float(shares[2]), out
    assert re.search(r"retrained on the 1,200 photos plus the [1-9]\d* dim ones the inspector labelled", out), out
    assert "canary of v2: promoted" in out
    assert "Traceback" not in result.stdout + result.stderr
