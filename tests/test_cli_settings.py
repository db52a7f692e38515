"""`driftgate serve`'s options come from `Settings` (issue 20): one per field, the field's docstring as
help, its default; and the option names users already rely on keep working."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

import driftgate.settings
from driftgate.cli import app
from driftgate.cli.serve_options import settings_options
from driftgate.settings import Settings

SOURCE = Path(driftgate.settings.__file__).read_text(encoding="utf-8")


def docstring(name: str) -> str:
    """The string under the field in settings.py, on one line (read here without the CLI's parser)."""
    found = re.search(rf'^    {name}: [^\n]*\n    """(.*?)"""', SOURCE, re.M | re.S)
    assert found, f"Settings.{name} has no docstring: it is the option's help"
    return " ".join(found.group(1).split())


def serve_command() -> Any:
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    return root.commands["serve"]


def serve_params() -> dict[str | None, Any]:
    return {param.name: param for param in serve_command().params}


@pytest.mark.parametrize("field", dataclasses.fields(Settings), ids=lambda f: f.name)
def test_every_setting_is_a_serve_option_with_its_docstring_and_default(field: dataclasses.Field[Any]) -> None:
    param = serve_params().get(field.name)
    assert param is not None, f"`driftgate serve` has no option for Settings.{field.name}"
    assert param.help == docstring(field.name)
    if field.name == "grpc_port":
        expected: Any = 8081  # SPEC 12: serve offers gRPC; Settings() alone does not
    elif field.default_factory is not dataclasses.MISSING:
        expected = field.default_factory()
    else:
        expected = field.default
    assert param.default == expected


LEGACY = [
    # (arguments, the settings they give): names from before the options were derived.
    (["--shadow-in-process"], {"shadow_process": False}),
    (["--no-shadow-in-process"], {"shadow_process": True}),
    (["--log-in-process"], {"log_process": False}),
    (["--no-log-in-process"], {"log_process": True}),
    (["--pipeline-module", "a", "--pipeline-module", "b"], {"pipeline_modules": ["a", "b"]}),
    (["--train-module", "t"], {"train_modules": ["t"]}),
    (["--webhook-allow", "10.0.0.0/8", "--webhook-allow", "db"], {"webhook_allow": ["10.0.0.0/8", "db"]}),
    (["--data-dir", "d", "--db", "sqlite:///x.db"], {"data_dir": Path("d"), "db": "sqlite:///x.db"}),
    (["--host", "0.0.0.0", "--port", "9000", "--grpc-port", "0"], {"host": "0.0.0.0", "port": 9000, "grpc_port": 0}),
    (["--workers", "3", "--monitor-interval", "5"], {"workers": 3, "monitor_interval": 5.0}),
    (["--durable-log", "--insecure", "--trust-pickle"], {"durable_log": True, "insecure": True, "trust_pickle": True}),
    (
        ["--retention-days", "7", "--monitoring-retention-days", "30"],
        {"retention_days": 7.0, "monitoring_retention_days": 30.0},
    ),
    (["--mlflow-endpoint", "clf"], {"mlflow_endpoint": "clf"}),
]


@pytest.mark.parametrize(("args", "expected"), LEGACY, ids=[" ".join(a) for a, _ in LEGACY])
def test_existing_option_names_still_set_their_settings(args: list[str], expected: dict[str, Any]) -> None:
    params = serve_command().make_context("serve", list(args)).params
    assert {name: params[name] for name in expected} == expected


def test_options_become_one_settings_object_and_the_commands_own_parameters_pass_through() -> None:
    seen: list[tuple[Settings, str]] = []

    probe = typer.Typer(add_completion=False, rich_markup_mode=None)

    @probe.command()
    @settings_options
    def run(
        settings: Settings, level: Annotated[str, typer.Option(help="A parameter of the command's own.")] = "x"
    ) -> None:
        seen.append((settings, level))

    result = CliRunner().invoke(probe, ["--log-in-process", "--max-body-bytes", "10", "--level", "y", "--port", "1"])
    assert result.exit_code == 0, result.output
    assert seen == [(Settings(log_process=False, max_body_bytes=10, port=1, grpc_port=8081), "y")]


def test_settings_bounds_refuse_negative_numbers_and_impossible_ports() -> None:
    serve = serve_command()
    for args in (["--workers", "-1"], ["--retention-days", "-1"], ["--grpc-port", "70000"]):
        with pytest.raises(typer.BadParameter, match=r"greater than or equal to 0|less than or equal to 65535"):
            serve.make_context("serve", args)
