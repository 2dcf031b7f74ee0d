"""Which pictures are near-duplicates, and by which method.

A pair is reported by the first method that matches, cheapest first:

=================  =====================================================  ====================
method             matches                                                distance stored
=================  =====================================================  ====================
``phash``          the stored 64-bit pHashes within ``max_distance`` bits   differing bits
``phash-trimmed``  the pHashes after flat borders are cut (letterbox)       differing bits
``phash-mirror``   one picture's trimmed pHash against the other's mirror   differing bits
``embedding``      cosine of the embeddings >= ``MIN_COSINE``, layouts      1 - cosine
                   correlated >= ``MIN_LAYOUT`` and colour layouts within
                   ``MAX_COLOUR`` ΔE (both either way round)
=================  =====================================================  ====================

The thresholds are calibrated on the evaluation set (:mod:`media_pipeline.dedup.evalset`,
``python -m benchmarks.bench_near_duplicates``, photos and synthetic graphics): the pHash
distance keeps its setting (``MEDIA_PIPELINE_NEAR_DUPLICATE_DISTANCE``, 6) and the three
embedding thresholds are those with the highest recall whose precision stays at or above 0.99
on the calibration half.

The hash methods run in SQL in the catalog (banded, like the plain pHash). Embeddings are
searched here with numpy: exactly (blockwise matrix products) up to ``EXACT_MAX`` pictures, and
above that with an inverted file: pictures are filed under their two nearest of ~8·sqrt(n)
k-means centroids (found in a 128-dimensional PCA of a sample) and compared exactly only inside
each centroid's list. Its recall against the exact search is measured by the benchmark.
"""

from __future__ import annotations

import numpy as np

METHODS = ("phash", "phash-trimmed", "phash-mirror", "embedding")
# Calibrated on the evaluation set (see the module docstring); 1 - this is the largest
# embedding distance reported.
MIN_COSINE = 0.72
MIN_LAYOUT = 0.28
MAX_COLOUR = 12.0  # mean ΔE over the 4x4 cells
EXACT_MAX = 25_000
CROWDED = 50  # like the catalog's DEGENERATE_PHASH_FILES
_BLOCK = 2048
_PROBES = 2  # centroids each picture is filed under
_LISTS_PER_ROOT = 8  # lists = 8 * sqrt(n): ~sqrt(n) / 4 pictures compared with each other
_PCA_DIM = 128
_KMEANS_SAMPLE = 20_000
_KMEANS_ROUNDS = 8


def hash_method(phash_a: int, phash_b: int, trimmed_a: int, trimmed_b: int, mirrored_a: int,
                mirrored_b: int, max_distance: int) -> tuple[str, int] | None:
    """The hash method matching two pictures and its distance, or None (the SQL's rule, for
    tests and the benchmark)."""
    raw = (phash_a ^ phash_b).bit_count()
    if raw <= max_distance:
        return "phash", raw
    trimmed = (trimmed_a ^ trimmed_b).bit_count()
    if trimmed <= max_distance:
        return "phash-trimmed", trimmed
    mirror = min((trimmed_a ^ mirrored_b).bit_count(), (mirrored_a ^ trimmed_b).bit_count())
    if mirror <= max_distance:
        return "phash-mirror", mirror
    return None


def hash_pairs(phash: np.ndarray, trimmed: np.ndarray, mirrored: np.ndarray,
               max_distance: int) -> dict[tuple[int, int], tuple[str, float]]:
    """Every pair (i < j) the hash methods match, by brute force (for evaluation sets)."""
    found: dict[tuple[int, int], tuple[str, float]] = {}
    for method, a, b in (("phash", phash, phash), ("phash-trimmed", trimmed, trimmed),
                         ("phash-mirror", trimmed, mirrored)):
        distance = np.bitwise_count(a[:, None] ^ b[None, :])
        if method == "phash-mirror":
            distance = np.minimum(distance, distance.T)
        for i, j in zip(*np.nonzero(np.triu(distance <= max_distance, 1)), strict=True):
            found.setdefault((int(i), int(j)), (method, float(distance[i, j])))
    return found


