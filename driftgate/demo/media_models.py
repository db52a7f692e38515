"""The issue-22 models, built on demo/media_data: a spam detector on text, a digit classifier on
images, a word spotter on audio; and `write_artifacts`, which writes each as the file that
`driftgate models register` takes, with its reference data and its declared schema.

- text: a skops file of Pipeline(ColumnTransformer([("tfidf", TfidfVectorizer(), "text")]),
  LogisticRegression); it loads without trust (skops trusts every type in it by default).
- image: an ONNX file (skl2onnx) of an MLPClassifier on the 64 pixels; input float32 [None, 64]
  (the server reshapes a feature of shape [8, 8] to it), outputs label and probabilities.
- audio: `WordSpotter`, a python model (`--format python driftgate.demo.media_models:WordSpotter`)
  that answers the word it hears, or "" when the clip is silent.

`python -m driftgate.demo.media_models FOLDER` writes them all (examples/media/README.md).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftgate.demo import media_data

TARGET = "label"
TEXT_FEATURE, IMAGE_FEATURE, AUDIO_FEATURE = "text", "image", "clip"
MAX_TEXT_CHARS = 10_000
# The schemas to declare at registration (media.md section 1): {"features": [FeatureSpec dicts]}.
TEXT_SCHEMA: dict[str, Any] = {"features": [{"name": TEXT_FEATURE, "kind": "text", "max_chars": MAX_TEXT_CHARS}]}
IMAGE_SCHEMA: dict[str, Any] = {
    "features": [
        {"name": IMAGE_FEATURE, "kind": "tensor", "shape": list(media_data.IMAGE_SHAPE), "dtype": "float32",
         "media": "image", "max": media_data.PIXEL_MAX}
    ]
}  # fmt: skip
AUDIO_SCHEMA: dict[str, Any] = {
    "features": [
        {"name": AUDIO_FEATURE, "kind": "tensor", "shape": [media_data.CLIP_SAMPLES], "dtype": "float32",
         "media": "audio", "sample_rate": media_data.SAMPLE_RATE}
    ]
}  # fmt: skip
AUDIO_MODEL = "driftgate.demo.media_models:WordSpotter"


# ---- text ----------------------------------------------------------------------------------------


def train_text_model(frame: pd.DataFrame) -> Any:
    """A spam detector on the "text" column of `frame` (labels in "label")."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    features = ColumnTransformer([("tfidf", TfidfVectorizer(), TEXT_FEATURE)])
    model = Pipeline([("features", features), ("clf", LogisticRegression(max_iter=1000))])
    return model.fit(frame[[TEXT_FEATURE]], frame[TARGET])


def text_model_skops(model: Any) -> bytes:
    import skops.io as sio

    return bytes(sio.dumps(model))


# ---- image ---------------------------------------------------------------------------------------


def train_image_model(images: np.ndarray, labels: np.ndarray, seed: int = 0) -> Any:
    """An MLPClassifier on the flattened pixels (0..16, as they come: no scaling step to export)."""
    from sklearn.neural_network import MLPClassifier

    flat = np.asarray(images, dtype=np.float32).reshape(len(images), -1)
    return MLPClassifier((64,), max_iter=400, random_state=seed).fit(flat, labels)


