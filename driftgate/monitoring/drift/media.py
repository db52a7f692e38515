"""Text and tensor features in drift: descriptor columns in place of the raw column, and embedding drift.

Pure (numpy; the prediction log's tensor payloads are decoded by `core.payload`). A text or tensor
feature `f` is not tested as such: its per-row descriptors are, as numeric columns named "f.<descriptor>"
(`column_name`), with the same tests, effect sizes and Holm family as any numeric feature:

- text: `TEXT_DESCRIPTORS`, computed by the monitor from the stored text. The vocabulary (behind
  `unseen_token_share`) that describes a window is fitted on one half of the reference texts (a seeded
  split), and the reference distribution is the descriptors of texts it was not fitted on: on its own
  texts the unseen share is 0 by construction and every window would look new (`descriptors.text`).
  The other half is described with this vocabulary, the first half with the other half's (cross-fit),
  so every reference row keeps its descriptors beside its other features.
- tensor (image, audio): the descriptors of the reference tensors; a window's are those logged with
  each row ("x.<descriptor>" inputs, computed at log time by the same `describe_tensor`).

Each tensor feature also gets an embedding test (`embedding_drift`): MMD with an RBF kernel and a
permutation p-value (`drift.mmd`) between the reference tensors and the window's rows whose raw payload
was kept (`payload_sample_rate`), reported as feature "x" with effect "mmd" and a p-value that joins
the same Holm family. Too few sampled payloads: no test, and a note says why.

>>> from driftgate.registry.schema import FeatureSpec
>>> spec = FeatureSpec("t", "text")
>>> reference = MediaReference.fit([spec], {"t": ["a cat", "a dog", "the cat", "the dog"]})
>>> sorted(reference.columns)[:2]
['t.empty', 't.length_chars']
>>> reference.current_columns([{"t": "a cat sat"}])["t.length_tokens"].tolist()
[3.0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from driftgate.core.payload import decode_tensor
from driftgate.monitoring.descriptors import TEXT_DESCRIPTORS, TextDescriber, describe_tensor, tensor_descriptors
from driftgate.monitoring.drift.mmd import MMDReference, mmd_test
from driftgate.monitoring.drift.report import FeatureDrift, Subtest

if TYPE_CHECKING:
    from driftgate.monitoring.drift.evaluate import DriftSettings
    from driftgate.registry.schema import FeatureSpec

SPLIT_SEED = 0  # the text reference's split: the same reference always gives the same two halves
MMD_SEED = 0
# Sampled payloads a window needs for the embedding test: below, the test has little power and a
# quiet result would read as "no drift" when it means "not enough data".
MIN_EMBEDDING_ROWS = 30
# Permutations of the embedding test: its smallest p-value is 1 / (1 + n), which must still pass Holm
# in a family of a few dozen tests (1/1001 x 40 < 0.05).
EMBEDDING_PERMUTATIONS = 1000


def column_name(feature: str, descriptor: str) -> str:
    return f"{feature}.{descriptor}"


def descriptors_of(spec: FeatureSpec) -> tuple[str, ...]:
    """The descriptor names of a text or tensor feature (empty for scalar kinds and generic tensors)."""
    if spec.kind == "text":
        return TEXT_DESCRIPTORS
    if spec.kind == "tensor":
        return tensor_descriptors(spec.media)
    return ()


def descriptor_columns(spec: FeatureSpec) -> list[str]:
    return [column_name(spec.name, d) for d in descriptors_of(spec)]


def stack_tensors(name: str, values: Sequence[Any], shape: Sequence[int], dtype: str | None) -> np.ndarray:
    """Reference cells (nested lists, flat lists of prod(shape) values, or arrays; one per row) as one
    (n, *shape) array of the feature's dtype. ValueError naming the feature and row when a cell does
    not hold prod(shape) values; a null cell is refused too (a tensor reference has no missing rows)."""
    size = math.prod(shape)
    rows = []
    for i, cell in enumerate(values):
        array = _dense(cell)
        if array is None or array.size != size:
            got = "null" if array is None else f"{array.size} values"
            raise ValueError(f"reference column {name!r}, row {i}: {got}, expected {size} for shape {list(shape)}")
        rows.append(array.reshape(shape))
    if not rows:
        return np.empty((0, *shape), dtype=dtype or np.float64)
    return np.stack(rows).astype(dtype or np.float64, copy=False)


def _dense(cell: Any) -> np.ndarray | None:
    """A cell as a numeric array: Arrow's nested lists arrive as object arrays of arrays."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return None
    array = np.asarray(cell)
    if array.dtype == object:
        if array.ndim == 0 or array.size == 0:
            return None if array.ndim == 0 else np.empty(0)
        parts = [_dense(part) for part in array]
        if any(part is None for part in parts):
            return None
        array = np.concatenate([np.ravel(part) for part in parts if part is not None])
    return array


