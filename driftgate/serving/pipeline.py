"""Pipeline endpoints: pre-processing steps before the model, post-processing steps after it.

- A **pre** step is `fn(frame: pandas.DataFrame) -> pandas.DataFrame`. The first one gets the
  request's rows with their columns as sent (not yet checked against the model's schema); each
  returns one row per request row. The model's input schema then checks and converts the last
  one's output, exactly like a request without steps, and that is what the model sees and what is
  logged as the prediction's inputs.
- A **post** step is `fn(predictions: numpy.ndarray, probabilities: numpy.ndarray | None,
  frame: pandas.DataFrame) -> predictions` (array, Series or list, one value per row). It gets the
  model's predictions (or the previous post step's), the model's class probabilities and the
  model's input rows; the last one's result is what the caller receives. Steps get copies, so one
  that modifies its arguments in place cannot change what is logged.

Steps are imported once, when a config is applied, and called in a worker thread, never on the
event loop. They are trusted code: a server runs only functions from the modules it was started
with (`driftgate serve --pipeline-module PACKAGE`), the same rule as python models, which are
accepted from the local CLI only. A step that raises `driftgate.errors.InvalidInput` refuses the
caller's input (422); any other exception, or a result of the wrong shape, is the step's own
failure (`StepFailed`, 500). Both name the step.
"""

from __future__ import annotations

import importlib
import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from driftgate.errors import BadRequest, InvalidInput, StepFailed
from driftgate.serving.endpoint_config import Pipeline, PipelineStep
from driftgate.validation import module_allowed

Stage = Literal["pre", "post"]
# Called after every step, in the worker thread: (step, seconds, rows, "ok" | "error" | "invalid").
Observe = Callable[["Step", float, int, str], None]


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    stage: Stage
    function: str
    fn: Callable[..., Any]


@dataclass(frozen=True, slots=True)
class CompiledPipeline:
    """An endpoint's resolved steps; empty for an endpoint without a pipeline.

    >>> double = Step("double", "pre", "example:double", lambda frame: frame * 2)
    >>> CompiledPipeline(pre=(double,)).run_pre(pd.DataFrame({"x": [1, 2]}), lambda *report: None)["x"].tolist()
    [2, 4]
    """

    pre: tuple[Step, ...] = ()
    post: tuple[Step, ...] = ()

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.pre + self.post

    def run_pre(self, frame: pd.DataFrame, observe: Observe) -> pd.DataFrame:
        """The pre steps in order; blocking, so call it from a worker thread."""
        n = len(frame)
        for step in self.pre:
            frame = _call(step, observe, n, _check_frame, frame)
        return frame

    def run_post(
        self, predictions: np.ndarray, probabilities: np.ndarray | None, frame: pd.DataFrame, observe: Observe
    ) -> np.ndarray:
        """The post steps in order, each on the previous one's answers; blocking."""
        n = len(predictions)
        answers = predictions
        for step in self.post:
            args = (answers.copy(), None if probabilities is None else probabilities.copy(), frame.copy(deep=False))
            answers = _call(step, observe, n, _check_answers, *args)
        return answers


EMPTY = CompiledPipeline()


def compile_pipeline(config: Pipeline | None, allowed_modules: Sequence[str] | None) -> CompiledPipeline:
    """Import every step's function, or raise BadRequest naming the step and the field.

    `allowed_modules`: the packages steps may come from (a module and its submodules); None allows any
    (the local CLI, whose user can run code anyway)."""
    if config is None:
        return EMPTY

    def compiled(stage: Stage, i: int, spec: PipelineStep) -> Step:
        fn = resolve(spec.function, allowed_modules, step=spec.name, field=f"pipeline.{stage}.{i}.function")
        return Step(spec.name, stage, spec.function, fn)

    return CompiledPipeline(
        tuple(compiled("pre", i, s) for i, s in enumerate(config.pre)),
        tuple(compiled("post", i, s) for i, s in enumerate(config.post)),
    )


