"""Replicas sharing one store converge: a change made on one server, or by the CLI, reaches the others."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from driftgate.cli import app as cli
from driftgate.client import Client, ServerError
from tests.conftest import Artifacts, LiveServer, make_server

ROW = {"x1": 0.5, "x2": 3.0, "colour": "red"}
# The spec promises a second; leave room for a loaded machine without sleeping blindly.
CONVERGE_SECONDS = 3.0


def eventually(check: Callable[[], Any], what: str) -> Any:
    """Poll `check` until it returns a truthy value; fail after CONVERGE_SECONDS."""
    deadline = time.monotonic() + CONVERGE_SECONDS
    while True:
        try:
            value = check()
        except ServerError:
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"not converged within {CONVERGE_SECONDS} s: {what}"
        time.sleep(0.05)


@pytest.fixture
def replicas(db_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    a = make_server(tmp_path / "a", db=db_url)
    b = make_server(tmp_path / "b", db=db_url)
    yield a, b
    a.stop()
    b.stop()


def served_version(client: Client, endpoint: str) -> int | None:
    return client.predict(endpoint, [ROW])["version"]


def test_put_on_one_replica_is_answered_by_the_other(
    replicas: tuple[LiveServer, LiveServer], artifacts: Artifacts
) -> None:
    a, b = replicas
    with Client(a.url) as ca, Client(b.url) as cb:
        ca.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
        ca.deploy("clf", "clf", 1)
        # The registry is the shared store itself: B sees the version at once.
        assert [m["name"] for m in cb.models()["models"]] == ["clf"]
        assert eventually(lambda: served_version(cb, "clf") == 1, "B serves clf v1")

        ca.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
        ca.deploy("clf", "clf", 2, timeout_ms=4321)
        assert eventually(lambda: served_version(cb, "clf") == 2, "B serves clf v2")
        assert cb.endpoint("clf")["config"]["timeout_ms"] == 4321

        # And the other way round: B changes it back, A follows.
        cb.deploy("clf", "clf", 1)
        assert eventually(lambda: served_version(ca, "clf") == 1, "A serves clf v1 again")
        assert ca.endpoint("clf")["revision"] == cb.endpoint("clf")["revision"]


def test_cli_deploy_reaches_running_servers(
    replicas: tuple[LiveServer, LiveServer], db_url: str, artifacts: Artifacts, tmp_path: Path
) -> None:
    a, b = replicas
    with Client(a.url) as ca, Client(b.url) as cb:
        ca.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
        ca.register_model("reg", artifacts.regression_skops, "sklearn", reference=artifacts.reference_csv, target="y")

        result = CliRunner().invoke(cli, ["deploy", "scores", "--model", "clf", "--version", "1", "--db", db_url])
        assert result.exit_code == 0, result.output
        assert "revision" in result.output
        for client in (ca, cb):

            def on_v1(c: Client = client) -> bool:
                return served_version(c, "scores") == 1

            assert eventually(on_v1, "servers pick up the CLI deploy")

        config = '{"timeout_ms": 2500}'
        result = CliRunner().invoke(cli, ["deploy", "scores", "--model", "reg", "--config", config, "--db", db_url])
        assert result.exit_code == 0, result.output
        for client in (ca, cb):

            def on_reg(c: Client = client) -> dict[str, Any] | None:
                answer = c.predict("scores", [ROW])
                return answer if answer["model"] == "reg" else None

            answer = eventually(on_reg, "servers switch to reg")
            assert "probabilities" not in answer
            assert client.endpoint("scores")["config"]["timeout_ms"] == 2500


def test_a_deploy_the_cli_refuses_never_reaches_the_servers(
    replicas: tuple[LiveServer, LiveServer], db_url: str, artifacts: Artifacts
) -> None:
    a, b = replicas
    with Client(a.url) as ca, Client(b.url) as cb:
        ca.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
        ca.deploy("clf", "clf", 1)
        before = ca.endpoint("clf")["revision"]
        for args in (["--version", "7"], ["--config", '{"timeout_ms": -1}'], ["--config", '{"bogus": 1}']):
            result = CliRunner().invoke(cli, ["deploy", "clf", "--model", "clf", *args, "--db", db_url])
            assert result.exit_code != 0, result.output
            assert "error" in result.output
        # A change made afterwards arrives; the refused ones never did.
        ca.deploy("clf", "clf", 1, timeout_ms=1234)
        assert eventually(lambda: cb.endpoint("clf")["config"]["timeout_ms"] == 1234, "B sees the valid change")
        assert cb.endpoint("clf")["revision"] > before
