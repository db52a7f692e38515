"""examples/media/README.md's build and register commands run as written (through the CLI)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftgate.cli import app
from driftgate.demo import media_models

README = Path(__file__).parents[2] / "examples" / "media" / "README.md"


def _commands(text: str) -> list[list[str]]:
    """The `driftgate ...` command lines of the README's bash blocks (continuations joined)."""
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [shlex.split(line.split("#")[0]) for line in lines if line.startswith("driftgate models register")]


def test_the_readme_registers_the_three_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    media_models.main(["media"])
    commands = _commands(README.read_text())
    assert [c[3] for c in commands] == ["spam", "digits", "words"]
    for command in commands:
        result = CliRunner().invoke(app, [*command[1:], "--data-dir", str(tmp_path / "data")])
        assert result.exit_code == 0, (command, result.output)
        assert f"registered {command[3]} version 1" in result.output
