"""The body decoder process (api/body_decoder.py) without a server: what it answers when shared memory
has no room for a body (a container's /dev/shm is 64 MB by default)."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Iterator
from functools import partial
from typing import Any

import orjson
import pytest

from driftgate.api import body_decoder
from driftgate.serving.protocols.native import decode_native
from tests.conftest import classification_data

FEATURES = ["x1", "x2", "colour"]


@pytest.fixture
def decoder() -> Iterator[None]:
    yield
    body_decoder.stop()  # no decoder process outlives the test


def _no_space(*args: Any, **kwargs: Any) -> Any:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["SharedMemory", "_write"])
def test_a_body_travels_with_the_call_when_shared_memory_is_full(
    where: str, decoder: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(body_decoder, where, _no_space)
    body = orjson.dumps({"instances": classification_data(3000, 0)[FEATURES].to_dict("records")})
    assert len(body) > body_decoder.SHARED_MIN_BYTES
    out, rows = asyncio.run(body_decoder.decode_in_child(partial(decode_native, body, FEATURES), 10**6))
    assert rows == 3000 and out == decode_native(body, FEATURES)
    assert body_decoder.processes()  # decoded there, not here
