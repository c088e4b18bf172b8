"""The one distance between faces: the cosine distance `1 - a.b` of unit vectors, in [0, 2].

0 is the same direction, 2 the opposite; an inner product of two unit vectors may exceed 1 by float rounding,
so a distance is clipped at 0, never negative. Every part of facesearch that compares two faces with NumPy (the
index, the naming rule, verify, calibration, evaluation) goes through these three functions; the training loss
computes the same distance in TensorFlow, on the graph it trains (`models/training/losses.py`). They compute in
float32, or in float64 when given float64 vectors.
"""
from __future__ import annotations

import numpy as np


def _floats(*arrays) -> list[np.ndarray]:
    dtype = np.result_type(*arrays, np.float32)
    return [np.asarray(a, dtype) for a in arrays]


def from_similarity(similarity: np.ndarray | float) -> np.ndarray:
    """Cosine distance from the inner product of unit vectors (what FAISS's inner-product indexes return)."""
    (s,) = _floats(similarity)
    return np.maximum(1 - s, 0).astype(s.dtype)


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of each row of `a` to the same row of `b` (equal shapes, unit rows) -> (n,)."""
    a, b = _floats(a, b)
    return from_similarity(np.sum(a * b, axis=-1))


def cosine_distances(queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """(q, n) distances of every query row to every vector row (unit rows)."""
    queries, vectors = _floats(queries, vectors)
    return from_similarity(queries @ vectors.T)
