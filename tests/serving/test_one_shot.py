"""One call in a throwaway process (driftgate/one_shot.py): its answer, its error, its crash or hang
answered here as an error, and nothing left running."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from driftgate.errors import BadRequest, UntrustedArtifact
from driftgate.one_shot import WorkerCrashed, WorkerHung, _rebuild, run_once
from driftgate.registry.registry import Registration, register
from driftgate.store import Store
from tests.api.test_unvetted_never_in_server import LOADS_INTO_SEGFAULT
from tests.conftest import Artifacts


def pid_and(value: int) -> list[int]:
    return [os.getpid(), value]


def refuse() -> None:
    raise UntrustedArtifact("not without trust", field="file", untrusted_types=["x.Y"])


def fail() -> None:
    raise KeyError("x1")


def segfault() -> None:
    ctypes.string_at(0)


def test_the_answer_comes_from_another_process() -> None:
    pid, value = run_once(pid_and, (7,), what="answered")
    assert value == 7 and pid != os.getpid()
    assert not multiprocessing.active_children()


def test_errors_come_back_as_driftgate_errors() -> None:
    with pytest.raises(UntrustedArtifact) as caught:
        run_once(refuse, (), what="refused")
    assert caught.value.message == "not without trust"
    assert caught.value.details == {"field": "file", "untrusted_types": ["x.Y"]}
    with pytest.raises(BadRequest, match="KeyError: 'x1'"):
        run_once(fail, (), what="failed")


def test_a_name_from_the_child_only_picks_a_class_of_driftgate_errors() -> None:
    assert type(_rebuild("system", "rm -rf /", {})) is BadRequest
    assert type(_rebuild("reprlib", "x", {})) is BadRequest  # a module driftgate.errors imports
    assert type(_rebuild("Any", "x", {})) is BadRequest
    assert type(_rebuild("UntrustedArtifact", "x", {"field": "file"})) is UntrustedArtifact


def test_a_crash_or_a_hang_is_an_error_here() -> None:
    with pytest.raises(WorkerCrashed, match="WorkerCrashed: the worker process that crashed was killed by SIGSEGV"):
        run_once(segfault, (), what="crashed")
    with pytest.raises(WorkerHung, match="did not finish within 1 s"):
        run_once(time.sleep, (600,), what="slept", timeout_s=1)
    assert not multiprocessing.active_children()  # the hung one was killed and reaped


def test_registering_a_file_that_segfaults_on_load_fails_and_stores_nothing(
    tmp_path: Path, artifacts: Artifacts
) -> None:
    store = Store.open(tmp_path / "data")
    try:
        reference = artifacts.reference[["x1", "x2"]].to_csv(index=False).encode()
        registration = Registration("boom", LOADS_INTO_SEGFAULT, "sklearn", reference, "ref.csv", trust=True)
        with pytest.raises(WorkerCrashed, match="SIGSEGV"):
            register(store, registration)  # used to segfault the registering process (this one)
        assert store.models.names() == []
    finally:
        store.close()
