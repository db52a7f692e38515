"""The issue-22 text pipeline (TfidfVectorizer in a ColumnTransformer, LogisticRegression) loads
without trust, and crafted variants of it do not: a function or a type outside skops' trusted
set, or a vocabulary whose indices point past the model's columns (memory-unsafe when scored)."""

from __future__ import annotations

import builtins
import os
import re

import httpx
import pytest
import skops.io as sio

from driftgate.demo import media_data, media_models
from driftgate.errors import BadRequest, UntrustedArtifact
from driftgate.registry import formats, trust
from tests import malicious
from tests.conftest import LiveServer


def test_the_text_pipeline_needs_no_extra_trusted_type() -> None:
    data = media_models.text_model_skops(media_models.train_text_model(media_data.emails(300, seed=0)))
    assert sio.get_untrusted_types(data=data) == []  # skops' defaults hold every type in it
    assert trust.skops_trusted_types(data, trust=False) == []
    assert not any("text" in name or "compose" in name for name in trust.EXTRA_SKOPS_TYPES)
    model = formats.load(data, "skops")
    frame = media_data.emails(50, seed=1)
    assert list(model.predict(frame[["text"]])[0]) == list(media_models.train_text_model(
        media_data.emails(300, seed=0)).predict(frame[["text"]]))  # fmt: skip


@pytest.mark.parametrize(("func", "name"), [(builtins.exec, "builtins.exec"), (os.system, "posix.system")])
def test_a_text_pipeline_calling_a_function_outside_the_list_is_refused(func: object, name: str) -> None:
    data = malicious.skops_text_analyzer(func)
    with pytest.raises(UntrustedArtifact, match=re.escape(name)):
        formats.load(data, "skops")
    formats.load(data, "skops", trust=True)  # the caller vouched for it (loading does not call it)


def test_a_text_pipeline_with_a_renamed_type_is_refused() -> None:
    data = malicious.skops_text_renamed_type("subprocess", "Popen")
    with pytest.raises(UntrustedArtifact, match=re.escape("subprocess.Popen")):
        formats.load(data, "skops")


@pytest.mark.parametrize("index", [10**6, -(10**6), -1, 1])  # 1: two words share column 1, column 0 unused
def test_a_vocabulary_pointing_outside_the_columns_is_refused(index: int) -> None:
    data = malicious.skops_text_vocabulary(index)
    assert sio.get_untrusted_types(data=data) == []  # nothing for the type list to catch
    with pytest.raises(BadRequest, match="malformed vocabulary"):
        formats.load(data, "skops")


def test_dict_vectorizer_vocabulary_checked_too() -> None:
    from sklearn.feature_extraction import DictVectorizer

    vectorizer = DictVectorizer().fit([{"a": 1.0, "b": 2.0}])
    formats.load(sio.dumps(_with_predict(vectorizer)), "skops")
    vectorizer.vocabulary_["b"] = 10**6
    with pytest.raises(BadRequest, match="malformed vocabulary"):
        formats.load(sio.dumps(_with_predict(vectorizer)), "skops")


def _with_predict(vectorizer: object) -> object:
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline

    return Pipeline([("v", vectorizer), ("m", LinearRegression().fit([[1.0, 2.0], [2.0, 1.0]], [0.0, 1.0]))])


def test_crafted_text_pipelines_refused_over_http(server: LiveServer) -> None:
    reference = media_data.emails(20, seed=2).to_csv(index=False).encode()
    with httpx.Client(base_url=server.url, timeout=120) as http:
        for data, said in (
            (malicious.skops_text_analyzer(builtins.exec), "builtins.exec"),
            # refused before it is scored on the reference rows (with a long idf_, scoring it read past
            # the coefficients: a column index of 10**8 crashed the process, SIGSEGV)
            (malicious.skops_text_vocabulary(10**6), "malformed vocabulary"),
        ):
            r = http.post(
                "/v1/models/spam/versions",
                data={"format": "sklearn", "target": "label"},
                files={"file": ("m.skops", data), "reference": ("ref.csv", reference)},
            )
            assert r.status_code == 400 and said in r.json()["error"] and r.json()["field"] == "file", r.text
        good = media_models.text_model_skops(media_models.train_text_model(media_data.emails(300, seed=0)))
        r = http.post(
            "/v1/models/spam/versions",
            data={"format": "sklearn", "target": "label"},
            files={"file": ("m.skops", good), "reference": ("ref.csv", reference)},
        )
        assert r.status_code == 201, r.text
