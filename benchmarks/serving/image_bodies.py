"""Model, reference data and request bodies of the image serving benchmark (image_model.py).

The model is issue 22's image model (driftgate.demo.media_models): an MLPClassifier (64 hidden units)
on scikit-learn's 8x8 digits (values 0..16), trained on 1,200 images of the "train" split and exported
to ONNX (input float32 [None, 64]). Requests carry 1 or 32 held-out images in each wire form:

- `native_lists`: `{"instances": [{"image": [[8 floats] x 8]}]}` (nested lists);
- `native_b64`: `{"instances": [{"image": {"b64": <raw little-endian float32 bytes>, "dtype": "float32"}}]}`;
- `v2_json`: Open Inference Protocol, one FP32 tensor [n, 8, 8] in JSON `data`;
- `v2_binary`: the same tensor as raw bytes after the JSON header (Triton's binary extension,
  `Inference-Header-Content-Length`), binary outputs asked for (what tritonclient.http sends);
- `grpc`: a serialised ModelInferRequest with the tensor in raw_input_contents (what tritonclient.grpc
  sends);
- `mlserver_v2_json`: FP32 [n, 64] in JSON (what mlserver-sklearn takes), predict_proba asked for.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from driftgate.demo import media_data, media_models

SIZES = (1, 32)
SEED = 0
TRAIN_ROWS, REFERENCE_ROWS = 1200, 300
FEATURE = media_models.IMAGE_FEATURE


def prepare(work: Path) -> dict[str, Any]:
    """Write the ONNX model, reference Parquet, declared schema, training data (for peers that train
    their own copy), bodies and the expected answers (the ONNX graph in-process) under `work`."""
    work.mkdir(parents=True, exist_ok=True)
    images, labels = media_data.digit_images(TRAIN_ROWS, SEED, split="train")
    model = media_models.train_image_model(images, labels, SEED)
    (work / "digits.onnx").write_bytes(media_models.image_model_onnx(model))
    np.savez(work / "train.npz", x=images.reshape(len(images), -1).astype(np.float32), y=labels)
    ref_images, ref_labels = media_data.digit_images(REFERENCE_ROWS, SEED + 1, split="test")
    media_data.reference_frame(FEATURE, ref_images, ref_labels).to_parquet(work / "reference.parquet")
    (work / "schema.json").write_text(json.dumps(media_models.IMAGE_SCHEMA))
    test, _ = media_data.digit_images(max(SIZES), SEED + 2, split="test")
    test = test.astype(np.float32)
    np.save(work / "test.npy", test)
    for n in SIZES:
        batch = test[:n]
        for form, body in bodies(batch).items():
            (work / f"{form}_{n}.body").write_bytes(body)
        header, raw = v2_binary(batch)
        (work / f"v2_binary_{n}.body").write_bytes(header + raw)
        (work / f"v2_binary_{n}.len").write_text(str(len(header)))
    return {"model": model, "test": test}


def bodies(batch: np.ndarray) -> dict[str, bytes]:
    n = len(batch)
    lists = [{FEATURE: img.tolist()} for img in batch]
    b64 = [{FEATURE: {"b64": base64.b64encode(img.astype("<f4").tobytes()).decode(), "dtype": "float32"}}
           for img in batch]  # fmt: skip
    v2 = {"inputs": [{"name": FEATURE, "shape": [n, 8, 8], "datatype": "FP32", "data": batch.reshape(-1).tolist()}]}
    mls = {
        "inputs": [{"name": "input-0", "shape": [n, 64], "datatype": "FP32", "data": batch.reshape(-1).tolist()}],
        "outputs": [{"name": "predict_proba"}],
    }
    return {
        "native_lists": orjson.dumps({"instances": lists}),
        "native_b64": orjson.dumps({"instances": b64}),
        "v2_json": orjson.dumps(v2),
        "mlserver_v2_json": orjson.dumps(mls),
    }


def v2_binary(batch: np.ndarray) -> tuple[bytes, bytes]:
    raw = np.ascontiguousarray(batch, dtype="<f4").tobytes()
    header = {
        "inputs": [{"name": FEATURE, "shape": [len(batch), 8, 8], "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)}}],
        "parameters": {"binary_data_output": True},
    }  # fmt: skip
    return orjson.dumps(header), raw


def grpc_body(batch: np.ndarray, model_name: str) -> bytes:
    from driftgate.serving.protocols.grpc import grpc_predict_v2_pb2 as pb

    request = pb.ModelInferRequest(model_name=model_name)
    request.inputs.add(name=FEATURE, datatype="FP32", shape=[len(batch), 8, 8])
    request.raw_input_contents.append(np.ascontiguousarray(batch, dtype="<f4").tobytes())
    return request.SerializeToString()


def expected(work: Path) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) of the ONNX graph in this process on the 32 test images."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(work / "digits.onnx"), providers=["CPUExecutionProvider"])
    test = np.load(work / "test.npy").reshape(-1, 64)
    labels, proba = session.run(None, {session.get_inputs()[0].name: test})
    return np.asarray(labels), np.asarray(proba)


def train_in(venv: Path, work: Path, out: Path) -> None:
    """The same MLPClassifier fitted with the peer venv's own scikit-learn (no pickle crosses versions)."""
    code = (
        "import joblib, numpy as np; from sklearn.neural_network import MLPClassifier; "
        f"d = np.load({str(work / 'train.npz')!r}); "
        f"joblib.dump(MLPClassifier((64,), max_iter=400, random_state={SEED}).fit(d['x'], d['y']), {str(out)!r})"
    )
    subprocess.run([str(venv / "bin" / "python"), "-c", code], check=True, capture_output=True)


