"""The reliability suite (docs/reliability.md): every test here is marked `reliability`.

Sizes: `--reliability=quick` (the default, so the normal test run and CI run it; under 2 minutes)
or `--reliability=full` (`make reliability`: 20 kill runs and the like). The soak test runs only with
`--soak` (`make soak`). Each scenario records its figures with the `figures` fixture; they are printed
at the end of the run and written as JSON with `--reliability-report PATH`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.records.test_kill import Server

_FIGURES: dict[str, dict[str, Any]] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture
def full(request: pytest.FixtureRequest) -> bool:
    """True for `--reliability=full`."""
    return bool(request.config.getoption("reliability") == "full")


@pytest.fixture
def runs(full: bool) -> int:
    """How many times a repeated scenario (kill -9 under load) runs."""
    return 20 if full else 3


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """`driftgate serve` processes a test starts: closed afterwards whatever happened."""
    started: list[Server] = []
    yield started
    for server in started:
        server.close()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A dict for this test's figures (reported under the test's name)."""
    return _FIGURES.setdefault(request.node.name, {})


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    measured = {name: values for name, values in _FIGURES.items() if values}  # skipped tests have none
    if not measured:
        return
    terminalreporter.section("reliability figures")
    for name, values in measured.items():
        terminalreporter.write_line(f"{name}: {json.dumps(values, sort_keys=True)}")
    path = config.getoption("reliability_report")
    if path:
        report = {"size": config.getoption("reliability"), "figures": measured}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
