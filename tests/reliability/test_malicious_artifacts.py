"""Every malicious artifact kind, uploaded without a trust flag over HTTP and through the CLI.

Pickle/joblib, skops reduce and function tricks, a crafted out-of-bounds tree or vocabulary, MLflow
pickle/cloudpickle, archives with traversal, symlinks and bombs (tests/malicious.py builds them).
Each must be refused with a 4xx naming the problem, never executed (its canary file is never
written), write nothing outside the temp folder and leave no extraction folder behind.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from driftgate.cli import app
from tests import malicious
from tests.conftest import make_server

pytestmark = pytest.mark.slow


class _PicklePayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (malicious.PAYLOAD.format(marker=str(self.marker)),))


def _kinds(marker: Path, tmp: Path) -> dict[str, tuple[str, Callable[[], bytes]]]:
    kinds: dict[str, tuple[str, Callable[[], bytes]]] = {
        "pickle": ("sklearn", lambda: pickle.dumps(_PicklePayload(marker))),
        "skops_reduce": ("sklearn", lambda: malicious.skops_reduce_runstring(marker)),
        "skops_function": ("sklearn", malicious.skops_function_trick),
        "skops_tree_out_of_bounds": ("sklearn", malicious.skops_out_of_bounds_tree),
        "skops_vocabulary_out_of_bounds": ("sklearn", lambda: malicious.skops_text_vocabulary(10**6)),
        "archive_traversal": ("mlflow", malicious.archive_traversal),
        "archive_symlink": ("mlflow", malicious.archive_symlink),
        "archive_bomb": ("mlflow", lambda: malicious.archive_bomb(300 * 1024**2)),
    }
    try:
        import mlflow  # noqa: F401

        kinds["mlflow_cloudpickle"] = ("mlflow", lambda: malicious.mlflow_pickle(marker, tmp))
    except ImportError:
        pass
    return kinds


def _leftovers() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("driftgate-mlflow-*"))


def test_every_malicious_artifact_refused_never_run(tmp_path: Path, figures: dict[str, Any]) -> None:
    marker = tmp_path / "canary"
    escaped = [Path(tempfile.gettempdir()) / "driftgate-escaped.txt", Path("/driftgate-escaped.txt")]
    before = _leftovers()
    server = make_server(tmp_path / "srv")
    refused_http = refused_cli = 0
    kinds = _kinds(marker, tmp_path)
    try:
        with httpx.Client(base_url=server.url, timeout=120) as http:
            for name, (fmt, build) in kinds.items():
                data = build()
                r = http.post(f"/v1/models/{name.replace('_', '-')}/versions", data={"format": fmt},
                              files={"file": ("artifact", data)})  # fmt: skip
                assert r.status_code == 400, (name, r.status_code, r.text)
                assert r.json().get("field") == "file", (name, r.text)
                refused_http += 1
                path = tmp_path / f"{name}.bin"
                path.write_bytes(data)
                out = CliRunner().invoke(
                    app, ["models", "register", "m", str(path), "--format", fmt, "--data-dir", str(tmp_path / "cli")]
                )
                assert out.exit_code != 0 and "Traceback" not in out.output, (name, out.output)
                refused_cli += 1
                assert not marker.exists(), f"{name} ran its payload"
    finally:
        server.stop()
    assert not any(p.exists() for p in escaped)
    left = _leftovers() - before
    figures.update(
        kinds=len(kinds), refused_http=refused_http, refused_cli=refused_cli, executed=int(marker.exists()),
        written_outside=sum(p.exists() for p in escaped), temp_folders_left=len(left),
    )  # fmt: skip
    assert not left
