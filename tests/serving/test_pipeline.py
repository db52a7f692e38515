"""Pipeline steps without a server: resolving functions, running the chain, shaping its output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftgate.errors import BadRequest, InvalidInput, StepFailed
from driftgate.registry.schema import InputSchema
from driftgate.serving.endpoint_config import Pipeline
from driftgate.serving.pipeline import CompiledPipeline, Step, compile_pipeline, frame_columns, request_frame
from tests import pipeline_steps

ALLOWED = ("tests.pipeline_steps",)
RAW = pd.DataFrame({"x1": [0.5, -2.0], "x2_minutes": [60.0, 150.0], "COLOUR": ["RED", "Blue"]})


class Calls:
    """Records what the pipeline reports after every step."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int, str]] = []

    def __call__(self, step: Step, seconds: float, rows: int, status: str) -> None:
        assert seconds >= 0
        self.seen.append((step.stage, step.name, rows, status))


def pipeline(pre: list[str] = (), post: list[str] = ()) -> CompiledPipeline:  # type: ignore[assignment]
    config = Pipeline.model_validate(
        {
            "pre": [{"name": f, "function": f"tests.pipeline_steps:{f}"} for f in pre],
            "post": [{"name": f, "function": f"tests.pipeline_steps:{f}"} for f in post],
        }
    )
    return compile_pipeline(config, ALLOWED)


def test_pre_steps_run_in_order_and_report_each_step() -> None:
    calls = Calls()
    out = pipeline(pre=["lower_colour", "hours"]).run_pre(RAW.copy(), calls)
    pd.testing.assert_frame_equal(out[["x1", "x2", "colour"]], pipeline_steps.model_inputs(RAW))
    assert calls.seen == [("pre", "lower_colour", 2, "ok"), ("pre", "hours", 2, "ok")]


def test_post_steps_chain_and_get_copies() -> None:
    calls = Calls()
    preds, proba = np.array([0, 1]), np.array([[0.8, 0.2], [0.3, 0.7]])
    frame = pipeline_steps.model_inputs(RAW)
    before = frame.copy()
    out = pipeline(post=["vandal", "label_names", "shout"]).run_post(preds, proba, frame, calls)
    assert out.tolist() == ["LEGIT", "LEGIT"]  # vandal zeroed its copy of the predictions
    # ... but not the arrays and frame the server logs.
    assert preds.tolist() == [0, 1] and proba[0, 0] == 0.8
    pd.testing.assert_frame_equal(frame, before)
    assert [s[1] for s in calls.seen] == ["vandal", "label_names", "shout"]


@pytest.mark.parametrize(
    ("pre", "post", "message"),
    [
        (["explode_on_negative"], [], "pre step 'explode_on_negative' failed: ValueError: x1 below -100"),
        (["first_row_only"], [], "pre step 'first_row_only' returned 1 rows; expected one per request row (2)"),
        (["not_a_frame"], [], "pre step 'not_a_frame' returned a list; expected a pandas DataFrame"),
        ([], ["broken_post"], "post step 'broken_post' failed: RuntimeError: post-processing bug"),
        ([], ["too_short"], "post step 'too_short' returned 1 values; expected one prediction per row (2)"),
    ],
)
def test_failing_steps_are_named(pre: list[str], post: list[str], message: str) -> None:
    calls = Calls()
    raw = RAW.assign(x1=[-500.0, 1.0])
    with pytest.raises(StepFailed) as failed:
        p = pipeline(pre, post)
        p.run_pre(raw, calls) if pre else p.run_post(np.array([0, 1]), None, raw, calls)
    assert message in failed.value.message
    assert failed.value.details["step"] == (pre or post)[0]
    assert failed.value.status_code == 500
    assert calls.seen[-1][-1] == "error"


