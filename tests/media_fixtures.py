"""Small issue-22 models for the input tests, built in a second from scikit-learn's bundled data: an
ONNX MLP on the 8x8 digits (input [None, 64], as skl2onnx writes it) and a skops text pipeline."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

IMAGE_SCHEMA = {
    "features": [{"name": "image", "kind": "tensor", "shape": [8, 8], "dtype": "float32", "media": "image", "max": 16}]
}
TEXT_SCHEMA = {"features": [{"name": "text", "kind": "text", "max_chars": 1000}]}
SPAM = ["win a free prize now", "claim your free money", "cheap pills free offer", "you won a free cruise"]
HAM = ["meeting moved to noon", "lunch tomorrow with the team", "the report is attached", "see you at the review"]


@dataclass
class Digits:
    images: np.ndarray  # (n, 8, 8) float64, values 0..16
    labels: np.ndarray
    onnx: bytes

    def expected(self, images: np.ndarray) -> list[int]:
        """What the ONNX graph itself answers for these images (float32, flattened to 64)."""
        import onnxruntime as ort

        session = ort.InferenceSession(self.onnx, providers=["CPUExecutionProvider"])
        flat = np.asarray(images, dtype=np.float32).reshape(len(images), 64)
        return [int(v) for v in session.run(None, {session.get_inputs()[0].name: flat})[0]]

    def reference(self, rows: int = 200) -> pd.DataFrame:
        """Reference data as Parquet holds it: one flat list of 64 pixels a row, and the label."""
        frame = pd.DataFrame({"image": [i.reshape(-1).tolist() for i in self.images[:rows]]})
        frame["label"] = self.labels[:rows]
        return frame


def digits_model() -> Digits:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    digits = load_digits()
    x = digits.data.astype(np.float32)
    with warnings.catch_warnings():  # a few iterations: it does not converge, and need not
        warnings.simplefilter("ignore")
        mlp = MLPClassifier(hidden_layer_sizes=(32,), max_iter=30, random_state=0).fit(x, digits.target)
    onnx = to_onnx(mlp, x[:1], options={id(mlp): {"zipmap": False}}).SerializeToString()
    return Digits(digits.images, digits.target, onnx)


def text_frame() -> pd.DataFrame:
    return pd.DataFrame({"text": SPAM + HAM, "label": ["spam"] * 4 + ["ham"] * 4})


def train_text(frame: pd.DataFrame) -> Any:
    """ColumnTransformer(TfidfVectorizer on "text") + LogisticRegression on a frame with "text" and
    "label" (also a retraining train function: `--train-module tests.media_fixtures`)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    pre = ColumnTransformer([("tfidf", TfidfVectorizer(), "text")])
    return Pipeline([("pre", pre), ("clf", LogisticRegression(C=10))]).fit(frame[["text"]], frame["label"])


def text_model() -> bytes:
    """The text pipeline on `text_frame()`, saved with skops."""
    import skops.io as sio

    return sio.dumps(train_text(text_frame()))


def png(image: np.ndarray) -> bytes:
    """A digit (0..16) as an 8-bit grey PNG, 16 -> 255."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.rint(np.asarray(image) / 16 * 255).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def register_artifact(client: Any, art: Any) -> dict[str, Any]:
    """Register one of `driftgate.demo.media_models.write_artifacts`' models (text or image: the python
    audio model registers from the local side only) with its reference data and declared schema."""
    return client.register_model(
        art.name, art.artifact, art.format, reference=art.reference, target="label", schema=art.schema
    )
