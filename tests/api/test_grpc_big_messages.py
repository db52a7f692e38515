"""Big gRPC ModelInfer messages are parsed and decoded in the body decoder process (issue 19, item 6):
the server reads only the model's name off the wire (`grpc_decode.model_of`), and a big message gets
the answer the same message gets when small, errors included."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from driftgate.api import body_decoder, grpc_decode
from driftgate.errors import BadRequest
from driftgate.serving.protocols.grpc import grpc_predict_v2_pb2 as pb
from driftgate.serving.protocols.grpc.codec import PREDICTION_IDS
from tests.conftest import Artifacts, LiveServer, classification_data, free_port
from tests.helpers import clf_server

BIG = 4096  # the server's big_body_bytes
UNKNOWN_FIELD = 99  # a field ModelInferRequest does not have: parsers skip it, so it pads a message


def request(rows: int, name: str = "clf", datatype: str = "FP64") -> pb.ModelInferRequest:
    frame = classification_data(rows, 0)
    out = pb.ModelInferRequest(model_name=name, id="req")
    out.inputs.add(name="x1", datatype=datatype, shape=[rows]).contents.fp64_contents.extend(frame["x1"])
    out.inputs.add(name="x2", datatype="FP64", shape=[rows]).contents.fp64_contents.extend(frame["x2"])
    colours = [c.encode() for c in frame["colour"]]
    out.inputs.add(name="colour", datatype="BYTES", shape=[rows]).contents.bytes_contents.extend(colours)
    return out


def padded(raw: bytes, size: int) -> bytes:
    """`raw` and an unknown length-delimited field, `size` bytes of it (under 16 KB)."""
    key = bytes([(UNKNOWN_FIELD << 3 | 2) & 0x7F | 0x80, UNKNOWN_FIELD >> 4])
    return raw + key + bytes([size & 0x7F | 0x80, size >> 7]) + b"x" * size


def test_model_of_reads_what_the_parser_reads() -> None:
    one = request(3).SerializeToString()
    two = pb.ModelInferRequest(model_name="other", model_version="2").SerializeToString()
    cases = [
        one,
        two + one,  # the tensors after a second name: the last name counts
        one + two,
        b"",
        padded(one, 5000),
        pb.ModelInferRequest(raw_input_contents=[b"\0" * 100], model_version="7").SerializeToString(),
    ]
    for raw in cases:
        parsed = grpc_decode.parse_infer(raw)
        assert grpc_decode.model_of(raw) == (parsed.model_name, parsed.model_version), raw[:40]
    for broken in (one[:-3], b"\x0a\x05ab", b"\x0a\x02\xff\xfe", b"\x08\x01", b"\x0b"):
        assert grpc_decode.model_of(broken) is None, broken
    for broken in (one[:-3], b"\x0a\x05ab", b"\x0a\x02\xff\xfe"):
        with pytest.raises(BadRequest):
            grpc_decode.parse_infer(broken)


@pytest.fixture
def served(tmp_path: Path, artifacts: Artifacts) -> Iterator[LiveServer]:
    with clf_server(tmp_path, artifacts, grpc_port=free_port(), big_body_bytes=BIG, max_rows_per_request=5) as srv:
        yield srv


def test_a_big_message_gets_the_answer_it_gets_when_small(served: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed_here: list[int] = []  # sizes of the messages parsed in this (the server's) process
    real_parse: Callable[[bytes], Any] = pb.ModelInferRequest.FromString

    def parse(raw: bytes) -> Any:
        parsed_here.append(len(raw))
        return real_parse(raw)

    monkeypatch.setattr(pb.ModelInferRequest, "FromString", staticmethod(parse))
    cases = {
        "scored": request(3).SerializeToString(),
        "too many rows": request(6).SerializeToString(),
        "bad datatype": request(3, datatype="FP99").SerializeToString(),
        "unknown endpoint": request(3, name="nope").SerializeToString(),
    }
    differ = []
    with grpc.insecure_channel(f"127.0.0.1:{served.settings.grpc_port}") as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        for case, raw in cases.items():
            assert len(raw) < BIG
            answers = []
            for sent in (raw, padded(raw, BIG)):
                try:
                    response = pb.ModelInferResponse.FromString(infer(sent, timeout=60))
                    del response.parameters[PREDICTION_IDS]  # new ids for every request
                    answers.append(("OK", response.SerializeToString(deterministic=True)))
                except grpc.RpcError as exc:
                    answers.append((exc.code().name, exc.details()))
            if answers[0] != answers[1]:
                differ.append((case, answers))
    assert differ == []
    assert all(size < BIG for size in parsed_here), parsed_here  # big ones were parsed in the decoder
    assert len(parsed_here) == len(cases) and body_decoder.processes()
