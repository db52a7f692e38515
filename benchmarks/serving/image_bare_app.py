"""The image floor: Starlette + uvicorn + onnxruntime, inline on the event loop (like bare_app.py).

Usage: python image_bare_app.py MODEL.onnx PORT   (run in driftgate's venv, so the same libraries)

- POST /predict: native JSON `{"instances": [{"image": [[...8 floats] x 8]}, ...]}`;
- POST /v2: an Open Inference Protocol body with Triton's binary tensor extension (JSON header of
  `Inference-Header-Content-Length` bytes, then the FP32 tensor's raw bytes).
Both answer JSON {"predictions", "probabilities"}. No validation, ids, metrics or logging: the floor.
"""

from __future__ import annotations

import sys

import numpy as np
import onnxruntime as ort
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

options = ort.SessionOptions()
# One thread: the server has one core (taskset), as driftgate's ONNX adapter on a one-core machine.
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
SESSION = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
INPUT = SESSION.get_inputs()[0].name


def answer(pixels: np.ndarray) -> Response:
    labels, proba = SESSION.run(None, {INPUT: pixels})
    out = {"predictions": labels, "probabilities": np.ascontiguousarray(proba)}
    return Response(orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


async def predict(request: Request) -> Response:
    rows = orjson.loads(await request.body())["instances"]
    return answer(np.asarray([r["image"] for r in rows], dtype=np.float32).reshape(len(rows), -1))


async def v2_binary(request: Request) -> Response:
    body = await request.body()
    split = int(request.headers["inference-header-content-length"])
    n = orjson.loads(body[:split])["inputs"][0]["shape"][0]
    return answer(np.frombuffer(body[split:], dtype="<f4").reshape(n, -1))


app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/v2", v2_binary, methods=["POST"])])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
