"""Request documents validated by pydantic models, with failures as 400s that name the field."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from driftgate.errors import BadRequest

M = TypeVar("M", bound=BaseModel)
# `package.module:function`, the attribute part possibly dotted (`module:Class.method`).
FUNCTION_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def module_allowed(module: str, allowed: Sequence[str]) -> bool:
    """A package on a server's allow-list (pipeline steps, train functions), or one of its submodules."""
    return any(module == m or module.startswith(m + ".") for m in allowed)


def function_path(value: str, what: str) -> str:
    """`value` if it names an importable function (`package.module:function`), else ValueError."""
    if not FUNCTION_PATH.match(value):
        raise ValueError(f"{what} must look like 'package.module:function', got {value!r}")
    return value


def parse(model: type[M], body: Any, what: str) -> M:
    """`model` from `body`, or `BadRequest("<what> field 'a.b': why", field="a.b")` for the first error."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadRequest(f"{what} field {where!r}: {first['msg']}", field=where) from None
