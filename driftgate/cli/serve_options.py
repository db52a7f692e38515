"""`driftgate serve`'s options, derived from `Settings`: each setting is declared once, in
driftgate/settings.py (type, default, and the docstring under it as the option's help), and appears in
`serve --help` without a second declaration. What the command line does differently is listed here.

Imports only the standard library, typer and driftgate.settings: `driftgate --help` builds these options.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from driftgate.settings import Settings

# Option names that predate the derivation (scripts rely on them). The two "in process" switches were
# flags of their own (`--shadow-in-process` / `--no-shadow-in-process`): they stay, as the setting's
# "off" side and a second "on" name. Lists keep their singular name: one value per repetition.
OPTION_NAMES: dict[str, tuple[str, ...]] = {
    "shadow_process": ("--shadow-process/--shadow-in-process", "--no-shadow-in-process"),
    "log_process": ("--log-process/--log-in-process", "--no-log-in-process"),
    "pipeline_modules": ("--pipeline-module",),
    "train_modules": ("--train-module",),
}
# `serve` offers gRPC on 8081 (SPEC 12); a server built from `Settings()` directly has none.
SERVE_DEFAULTS: dict[str, Any] = {"grpc_port": 8081}
PORTS = frozenset({"port", "grpc_port"})


@functools.cache
def descriptions() -> dict[str, str]:
    """Each Settings field's docstring (the string under it), on one line: the source is the only
    place Python keeps attribute docstrings."""
    source = Path(inspect.getfile(Settings)).read_text(encoding="utf-8")
    body = next(
        node.body for node in ast.parse(source).body if isinstance(node, ast.ClassDef) and node.name == "Settings"
    )
    found: dict[str, str] = {}
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            found[node.target.id] = " ".join(after.value.value.split())
    return found


def default_of(field: dataclasses.Field[Any]) -> Any:
    """The default `serve` uses for a setting."""
    if field.name in SERVE_DEFAULTS:
        return SERVE_DEFAULTS[field.name]
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _parameter(field: dataclasses.Field[Any], annotation: Any) -> inspect.Parameter:
    names = OPTION_NAMES.get(field.name, ())
    bounds: dict[str, Any] = {}
    if annotation in (int, float, int | None, float | None):
        # No setting takes a negative number (sizes, counts, intervals, days); ports end at 65535.
        bounds = {"min": 0, "max": 65535} if field.name in PORTS else {"min": 0}
    option = typer.Option(*names, help=descriptions().get(field.name), **bounds)
    return inspect.Parameter(
        field.name, inspect.Parameter.KEYWORD_ONLY, default=default_of(field), annotation=Annotated[annotation, option]
    )


def settings_options(command: Callable[..., None]) -> Callable[..., None]:
    """`command(settings, **rest)` as a command taking one option per Settings field (plus `rest`'s own
    parameters): typer reads the signature, and the options are gathered back into one Settings."""
    hints = typing.get_type_hints(Settings)
    fields = dataclasses.fields(Settings)
    # `command`'s own parameters (all but `settings`), their annotations resolved for typer.
    own_hints = typing.get_type_hints(command, include_extras=True)
    own = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=own_hints[p.name])
        for p in list(inspect.signature(command).parameters.values())[1:]
    ]
    parameters = [_parameter(field, hints[field.name]) for field in fields]
    parameters += own
    names = {field.name for field in fields}

    @functools.wraps(command)
    def run(**options: Any) -> None:
        values = {name: value for name, value in options.items() if name in names}
        rest = {name: value for name, value in options.items() if name not in names}
        command(Settings(**values), **rest)

    # What typer reads: the signature and the annotations (functions' type declares neither attribute).
    derived: Any = run
    del derived.__wrapped__  # else inspect.signature would follow it back to `command`
    derived.__signature__ = inspect.Signature(parameters)
    derived.__annotations__ = {p.name: p.annotation for p in parameters}
    return run