def test_a_step_refusing_the_input_is_invalid_input() -> None:
    calls = Calls()
    with pytest.raises(InvalidInput) as refused:
        pipeline(pre=["require_customer"]).run_pre(RAW.copy(), calls)
    assert refused.value.message == "pre step 'require_customer': expected a 'customer' column"
    assert refused.value.details == {"field": "customer", "step": "require_customer"}
    assert calls.seen == [("pre", "require_customer", 2, "invalid")]


@pytest.mark.parametrize(
    ("function", "allowed", "message"),
    [
        ("os:getcwd", ALLOWED, "module 'os' is not allowed on this server (allowed: 'tests.pipeline_steps')"),
        ("os.path:join", (*ALLOWED, "os.path.x"), "module 'os.path' is not allowed"),
        ("tests.pipeline_stepsX:f", ("tests.pipeline_steps",), "is not allowed"),
        ("tests.no_such_module:f", ("tests",), "cannot import module 'tests.no_such_module' (ModuleNotFoundError"),
        ("tests.pipeline_steps:missing", ALLOWED, "'tests.pipeline_steps:missing' has no attribute 'missing'"),
        ("tests.pipeline_steps:NOT_CALLABLE", ALLOWED, "is a int, expected a function"),
        ("tests.pipeline_steps:NotAFunction", ALLOWED, "is a class, expected a function"),
    ],
)
def test_bad_functions_are_refused_naming_the_step(function: str, allowed: tuple[str, ...], message: str) -> None:
    config = Pipeline.model_validate(
        {"post": [{"name": "ok", "function": "tests.pipeline_steps:shout"}, {"name": "bad", "function": function}]}
    )
    with pytest.raises(BadRequest) as refused:
        compile_pipeline(config, allowed)
    assert message in refused.value.message
    assert refused.value.message.startswith("pipeline step 'bad': ")
    assert refused.value.details == {"field": "pipeline.post.1.function", "step": "bad"}


def test_submodules_of_an_allowed_package_and_any_module_without_a_list() -> None:
    config = Pipeline.model_validate({"pre": [{"name": "a", "function": "tests.pipeline_steps:hours"}]})
    with pytest.raises(BadRequest, match=r"\(allowed: none\); .*`driftgate serve --pipeline-module PACKAGE`"):
        compile_pipeline(config, ())
    assert compile_pipeline(config, ("tests",)).pre[0].fn is pipeline_steps.hours
    assert compile_pipeline(config, None).pre[0].function == "tests.pipeline_steps:hours"
    assert compile_pipeline(None, ()) == CompiledPipeline()


def test_request_frame_infers_types_and_frame_columns_feed_the_schema() -> None:
    raw = request_frame({"a": [1, None, 3], "b": ["x", None, "z"], "c": [[1], [2], [3]]})
    assert raw["a"].dtype == np.float64 and np.isnan(raw["a"].iloc[1])
    with pytest.raises(InvalidInput):
        request_frame({"a": [1, 2], "b": [1]})
    derived = pd.DataFrame(
        {
            "n": pd.array([1, None, 3], dtype="Int64"),
            "f": [0.5, 1.5, 2.5],
            "s": pd.array(["u", None, "w"], dtype="string"),
            "flag": [True, False, True],
        }
    )
    columns = frame_columns(derived)
    assert columns["n"].dtype == np.float64 and np.isnan(columns["n"][1])
    assert columns["s"].dtype == object
    schema = InputSchema.from_dict(
        {
            "features": [
                {"name": "n", "kind": "integer", "nullable": True},
                {"name": "f", "kind": "numeric"},
                {"name": "s", "kind": "categorical", "nullable": True},
                {"name": "flag", "kind": "boolean"},
            ]
        }
    )
    frame = schema.to_frame(columns, 3)
    assert frame["f"].tolist() == [0.5, 1.5, 2.5] and frame["flag"].tolist() == [1.0, 0.0, 1.0]
    assert frame["s"].iloc[0] == "u" and pd.isna(frame["s"].iloc[1])
