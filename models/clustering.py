"""Grouping face vectors into people: pure functions over arrays of unit vectors (no I/O, no database).

Distances are cosine distances `1 - a.b`. Clusters are formed by average linkage: two groups are joined while
the mean distance between their members is under `threshold`, the calibrated verification threshold by
default, so a cluster is a group whose members are, on average, as near to each other as two photos that the
engine would call the same person. Average linkage is used rather than single linkage because single linkage
chains different people together through one ambiguous face; `bench/library_quality.py` measures the result
(BCubed precision and recall on LFW).

The mean distance of a vector `v` to the members of a cluster is `1 - v . s / n`, where `s` is the sum of the
members' vectors and `n` their number, so joining new vectors to existing clusters needs only each cluster's
sum (`join_clusters`): the same criterion as the linkage, without recomputing the clusters.
"""
from __future__ import annotations

import numpy as np

# Above this many vectors, average linkage runs on a k-nearest-neighbour graph instead of all pairs (the full
# distance matrix of 20,000 vectors is 1.6 GB); the neighbours a face can be joined with are then its
# `NEIGHBOURS` nearest, plenty for clusters of one person's faces.
EXACT_LINKAGE_MAX = 8_000
NEIGHBOURS = 30


def cluster_vectors(vectors: np.ndarray, threshold: float, min_size: int = 2) -> np.ndarray:
    """Average-linkage clusters of `vectors` ((n, d) unit rows) cut at mean cosine distance `threshold`.

    Returns (n,) int labels: 0, 1, ... for the clusters of at least `min_size` members, numbered by size
    (largest first, ties by first member), and -1 for the vectors left in smaller groups.
    """
    vectors = np.ascontiguousarray(vectors, np.float32)
    n = len(vectors)
    if n == 0:
        return np.zeros(0, np.int64)
    if n == 1:
        raw = np.zeros(1, np.int64)
    elif n <= EXACT_LINKAGE_MAX:
        from scipy.cluster.hierarchy import fcluster, linkage
        from scipy.spatial.distance import pdist

        distances = np.clip(pdist(vectors.astype(np.float64), "cosine"), 0.0, 2.0)
        tree = linkage(distances, method="average")
        # fcluster keeps merges whose height is <= t; the engine's rule is strictly under the threshold
        raw = fcluster(tree, t=np.nextafter(threshold, -np.inf), criterion="distance").astype(np.int64)
    else:
        raw = _graph_linkage(vectors, threshold)
    return _relabel(raw, min_size)


def _graph_linkage(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """Average linkage restricted to each vector's nearest neighbours (for large n)."""
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.neighbors import kneighbors_graph

    graph = kneighbors_graph(vectors, n_neighbors=min(NEIGHBOURS, len(vectors) - 1), metric="cosine",
                             include_self=False)
    model = AgglomerativeClustering(n_clusters=None, distance_threshold=threshold, metric="cosine",
                                    linkage="average", connectivity=graph)
    return model.fit_predict(vectors).astype(np.int64)


def _relabel(raw: np.ndarray, min_size: int) -> np.ndarray:
    """Labels 0.. by cluster size (largest first, then first member), -1 for groups under `min_size`."""
    ids, first, counts = np.unique(raw, return_index=True, return_counts=True)
    order = sorted(range(len(ids)), key=lambda j: (-counts[j], first[j]))
    mapping = {}
    for j in order:
        if counts[j] >= min_size:
            mapping[ids[j]] = len(mapping)
    return np.array([mapping.get(r, -1) for r in raw.tolist()], np.int64)


def join_clusters(vectors: np.ndarray, sums: np.ndarray, sizes: np.ndarray, threshold: float) -> np.ndarray:
    """For each vector ((n, d) unit rows), the existing cluster whose members are nearest on average, when that
    mean cosine distance is under `threshold`; else -1. A cluster is given by the sum of its members' vectors
    (`sums`, (m, d)) and its size (`sizes`, (m,)). Each vector is judged against the clusters as given, not as
    grown by the other vectors."""
    vectors = np.asarray(vectors, np.float32)
    if len(vectors) == 0 or len(sums) == 0:
        return np.full(len(vectors), -1, np.int64)
    means = np.asarray(sums, np.float32) / np.asarray(sizes, np.float32)[:, None]
    distances = 1.0 - vectors @ means.T  # (n, m) mean cosine distance to each cluster's members
    best = np.argmin(distances, axis=1)
    near = distances[np.arange(len(vectors)), best] < threshold
    return np.where(near, best, -1).astype(np.int64)
