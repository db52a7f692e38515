"""core/payload: a logged tensor decodes to what was encoded, and anything malformed is a ValueError
(the monitor and the export count such a row as unreadable; a zlib.error used to escape)."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftgate.core.payload import decode_tensor, encode_tensor


@pytest.mark.parametrize("dtype", ["uint8", "float32", "float64", "int16"])
def test_a_tensor_round_trips(dtype: str) -> None:
    array = (np.arange(24) % 7).astype(dtype).reshape(2, 3, 4)
    back = decode_tensor(encode_tensor(array))
    assert back is not None and back.dtype == array.dtype and np.array_equal(back, array)


@pytest.mark.parametrize(
    "payload",
    [
        {"dtype": "uint8", "shape": [2], "zlib": "bm90IHpsaWI="},  # base64 of "not zlib"
        {"dtype": "uint8", "shape": [2], "zlib": "%%%"},  # not base64
        {"dtype": "uint8", "shape": [2]},  # no data
        {"dtype": "uint8", "shape": 3, "zlib": ""},  # shape not a list
        {"dtype": "object", "shape": [1], "zlib": ""},  # a dtype numpy would build objects from
        {**encode_tensor(np.zeros(4, np.uint8)), "shape": [1000]},  # fewer bytes than the shape needs
        {**encode_tensor(np.zeros(10**6, np.uint8)), "shape": [4]},  # more: never inflated past the shape
    ],
)
def test_a_malformed_payload_is_a_value_error(payload: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="tensor payload"):
        decode_tensor(payload)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["dtype", "shape", "zlib"]), st.one_of(st.text(), st.integers(), st.lists(st.integers()))
    )
)
def test_any_payload_decodes_or_is_a_value_error(payload: dict[str, Any]) -> None:
    with contextlib.suppress(ValueError):  # anything else (zlib.error, TypeError, ...) fails the test
        decode_tensor(payload)