def image_model_onnx(model: Any) -> bytes:
    """The classifier as ONNX: input "input" float32 [None, 64]; label and probability tensors
    (no ZipMap: the server takes the class names from the reference data's target column)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    pixels = int(np.prod(media_data.IMAGE_SHAPE))
    onx = convert_sklearn(
        model, initial_types=[("input", FloatTensorType([None, pixels]))], options={id(model): {"zipmap": False}}
    )
    return bytes(onx.SerializeToString())


# ---- audio ---------------------------------------------------------------------------------------


class WordSpotter:
    """Hears which word a clip holds: "" when its loudest 20 ms frame is below `SILENT_DB` (nothing
    said, or said too quietly: the empty answers a volume drop brings), else the word whose two
    tones (media_data.WORD_TONES) carry the most energy. No training: the tones are its knowledge.
    `predict_proba`: each word's share of the products of its two tones' energies (1 for "" on a
    silent clip)."""

    SILENT_DB = -40.0
    FRAME = media_data.SAMPLE_RATE // 50  # 20 ms
    BAND = 0.04  # a tone's band: +-4 % around it (the generator jitters tones by up to 2 %)

    def __init__(self) -> None:
        self.classes_ = np.array(["", *media_data.WORDS], dtype=object)
        self._pairs = np.array([media_data.WORD_TONES[w] for w in media_data.WORDS])

    def predict(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        return np.asarray(self.classes_[self.predict_proba(frame).argmax(axis=1)])

    def predict_proba(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        clips = clip_batch(frame)
        proba = np.zeros((len(clips), len(self.classes_)))
        if not len(clips):
            return proba
        silent = self._loudest_frame_db(clips) < self.SILENT_DB
        proba[silent, 0] = 1.0
        heard = np.flatnonzero(~silent)
        if heard.size:
            bands = self._band_energy(clips[heard])
            # the product: a word sharing one tone with what was said scores far below the word itself
            words = bands[:, self._pairs[:, 0]] * bands[:, self._pairs[:, 1]]
            proba[heard, 1:] = words / np.maximum(words.sum(axis=1, keepdims=True), 1e-30)
        return proba

    def _loudest_frame_db(self, clips: np.ndarray) -> np.ndarray:
        usable = clips.shape[1] // self.FRAME * self.FRAME
        frames = clips[:, :usable].astype(np.float64).reshape(len(clips), -1, self.FRAME)
        power = (frames**2).mean(axis=2).max(axis=1) if usable else np.zeros(len(clips))
        return np.asarray(10 * np.log10(np.maximum(power, 1e-12)))

    def _band_energy(self, clips: np.ndarray) -> np.ndarray:
        spectrum = np.abs(np.fft.rfft(clips.astype(np.float64), axis=1)) ** 2
        freqs = np.fft.rfftfreq(clips.shape[1], 1 / media_data.SAMPLE_RATE)
        tones = np.asarray(media_data.TONES)
        inside = np.abs(freqs[None, :] - tones[:, None]) <= self.BAND * tones[:, None]
        return np.asarray(spectrum @ inside.T.astype(np.float64))


def clip_batch(frame: pd.DataFrame | np.ndarray) -> np.ndarray:
    """The clips of a model call as one 2-D float32 array: from the frame's "clip" column (per-row
    arrays, or a 2-D block), or from an array of clips."""
    values: Any = frame[AUDIO_FEATURE].to_numpy() if isinstance(frame, pd.DataFrame) else frame
    values = np.asarray(values)
    if values.dtype == object:
        rows = [np.asarray(v, dtype=np.float32).reshape(-1) for v in values]
        return np.stack(rows) if rows else np.zeros((0, media_data.CLIP_SAMPLES), np.float32)
    return values.astype(np.float32, copy=False).reshape(len(values), -1)


# ---- artifacts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaArtifact:
    """What `driftgate models register NAME ARTIFACT --format FORMAT --reference REFERENCE
    --target label --schema SCHEMA` takes (for python, `artifact` is the module:Class spec)."""

    name: str
    format: str
    artifact: str
    reference: Path
    schema: Path


def write_artifacts(folder: Path, seed: int = 0, reference_rows: int = 300) -> dict[str, MediaArtifact]:
    """Train (text, image) and write the three models with their reference data (Parquet) and
    declared schemas (JSON) into `folder`; keyed by kind: "text", "image", "audio"."""
    folder.mkdir(parents=True, exist_ok=True)
    train_texts = media_data.emails(2000, seed)
    (folder / "spam.skops").write_bytes(text_model_skops(train_text_model(train_texts)))
    media_data.emails(reference_rows, seed + 1).to_parquet(folder / "spam_reference.parquet")

    images, digits = media_data.digit_images(1200, seed, split="train")
    (folder / "digits.onnx").write_bytes(image_model_onnx(train_image_model(images, digits, seed)))
    ref_images, ref_digits = media_data.digit_images(reference_rows, seed + 1, split="test")
    media_data.reference_frame(IMAGE_FEATURE, ref_images, ref_digits).to_parquet(folder / "digits_reference.parquet")

    clips, words = media_data.audio_clips(min(reference_rows, 100), seed + 1)  # 64 KB a clip
    media_data.reference_frame(AUDIO_FEATURE, clips, words).to_parquet(folder / "words_reference.parquet")

    out = {}
    for kind, name, fmt, artifact, schema in (
        ("text", "spam", "sklearn", str(folder / "spam.skops"), TEXT_SCHEMA),
        ("image", "digits", "onnx", str(folder / "digits.onnx"), IMAGE_SCHEMA),
        ("audio", "words", "python", AUDIO_MODEL, AUDIO_SCHEMA),
    ):
        schema_path = folder / f"{name}_schema.json"
        schema_path.write_text(json.dumps(schema, indent=2) + "\n")
        out[kind] = MediaArtifact(name, fmt, artifact, folder / f"{name}_reference.parquet", schema_path)
    return out


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m driftgate.demo.media_models FOLDER")
    for art in write_artifacts(Path(args[0])).values():
        print(
            f"driftgate models register {art.name} {art.artifact} --format {art.format} "
            f"--reference {art.reference} --target {TARGET} --schema {art.schema}"
        )


if __name__ == "__main__":
    main()