def in_process_floor(work: Path) -> dict[str, float]:
    """Microseconds per call on the client core: ONNX Runtime alone; parse + run + serialise of the
    native nested-list body (what the floor server does per request, less HTTP); and driftgate's own
    decoding of each native body with its schema check (`decode_native` + `InputSchema.to_columns`)."""
    import onnxruntime as ort

    from driftgate.registry.schema import InputSchema
    from driftgate.serving.protocols.native import decode_native

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(work / "digits.onnx"), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    schema = InputSchema.from_dict(media_models.IMAGE_SCHEMA)
    out: dict[str, float] = {}
    for n in SIZES:
        body = (work / f"native_lists_{n}.body").read_bytes()
        pixels = np.load(work / "test.npy")[:n].reshape(n, 64)

        def full(body: bytes = body) -> None:
            rows = orjson.loads(body)["instances"]
            x = np.asarray([r["image"] for r in rows], dtype=np.float32).reshape(len(rows), -1)
            labels, proba = session.run(None, {name: x})
            orjson.dumps({"predictions": labels, "probabilities": proba}, option=orjson.OPT_SERIALIZE_NUMPY)

        native = {form: (work / f"{form}_{n}.body").read_bytes() for form in ("native_lists", "native_b64")}

        def decode(form: str, native: dict[str, bytes] = native) -> None:
            request = decode_native(native[form], [FEATURE], frozenset({FEATURE}))
            schema.to_columns(request.columns, request.n_rows)

        cases = {
            f"onnx_run_{n}_us": lambda x=pixels: session.run(None, {name: x}),
            f"parse_run_serialise_{n}_us": full,
            **{f"driftgate_decode_{form}_{n}_us": lambda f=form: decode(f) for form in ("native_lists", "native_b64")},
        }
        for key, fn in cases.items():
            for _ in range(50):
                fn()
            best = float("inf")
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(200):
                    fn()
                best = min(best, (time.perf_counter() - t0) / 200 * 1e6)
            out[key] = round(best, 1)
    return out


# ---- reading answers (the correctness check before any load) --------------------------------------


def probabilities(raw: bytes, headers: dict[str, str]) -> np.ndarray:
    """The probability matrix of a native, V2 JSON, V2 binary or bare answer."""
    split = headers.get("inference-header-content-length")
    head = orjson.loads(raw[: int(split)] if split else raw)
    if "probabilities" in head:
        return np.asarray(head["probabilities"], dtype=float)
    tail, offset = raw[int(split) :] if split else b"", 0
    for out in head["outputs"]:
        size = (out.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            data = np.frombuffer(tail[offset : offset + size], dtype=_NUMPY[out["datatype"]])
            offset += size
        else:
            data = np.asarray(out["data"])
        if len(out["shape"]) == 2 and out["datatype"].startswith("FP"):
            return np.asarray(data, dtype=float).reshape(out["shape"])
    raise ValueError(f"no probability output in {[o['name'] for o in head['outputs']]}")


def grpc_probabilities(raw: bytes) -> np.ndarray:
    from driftgate.serving.protocols.grpc import grpc_predict_v2_pb2 as pb

    answer = pb.ModelInferResponse.FromString(raw)
    for i, out in enumerate(answer.outputs):
        if len(out.shape) == 2 and out.datatype.startswith("FP"):
            if answer.raw_output_contents:
                data = np.frombuffer(answer.raw_output_contents[i], dtype=_NUMPY[out.datatype])
            else:
                data = np.asarray(out.contents.fp32_contents or out.contents.fp64_contents)
            return np.asarray(data, dtype=float).reshape(list(out.shape))
    raise ValueError(f"no probability output in {[o.name for o in answer.outputs]}")


_NUMPY = {"FP32": "<f4", "FP64": "<f8", "INT64": "<i8", "INT32": "<i4", "UINT8": "u1"}
