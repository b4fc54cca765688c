"""Neighbours by cosine similarity, computed in blocks (memory linear in the number of images)."""

import numpy as np

_BLOCK = 1024


def unit_rows(vectors, *, centre=False):
    """Rows scaled to length 1 (zero rows stay zero), after subtracting the mean row if `centre`."""
    vectors = np.asarray(vectors, np.float32)
    if centre and len(vectors):
        vectors = vectors - vectors.mean(axis=0)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def similar_pairs(unit, threshold):
    """`(i, j, similarity)` for every pair `i < j` of unit rows at or above `threshold`."""
    pairs = []
    for start in range(0, len(unit), _BLOCK):
        rows = np.arange(start, min(start + _BLOCK, len(unit)))
        similarity = unit[rows] @ unit.T
        for r, i in enumerate(rows):
            close = np.flatnonzero(similarity[r, i + 1:] >= threshold) + i + 1
            pairs.extend((int(i), int(j), float(similarity[r, j])) for j in close)
    return pairs


def knn_distance(unit, copies, k):
    """Mean cosine distance (1 - similarity) of each unit row to its `k` nearest rows.

    Rows with the same value in `copies` (byte copies of one file) are never
    each other's neighbours: a copy would hide an outlier. With fewer than
    `k` other rows, the missing ones count as distance 0.
    """
    n = len(unit)
    distance = np.zeros(n, np.float32)
    if n < 2:
        return distance
    k = max(1, min(k, n - 1))
    copies = np.asarray(copies)
    for start in range(0, n, _BLOCK):
        rows = np.arange(start, min(start + _BLOCK, n))
        similarity = np.where(copies[None, :] == copies[rows, None], -np.inf, unit[rows] @ unit.T)
        nearest = -np.partition(-similarity, k - 1, axis=1)[:, :k]
        distance[rows] = 1.0 - np.where(np.isfinite(nearest), nearest, 1.0).mean(axis=1)
    return np.clip(distance, 0.0, 2.0)


def connected_groups(n, pairs):
    """Groups of indices joined by `pairs` (union-find), each sorted, singletons left out."""
    parent = list(range(n))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, *_ in pairs:
        parent[root(i)] = root(j)
    groups = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])