def describe_feature(spec: FeatureSpec, tensors: np.ndarray) -> dict[str, np.ndarray]:
    """{"x.<descriptor>": values} of a batch of tensors (n, *shape) of a tensor feature."""
    found = describe_tensor(tensors, spec.media, max_value=spec.max, sample_rate=spec.sample_rate)
    return {column_name(spec.name, d): values for d, values in found.items()}


def _floats(values: Sequence[Any]) -> np.ndarray:
    out = np.full(len(values), np.nan)
    for i, value in enumerate(values):
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[i] = float(value)
    return out


@dataclass(frozen=True)
class MediaReference:
    """The reference side of a version's text and tensor features: each text feature's vocabulary,
    the reference distribution of every descriptor column, and each tensor feature's MMD reference."""

    specs: tuple[FeatureSpec, ...]
    describers: Mapping[str, TextDescriber] = field(default_factory=dict)
    columns: Mapping[str, np.ndarray] = field(default_factory=dict)
    embeddings: Mapping[str, MMDReference] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        specs: Sequence[FeatureSpec],
        texts: Mapping[str, Sequence[str | None]],
        tensors: Mapping[str, np.ndarray] | None = None,
        tensor_columns: Mapping[str, np.ndarray] | None = None,
        seed: int = SPLIT_SEED,
    ) -> MediaReference:
        """From the reference's texts (per text feature) and tensors ((n, *shape) per tensor feature).

        `tensor_columns` gives a tensor feature's descriptor columns ready-made (a past window's logged
        ones, all rows) instead of describing `tensors` (which then serve the embedding test alone)."""
        media = tuple(s for s in specs if s.kind in ("text", "tensor"))
        describers: dict[str, TextDescriber] = {}
        columns: dict[str, np.ndarray] = {}
        embeddings: dict[str, MMDReference] = {}
        tensors = tensors or {}
        given = tensor_columns or {}
        for spec in media:
            if spec.kind == "text":
                if spec.name in texts:  # else not in the reference: nothing to compare it with
                    describers[spec.name], found = _cross_described(list(texts[spec.name]), seed)
                    columns.update({column_name(spec.name, d): v for d, v in found.items()})
                continue
            array = tensors.get(spec.name)
            ready = {c: given[c] for c in descriptor_columns(spec) if c in given}
            if ready:
                columns.update(ready)
            elif array is not None and len(array):
                columns.update(describe_feature(spec, array))
            if array is not None and len(array) >= 2:
                embeddings[spec.name] = MMDReference.fit(array, seed=MMD_SEED)
        return cls(media, describers, columns, embeddings)

    @property
    def kinds(self) -> dict[str, str]:
        """Every descriptor column is a numeric feature for the drift engine."""
        return dict.fromkeys(self.columns, "numeric")

    def current_columns(self, inputs: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """The descriptor columns of logged rows' inputs: text described from the stored text, tensor
        descriptors as logged ("x.<descriptor>"; NaN where a row lacks them)."""
        out: dict[str, np.ndarray] = {}
        for spec in self.specs:
            if spec.kind == "text":
                describer = self.describers.get(spec.name)
                if describer is None:
                    continue
                texts = [_text(row.get(spec.name)) for row in inputs]
                found = describer.describe(texts)
                out.update({column_name(spec.name, d): v for d, v in found.items()})
            else:
                for name in descriptor_columns(spec):
                    out[name] = _floats([row.get(name) for row in inputs])
        return out

    def embedding_drift(
        self, inputs: Sequence[Mapping[str, Any]], settings: DriftSettings
    ) -> tuple[list[FeatureDrift], list[str]]:
        """The MMD test of each tensor feature on the rows whose payload was kept; notes on skipped ones."""
        drifts: list[FeatureDrift] = []
        notes: list[str] = []
        for spec in self.specs:
            reference = self.embeddings.get(spec.name)
            if spec.kind != "tensor":
                continue
            if reference is None:
                notes.append(f"feature {spec.name!r}: embedding drift (mmd) not tested: fewer than 2 reference tensors")
                continue
            rows, unreadable = payload_rows(spec, inputs)
            if unreadable:
                notes.append(f"feature {spec.name!r}: {unreadable} logged payload(s) unreadable or of another shape")
            if len(rows) < MIN_EMBEDDING_ROWS:
                notes.append(
                    f"feature {spec.name!r}: embedding drift (mmd) not tested: {len(rows)} sampled payload(s) in the "
                    f"window, at least {MIN_EMBEDDING_ROWS} needed (raise the endpoint's payload_sample_rate or "
                    "widen the window)"
                )
                continue
            drifts.append(_mmd_drift(spec.name, reference, np.stack(rows), settings))
        return drifts, notes


def payload_rows(spec: FeatureSpec, inputs: Sequence[Mapping[str, Any]]) -> tuple[list[np.ndarray], int]:
    """The tensors of the rows whose payload was kept (of the feature's shape), and how many payloads
    could not be read."""
    rows: list[np.ndarray] = []
    unreadable = 0
    size = math.prod(spec.shape) if spec.shape else None
    for row in inputs:
        payload = row.get(spec.name)
        if not isinstance(payload, Mapping):
            unreadable += payload is not None
            continue
        try:
            array = decode_tensor(payload)
        except ValueError:  # a corrupt payload (decode_tensor says which)
            unreadable += 1
            continue
        if array is None or (size is not None and array.size != size):
            unreadable += 1
            continue
        rows.append(array.reshape(-1))
    return rows, unreadable


def _mmd_drift(name: str, reference: MMDReference, rows: np.ndarray, settings: DriftSettings) -> FeatureDrift:
    result = mmd_test(reference, rows, n_permutations=EMBEDDING_PERMUTATIONS, seed=MMD_SEED)
    details = {"mmd2": result.mmd2, "z_score": result.z_score, "bandwidth": result.bandwidth}
    threshold = settings.threshold("mmd")
    subtest = Subtest("embedding", "mmd_permutation", result.p_value, "mmd", result.effect_size, threshold)
    subtest.details.update(details)
    return FeatureDrift(
        name,
        "tensor",
        subtest,
        statistics={"mmd": result.effect_size, **details, "n_permutations": float(result.n_permutations)},
        n_reference=result.n_reference,
        n_current=result.n_current,
    )


def _cross_described(texts: list[str | None], seed: int) -> tuple[TextDescriber, dict[str, np.ndarray]]:
    """The window's describer, and the descriptors of every reference text by a vocabulary not fitted
    on it: the texts split in two halves at random (seeded), each described with the other's vocabulary.

    Every row keeps its descriptors (aligned with the row's other features, as the multivariate tests
    need), and each is distributed as a window's text described with the first half's vocabulary."""
    order = np.random.default_rng(seed).permutation(len(texts))
    first, second = order[: len(texts) // 2], order[len(texts) // 2 :]
    window = TextDescriber.fit([texts[i] for i in first])
    other = TextDescriber.fit([texts[i] for i in second])
    columns: dict[str, np.ndarray] = {}
    for rows, describer in ((second, window), (first, other)):
        for name, values in describer.describe([texts[i] for i in rows]).items():
            columns.setdefault(name, np.full(len(texts), np.nan))[rows] = values
    return window, columns


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
