"""The floor: Starlette + uvicorn, orjson parse + DataFrame + predict_proba inline on the event loop.

Usage: python bare_app.py MODEL.joblib PORT   (run in driftgate's venv, so the same libraries)
"""

from __future__ import annotations

import sys

import joblib
import numpy as np
import orjson
import pandas as pd
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

MODEL = joblib.load(sys.argv[1])
CLASSES = MODEL.classes_


async def predict(request: Request) -> Response:
    rows = orjson.loads(await request.body())["instances"]
    frame = pd.DataFrame({k: [r[k] for r in rows] for k in rows[0]})
    proba = MODEL.predict_proba(frame)
    out = {"predictions": CLASSES[proba.argmax(axis=1)], "probabilities": np.ascontiguousarray(proba)}
    return Response(orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
