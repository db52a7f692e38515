"""Embedding drift: a two-sample MMD test with an RBF kernel and a permutation p-value (numpy only).

For tensors or embeddings (images, audio, a model's hidden layer) where per-column tests see little.

- Rows are float vectors. `MMDReference.fit` keeps a uniform sample of at most `max_rows` reference
  rows, optionally standardises each column by the sample's mean and std, and, above `dim` columns,
  maps them to `dim` columns: a fixed Gaussian random projection (entries N(0, 1/dim), seeded: the
  same seed gives the same matrix; it keeps squared distances in expectation, each within about
  sqrt(2/dim), 25 % at 32 columns, Johnson-Lindenstrauss) or PCA fitted on the reference sample (its
  top `dim` components: tighter on data near a subspace, blind to changes outside it).
- Kernel: k(x, y) = exp(-|x - y|^2 / (2 s^2)), s^2 = (lower median of the squared distances between
  distinct reference rows) / 2: the median heuristic on the reference, as alibi-detect's GaussianRBF.
- Statistic: the unbiased estimate of MMD^2 (U-statistic: the kernel's diagonal left out), which is
  0 in expectation when both samples come from one distribution and may then be slightly negative.
- p-value: (1 + #{permutations with MMD^2 >= observed}) / (1 + n_permutations), the pooled rows
  split at random into groups of the two sizes, seeded. Valid at any sample size.
- Effect size: MMD = sqrt(max(MMD^2, 0)), the distance between the two kernel mean embeddings, in
  [0, sqrt(2)] and independent of the sample sizes (unlike the p-value). `z_score` is MMD^2 in
  standard deviations of the permutation distribution.
- Cost is bounded: at most `max_rows` rows a side, so one test is O((2 max_rows)^2 (d + permutations)).

Replicas combine windows through `Reservoir`: a uniform sample of at most `capacity` rows of
everything added. Each row gets an independent uniform random key when added and a reservoir keeps
the rows with the smallest keys; the merge of two reservoirs keeps the smallest keys of their union,
which is exactly the reservoir of the union of their rows (associative and commutative), so windows
merge in any order. Give each replica its own random generator: keys must be independent.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> reference = MMDReference.fit(rng.normal(size=(300, 100)))
>>> calm = mmd_test(reference, rng.normal(size=(300, 100)), n_permutations=200)
>>> moved = mmd_test(reference, rng.normal(0.3, 1.0, size=(300, 100)), n_permutations=200)
>>> calm.p_value > 0.05, moved.p_value < 0.01, moved.effect_size > calm.effect_size
(True, True, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

MAX_ROWS = 500
PROJECTED_DIM = 32
N_PERMUTATIONS = 500
PERMUTATION_CHUNK = 50  # permutations per matrix product: (2 MAX_ROWS) x 50 floats of work space
Projection = Literal["random", "pca", "none"]


@dataclass(frozen=True)
class Reservoir:
    """A mergeable uniform sample of at most `capacity` rows (see the module's docstring)."""

    rows: np.ndarray  # (k, dim) float64, k <= capacity
    keys: np.ndarray  # (k,) the rows' random keys in [0, 1)
    seen: int  # rows added in all, kept or not
    capacity: int

    @classmethod
    def empty(cls, dim: int, capacity: int = MAX_ROWS) -> Reservoir:
        if capacity < 2:
            raise ValueError(f"capacity must be >= 2. Got {capacity}.")
        return cls(np.empty((0, dim)), np.empty(0), 0, capacity)

    @property
    def dim(self) -> int:
        return int(self.rows.shape[1])

    def add(self, rows: np.ndarray, rng: np.random.Generator) -> Reservoir:
        batch = _matrix(rows, self.dim)
        keys = rng.random(int(batch.shape[0]))
        added = batch.shape[0]
        if added > self.capacity:  # only the batch's smallest keys can be kept: copy those alone
            kept = np.argpartition(keys, self.capacity - 1)[: self.capacity]
            batch, keys = batch[kept], keys[kept]
        return self._keep(np.concatenate([self.rows, batch]), np.concatenate([self.keys, keys]), added)

    def merge(self, other: Reservoir) -> Reservoir:
        if other.dim != self.dim:
            raise ValueError(f"cannot merge reservoirs of {self.dim} and {other.dim} columns.")
        merged = Reservoir(self.rows, self.keys, self.seen, min(self.capacity, other.capacity))
        return merged._keep(
            np.concatenate([self.rows, other.rows]), np.concatenate([self.keys, other.keys]), other.seen
        )

    def _keep(self, rows: np.ndarray, keys: np.ndarray, added: int) -> Reservoir:
        if keys.size > self.capacity:
            kept = np.argpartition(keys, self.capacity - 1)[: self.capacity]
            rows, keys = rows[kept], keys[kept]
        order = np.argsort(keys, kind="stable")  # a canonical order: equal contents, equal arrays
        return Reservoir(rows[order], keys[order], self.seen + added, self.capacity)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows.tolist(),
            "keys": self.keys.tolist(),
            "seen": self.seen,
            "capacity": self.capacity,
            "dim": self.dim,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reservoir:
        dim = int(data["dim"])
        rows = np.asarray(data["rows"], dtype=np.float64).reshape(-1, dim)
        return cls(rows, np.asarray(data["keys"], dtype=np.float64), int(data["seen"]), int(data["capacity"]))


@dataclass(frozen=True)
class MMDReference:
    """The reference side of the test: its sample in the test's space, the map to that space, the bandwidth."""

    rows: np.ndarray  # the reference sample, mapped: (m, k)
    center: np.ndarray  # (d,) subtracted from raw rows
    scale: np.ndarray  # (d,) raw rows divided by it after centring
    projection: np.ndarray | None  # (d, k), or None when rows keep their d columns
    bandwidth: float  # s of the RBF kernel

    @classmethod
    def fit(
        cls,
        reference: np.ndarray,
        max_rows: int = MAX_ROWS,
        projection: Projection = "random",
        dim: int = PROJECTED_DIM,
        standardise: bool = False,
        seed: int = 0,
    ) -> MMDReference:
        raw = _matrix(reference)
        if raw.shape[0] < 2:
            raise ValueError(f"the reference needs at least 2 rows. Got {raw.shape[0]}.")
        rng = np.random.default_rng(seed)
        sample = Reservoir.empty(raw.shape[1], max_rows).add(raw, rng).rows
        d = sample.shape[1]
        center = sample.mean(axis=0) if standardise or projection == "pca" else np.zeros(d)
        scale = np.ones(d)
        if standardise:
            spread = sample.std(axis=0)
            scale = np.where(spread > 0, spread, 1.0)  # a constant column stays as it is
        prepared = (sample - center) / scale
        matrix: np.ndarray | None = None
        if projection != "none" and d > dim:
            if projection == "random":
                matrix = rng.normal(0.0, 1.0 / math.sqrt(dim), size=(d, dim))
            elif projection == "pca":
                matrix = np.linalg.svd(prepared, full_matrices=False)[2][:dim].T
            else:
                raise ValueError(f"projection must be 'random', 'pca' or 'none'. Got {projection!r}.")
        mapped = prepared if matrix is None else prepared @ matrix
        return cls(mapped, center, scale, matrix, median_bandwidth(mapped))

    def transform(self, rows: np.ndarray) -> np.ndarray:
        """Raw rows (n, d) in the test's space (n, k)."""
        prepared = (_matrix(rows, self.center.size) - self.center) / self.scale
        return prepared if self.projection is None else prepared @ self.projection

    def sketch(self, rows: np.ndarray, rng: np.random.Generator, capacity: int = MAX_ROWS) -> Reservoir:
        """A window's mergeable summary: a reservoir of its rows, already mapped (k columns, not d)."""
        return Reservoir.empty(self.rows.shape[1], capacity).add(self.transform(rows), rng)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: every replica must map its rows with the same reference (the projection included)."""
        return {
            "rows": self.rows.tolist(),
            "center": self.center.tolist(),
            "scale": self.scale.tolist(),
            "projection": None if self.projection is None else self.projection.tolist(),
            "bandwidth": self.bandwidth,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MMDReference:
        projection = data["projection"]
        return cls(
            np.asarray(data["rows"], dtype=np.float64),
            np.asarray(data["center"], dtype=np.float64),
            np.asarray(data["scale"], dtype=np.float64),
            None if projection is None else np.asarray(projection, dtype=np.float64),
            float(data["bandwidth"]),
        )


@dataclass(frozen=True)
class MMDResult:
    mmd2: float
    p_value: float
    effect_size: float
    z_score: float
    bandwidth: float
    n_reference: int
    n_current: int
    n_permutations: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def mmd_test(
    reference: MMDReference,
    current: np.ndarray | Reservoir,
    n_permutations: int = N_PERMUTATIONS,
    seed: int = 0,
    max_rows: int = MAX_ROWS,
) -> MMDResult:
    """The test of `current` (raw rows, or a reservoir from `reference.sketch`) against the reference."""
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1. Got {n_permutations}.")
    rng = np.random.default_rng(seed)
    mapped = current.rows if isinstance(current, Reservoir) else reference.sketch(current, rng, max_rows).rows
    m, n = reference.rows.shape[0], mapped.shape[0]
    if n < 2:
        raise ValueError(f"the current sample needs at least 2 rows. Got {n}.")
    if mapped.shape[1] != reference.rows.shape[1]:
        raise ValueError(
            f"current rows have {mapped.shape[1]} columns; the reference's space has {reference.rows.shape[1]}."
        )
    kernel = rbf_kernel(np.concatenate([reference.rows, mapped]), reference.bandwidth)
    np.fill_diagonal(kernel, 0.0)
    total, row_sums = float(kernel.sum()), kernel.sum(axis=1)
    first = np.zeros(m + n)
    first[:m] = 1.0
    observed = float(_mmd2_of_splits(kernel, total, row_sums, first[np.newaxis, :], m)[0])
    null = _permutation_null(kernel, total, row_sums, m, n_permutations, rng)
    spread = float(null.std())
    return MMDResult(
        mmd2=observed,
        p_value=float((1 + np.count_nonzero(null >= observed)) / (1 + n_permutations)),
        effect_size=math.sqrt(max(observed, 0.0)),
        z_score=float((observed - null.mean()) / spread) if spread > 0 else 0.0,
        bandwidth=reference.bandwidth,
        n_reference=m,
        n_current=n,
        n_permutations=n_permutations,
    )


def _permutation_null(
    kernel: np.ndarray, total: float, row_sums: np.ndarray, m: int, n_permutations: int, rng: np.random.Generator
) -> np.ndarray:
    size = kernel.shape[0]
    parts = []
    for start in range(0, n_permutations, PERMUTATION_CHUNK):
        count = min(PERMUTATION_CHUNK, n_permutations - start)
        # each row: a random split, 1 for the rows that play the reference
        chosen = np.argsort(rng.random((count, size)), axis=1)[:, :m]
        splits = np.zeros((count, size))
        np.put_along_axis(splits, chosen, 1.0, axis=1)
        parts.append(_mmd2_of_splits(kernel, total, row_sums, splits, m))
    return np.concatenate(parts)


def _mmd2_of_splits(kernel: np.ndarray, total: float, row_sums: np.ndarray, splits: np.ndarray, m: int) -> np.ndarray:
    """Unbiased MMD^2 for each split (rows of 0/1 of which m are 1), from one product with the kernel.

    With the diagonal zeroed, the within-first-group sum is a'Ka, the cross sum a'K1 - a'Ka, and the
    within-second-group sum the rest of the total: one (N x N) by (N x splits) product for all splits.
    """
    n = kernel.shape[0] - m
    within_first = np.einsum("sn,ns->s", splits, kernel @ splits.T)
    cross = splits @ row_sums - within_first
    within_second = total - within_first - 2.0 * cross
    result: np.ndarray = within_first / (m * (m - 1)) + within_second / (n * (n - 1)) - 2.0 * cross / (m * n)
    return result


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a_i - b_j|^2 for all pairs, through the Gram matrix (clipped at 0 against rounding)."""
    found = (a * a).sum(axis=1)[:, np.newaxis] + (b * b).sum(axis=1)[np.newaxis, :] - 2.0 * (a @ b.T)
    return np.maximum(found, 0.0)


def median_bandwidth(rows: np.ndarray) -> float:
    """s with 2 s^2 = the lower median of the squared distances between distinct rows (1.0 if all 0)."""
    upper = squared_distances(rows, rows)[np.triu_indices(rows.shape[0], k=1)]
    if upper.size == 0:
        return 1.0
    median = float(np.partition(upper, (upper.size - 1) // 2)[(upper.size - 1) // 2])
    return math.sqrt(median / 2.0) if median > 0 else 1.0


def rbf_kernel(rows: np.ndarray, bandwidth: float) -> np.ndarray:
    result: np.ndarray = np.exp(-squared_distances(rows, rows) / (2.0 * bandwidth * bandwidth))
    return result


def _matrix(rows: np.ndarray, dim: int | None = None) -> np.ndarray:
    """Rows as a finite 2-D float64 matrix; a tensor per row (images: n x H x W) is flattened."""
    array = np.asarray(rows, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, np.newaxis]
    elif array.ndim > 2:
        array = array.reshape(array.shape[0], -1)
    if dim is not None and array.shape[1] != dim:
        raise ValueError(f"rows must have {dim} columns. Got {array.shape[1]}.")
    if not np.all(np.isfinite(array)):
        raise ValueError("rows must be finite (no NaN or infinity).")
    return array