def resolve(function: str, allowed_modules: Sequence[str] | None, *, step: str, field: str) -> Callable[..., Any]:
    """The callable named by `module:attribute`, imported now."""
    module_name, _, attribute = function.partition(":")
    what = f"pipeline step {step!r}"
    if allowed_modules is not None and not module_allowed(module_name, allowed_modules):
        allowed = ", ".join(repr(m) for m in allowed_modules) or "none"
        raise BadRequest(
            f"{what}: module {module_name!r} is not allowed on this server (allowed: {allowed}); pipeline steps "
            "run server code, so the server must be started with `driftgate serve --pipeline-module PACKAGE`",
            field=field,
            step=step,
        )
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module's own code failing at import
        raise BadRequest(
            f"{what}: cannot import module {module_name!r} ({type(exc).__name__}: {str(exc)[:200]})",
            field=field,
            step=step,
        ) from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise BadRequest(f"{what}: {function!r} has no attribute {part!r}", field=field, step=step)
        target = getattr(target, part)
    if inspect.isclass(target) or not callable(target):
        kind = "a class" if inspect.isclass(target) else f"a {type(target).__name__}"
        raise BadRequest(f"{what}: {function!r} is {kind}, expected a function", field=field, step=step)
    return target


def _call(step: Step, observe: Observe, rows: int, check: Callable[[Step, Any, int], Any], *args: Any) -> Any:
    """`step.fn(*args)`, its result checked by `check(step, result, rows)`; failures name the step."""
    started = time.perf_counter()
    status = "error"
    try:
        out = check(step, step.fn(*args), rows)
        status = "ok"
        return out
    except InvalidInput as exc:
        status = "invalid"
        details = {**exc.details, "step": step.name}
        raise InvalidInput(f"{step.stage} step {step.name!r}: {exc.message}", **details) from None
    except StepFailed:
        raise
    except Exception as exc:
        message = f"{type(exc).__name__}: {str(exc)[:300]}"
        raise StepFailed(f"{step.stage} step {step.name!r} failed: {message}", step=step.name) from None
    finally:
        observe(step, time.perf_counter() - started, rows, status)


def _check_frame(step: Step, out: Any, n: int) -> pd.DataFrame:
    if not isinstance(out, pd.DataFrame):
        raise StepFailed(
            f"pre step {step.name!r} returned a {type(out).__name__}; expected a pandas DataFrame with {n} rows",
            step=step.name,
        )
    if len(out) != n:
        raise StepFailed(
            f"pre step {step.name!r} returned {len(out)} rows; expected one per request row ({n})", step=step.name
        )
    if not out.columns.is_unique:
        dupes = sorted({str(c) for c in out.columns[out.columns.duplicated()]})
        raise StepFailed(f"pre step {step.name!r} returned duplicate columns {dupes}", step=step.name)
    return out


def _check_answers(step: Step, out: Any, n: int) -> np.ndarray:
    values = out.to_numpy() if isinstance(out, pd.Series) else np.asarray(out)
    if values.ndim != 1 or len(values) != n:
        shape = f"shape {values.shape}" if values.ndim != 1 else f"{len(values)} values"
        raise StepFailed(
            f"post step {step.name!r} returned {shape}; expected one prediction per row ({n})", step=step.name
        )
    return values


def request_frame(columns: dict[str, Any]) -> pd.DataFrame:
    """The request's rows as sent: pandas infers each column's type, as `DataFrame(records)` would."""
    try:
        return pd.DataFrame({name: values for name, values in columns.items()})
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"request rows do not form a table: {str(exc)[:200]}") from None


def frame_columns(frame: pd.DataFrame) -> dict[str, Any]:
    """A pre step's output as request columns for the model's schema to check: numeric columns as
    numpy arrays (missing values as NaN), everything else as object arrays."""
    out: dict[str, Any] = {}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column.dtype):
            plain = isinstance(column.dtype, np.dtype)
            out[str(name)] = column.to_numpy() if plain else column.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            out[str(name)] = column.to_numpy(dtype=object)
    return out
