"""CLI start-up: what `driftgate --help` and the store commands import (checked as an import graph, not a
time: docs/benchmarks.md has the times), and help that keeps every option name whole at 80 columns."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from driftgate.cli import LAZY_COMMANDS, app, help_line, load_command

# The heavy stack: none of it is needed to print help or to read the store.
HEAVY = ("pandas", "pyarrow", "scipy", "sklearn", "skops", "fastapi", "starlette", "uvicorn", "httpx", "alembic")
HELP_ONLY = (*HEAVY, "numpy", "sqlalchemy", "pydantic", "driftgate.store", "driftgate.cli.drift")
REPO = Path(__file__).resolve().parent.parent


def imported_by(args: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> tuple[set[str], str]:
    """Run the CLI in a fresh interpreter; the modules it loaded, and its output."""
    code = (
        "import json, sys\n"
        "from driftgate.cli import main\n"
        f"sys.argv = ['driftgate', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "print('\\nMODULES ' + json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "COLUMNS": "80", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    output, _, modules = done.stdout.rpartition("\nMODULES ")
    return set(json.loads(modules)), output


def test_importing_the_cli_loads_no_heavy_module() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys, driftgate.cli; print(' '.join(sorted(sys.modules)))"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = set(done.stdout.split())
    assert not {m for m in HELP_ONLY if m in loaded}


def test_help_lists_every_command_without_importing_them(tmp_path: Path) -> None:
    loaded, output = imported_by(["--help"], tmp_path)
    assert not {m for m in HELP_ONLY if m in loaded}
    # (driftgate.cli.rollouts is read by import: its commands are generated; it imports nothing heavy.)
    assert not {f"driftgate.cli.{m}" for m in ("drift", "batch", "export", "monitor", "alerts")} & loaded
    for name in ("serve", "models", "token", "deploy", *LAZY_COMMANDS):
        assert re.search(rf"^  {name} ", output, re.M), (name, output)


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_lazy_help_lines_are_the_commands_own(name: str) -> None:
    """The line `--help` shows (read from the source) is the help of the command that runs."""
    command = load_command(name)
    assert command.name == name
    assert inspect.cleandoc(help_line(*LAZY_COMMANDS[name])) == inspect.cleandoc(command.help or "")


def test_store_commands_load_no_heavy_module(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    imported_by(["models", "list", *data], tmp_path)  # creates and migrates the store (alembic runs once)
    for args in (["models", "list"], ["token", "list"], ["alerts", "rules", "list"], ["alerts", "list"]):
        loaded, _ = imported_by([*args, *data], tmp_path)
        assert not {m for m in HEAVY if m in loaded}, args


def _option_names(command: typer.main.TyperCommand) -> list[str]:  # type: ignore[name-defined]
    return [opt for p in command.params for opt in (*p.opts, *p.secondary_opts) if opt.startswith("-")]


def test_serve_help_keeps_every_option_name_whole_at_80_columns(tmp_path: Path) -> None:
    _, output = imported_by(["serve", "--help"], tmp_path)
    serve = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    names = _option_names(serve)
    assert "--monitor-interval" in names and "--webhook-allow" in names and len(names) > 20
    for name in names:
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", output), (name, output)
    assert "…" not in output
    assert max(len(line) for line in output.splitlines()) <= 80


def test_every_command_help_keeps_option_names_whole_at_80_columns() -> None:
    root = typer.main.get_command(app)

    def walk(group: object, path: list[str]) -> list[tuple[list[str], object]]:
        found = []
        for name in group.list_commands(None):  # type: ignore[attr-defined]
            command = load_command(name) if not path and name in LAZY_COMMANDS else group.commands[name]  # type: ignore[attr-defined]
            found.append(([*path, name], command))
            if hasattr(command, "commands"):
                found += walk(command, [*path, name])
        return found

    commands = walk(root, [])
    assert len(commands) > 20
    for path, command in commands:
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0, (path, result.output)
        for name in _option_names(command):  # type: ignore[arg-type]
            assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", result.output), (path, name, result.output)
        assert "…" not in result.output, path
        assert max(len(line) for line in result.output.splitlines()) <= 80, (path, result.output)
