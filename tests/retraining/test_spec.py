from __future__ import annotations

import pytest
from pydantic import ValidationError

from driftgate.retraining.spec import RetrainSpec
from driftgate.validation import module_allowed


def test_defaults_shadow_the_candidate_on_a_week_of_data() -> None:
    spec = RetrainSpec(train="pkg.mod:fit")
    assert spec.data == "recent" and spec.window_seconds == 7 * 86400 and spec.rollout == {"strategy": "shadow"}
    assert spec.module() == "pkg.mod" and spec.every_seconds is None and not spec.trust


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"train": "pkg.mod"}, "package.module:function"),
        ({"train": "pkg mod:fit"}, "package.module:function"),
        ({"rollout": {"strategy": "canary", "steps": [50, 10]}}, "steps must increase"),
        ({"rollout": {"strategy": "canary", "model": "other"}}, "must not name ['model']"),
        ({"rollout": {"strategy": "canary", "colour": "red"}}, "rollout colour: Extra inputs"),
        ({"every_seconds": 5}, "greater than or equal to 60"),
        ({"min_rows": 1}, "greater than or equal to 10"),
    ],
)
def test_bad_specs_say_what_is_wrong(changes: dict, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RetrainSpec.model_validate({"train": "pkg.mod:fit", **changes})
    assert words in str(caught.value)


def test_a_package_allows_its_submodules_only() -> None:
    assert module_allowed("pkg", ("pkg",)) and module_allowed("pkg.train", ("pkg",))
    assert not module_allowed("pkgx.train", ("pkg",)) and not module_allowed("os", ())


def test_infinite_numbers_are_refused() -> None:
    for field in ("min_improvement", "window_seconds", "every_seconds", "timeout_seconds"):
        with pytest.raises(ValidationError, match="finite"):
            RetrainSpec.model_validate({"train": "pkg.mod:fit", field: float("inf")})