def embedding_pairs(vectors: np.ndarray, min_cosine: float = MIN_COSINE
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``(i, j, cosine)`` with i < j and cosine >= ``min_cosine``, for unit-length rows."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if len(vectors) <= EXACT_MAX:
        return _exact(vectors, np.arange(len(vectors)), min_cosine)
    return _inverted_file(vectors, min_cosine)


def crowded(i: np.ndarray, j: np.ndarray, count: int, limit: int = CROWDED) -> np.ndarray:
    """For each pair: does either picture match more than ``limit`` others? Such pictures are
    degenerate (blank frames, flat colours, one template used thousands of times): pairing
    them all would be quadratic and says nothing, as for a pHash shared by many files."""
    matches = np.bincount(np.concatenate([i, j]), minlength=count)
    return (matches[i] > limit) | (matches[j] > limit)


def layouts_agree(layouts: np.ndarray, i: np.ndarray, j: np.ndarray,
                  min_layout: float = MIN_LAYOUT) -> np.ndarray:
    """For each pair (i[k], j[k]): is the layout correlation, straight or mirrored, at least
    ``min_layout``? Layouts are rows of 64 (8x8) centred unit-length floats."""
    if not len(i):
        return np.zeros(0, dtype=bool)
    a, b = layouts[i], layouts[j]
    side = int(round(np.sqrt(layouts.shape[1]))) if layouts.size else 0
    mirrored = b.reshape(len(b), side, side)[:, :, ::-1].reshape(len(b), -1)
    return np.maximum((a * b).sum(axis=1), (a * mirrored).sum(axis=1)) >= min_layout


def colour_distances(colours: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """For each pair: the mean colour difference (ΔE) of the cells of the two colour layouts,
    straight or mirrored (the smaller). Colour layouts are rows of side² * 3 L*a*b* floats."""
    count = len(i)
    if not count:
        return np.zeros(0)
    side = int(round(np.sqrt(colours.shape[1] // 3))) if colours.size else 0
    a = colours[i].reshape(count, side, side, 3)
    b = colours[j].reshape(count, side, side, 3)
    straight = np.linalg.norm(a - b, axis=3).mean(axis=(1, 2))
    mirrored = np.linalg.norm(a - b[:, :, ::-1], axis=3).mean(axis=(1, 2))
    return np.minimum(straight, mirrored)


def colours_agree(colours: np.ndarray, i: np.ndarray, j: np.ndarray,
                  max_colour: float = MAX_COLOUR) -> np.ndarray:
    """For each pair: are the colour layouts within ``max_colour`` (mean ΔE)? Graphics made of
    gradients and flat shapes embed alike whatever they show; their colours tell them apart."""
    return colour_distances(colours, i, j) <= max_colour


def _exact(vectors: np.ndarray, ids: np.ndarray, min_cosine: float
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows_i, rows_j, values = [], [], []
    members = vectors[ids]
    for start in range(0, len(ids), _BLOCK):
        block = members[start:start + _BLOCK] @ members[start:].T
        i, j = np.nonzero(block >= min_cosine)
        keep = start + i < start + j  # upper triangle of the whole matrix
        i, j = i[keep], j[keep]
        rows_i.append(ids[start + i])
        rows_j.append(ids[start + j])
        values.append(block[i, j])
    if not rows_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    a, b = np.concatenate(rows_i), np.concatenate(rows_j)
    return np.minimum(a, b), np.maximum(a, b), np.concatenate(values)


def _inverted_file(vectors: np.ndarray, min_cosine: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(vectors)
    rng = np.random.default_rng(0)
    sample = vectors[rng.choice(n, size=min(n, _KMEANS_SAMPLE), replace=False)]
    mean = sample.mean(axis=0)
    centred = sample - mean
    _, eigenvectors = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
    basis = np.ascontiguousarray(eigenvectors[:, ::-1][:, :_PCA_DIM], dtype=np.float32)
    reduced = (vectors - mean) @ basis
    lists = max(16, int(_LISTS_PER_ROOT * np.sqrt(n)))
    centroids = _kmeans(reduced[rng.choice(n, size=min(n, _KMEANS_SAMPLE), replace=False)],
                        lists, rng)
    nearest = np.empty((n, _PROBES), np.int64)
    for start in range(0, n, 16_384):
        distance = _sq_distances(reduced[start:start + 16_384], centroids)
        rows = np.arange(len(distance))
        for probe in range(_PROBES):  # argmin per probe: far cheaper than argpartition
            best = np.argmin(distance, axis=1)
            nearest[start:start + 16_384, probe] = best
            distance[rows, best] = np.inf
    order = np.argsort(nearest.ravel(), kind="stable")
    owners = order // _PROBES
    bounds = np.searchsorted(nearest.ravel()[order], np.arange(lists + 1))
    found_i, found_j, found_v = [], [], []
    for c in range(lists):
        ids = owners[bounds[c]:bounds[c + 1]]
        if len(ids) > 1:
            i, j, v = _exact(vectors, ids, min_cosine)
            found_i.append(i)
            found_j.append(j)
            found_v.append(v)
    if not found_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    i, j, v = np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_v)
    _, first = np.unique(i * n + j, return_index=True)  # a pair may share several lists
    return i[first], j[first], v[first]


def _sq_distances(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Squared distances less each point's own squared norm (the same for every centroid, so
    nearest centroids do not change)."""
    return (centroids ** 2).sum(axis=1)[None, :] - 2 * points @ centroids.T


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    k = min(k, len(points))
    centroids = points[rng.choice(len(points), size=k, replace=False)].copy()
    for _ in range(_KMEANS_ROUNDS):
        assign = np.argmin(_sq_distances(points, centroids), axis=1)
        order = np.argsort(assign, kind="stable")
        used, starts = np.unique(assign[order], return_index=True)
        sums = np.add.reduceat(points[order], starts, axis=0)
        counts = np.diff(np.r_[starts, len(order)])[:, None]
        centroids[used] = sums / counts
    return centroids.astype(np.float32)
