"""The FAISS index on seeded synthetic unit vectors: neighbours match brute force, save/load keeps them."""
from __future__ import annotations

import json

import numpy as np
import pytest

from indexer.vectors import EXACT, VectorIndex, from_bytes, sidecar_path, to_bytes


def unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def filled() -> tuple[VectorIndex, np.ndarray, np.ndarray]:
    vectors = unit_vectors(200, 16)
    ids = np.arange(1000, 1200, dtype=np.int64)
    index = VectorIndex(16)
    index.add(ids, vectors)
    return index, ids, vectors


def brute_force(queries, vectors, ids, k):
    d = 1.0 - queries @ vectors.T
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, axis=1), ids[order]


def test_search_is_exact_cosine_distance(filled):
    index, ids, vectors = filled
    queries = unit_vectors(5, 16, seed=1)
    distances, found = index.search(queries, 10)
    want_d, want_ids = brute_force(queries, vectors, ids, 10)
    np.testing.assert_array_equal(found, want_ids)
    np.testing.assert_allclose(distances, want_d, atol=1e-5)


def test_a_vector_is_its_own_nearest_at_distance_zero(filled):
    index, ids, vectors = filled
    distances, found = index.search(vectors[:20], 1)
    np.testing.assert_array_equal(found[:, 0], ids[:20])
    assert np.all(distances >= 0) and np.all(distances < 1e-5)


def test_search_among_some_ids_only(filled):
    index, ids, vectors = filled
    rows = [3, 50, 99]
    distances, found = index.search(vectors[:4], 5, among=ids[rows])
    want_d, want_ids = brute_force(vectors[:4], vectors[rows], ids[rows], 3)
    np.testing.assert_array_equal(found[:, :3], want_ids)
    np.testing.assert_allclose(distances[:, :3], want_d, atol=1e-5)
    assert np.all(found[:, 3:] == -1) and np.all(np.isinf(distances[:, 3:]))


def test_within_returns_every_vector_under_the_distance(filled):
    index, ids, vectors = filled
    queries = unit_vectors(3, 16, seed=2)
    for q, (found, distances) in zip(queries, index.within(queries, 0.8)):
        d = 1.0 - vectors @ q
        assert set(found.tolist()) == set(ids[d < 0.8].tolist())
        assert np.all(np.diff(distances) >= 0)


def test_remove_and_replace(filled):
    index, ids, vectors = filled
    assert index.remove(ids[:10]) == 10
    assert index.count == 190
    _, found = index.search(vectors[:10], 1)
    assert not set(found.ravel()) & set(ids[:10].tolist())
    index.add(ids[10:11], vectors[:1])  # the same id again replaces its vector
    assert index.count == 190
    _, found = index.search(vectors[:1], 1)
    assert found[0, 0] == ids[10]


def test_save_and_load_return_the_same_neighbours(filled, tmp_path):
    index, ids, vectors = filled
    path = tmp_path / "faces.faiss"
    sidecar = index.save(path, "m-1")
    assert json.loads(sidecar_path(path).read_text()) == {
        "model_version": "m-1", "index_type": EXACT, "dim": 16, "count": 200, "max_id": 1199}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    loaded, read = VectorIndex.load(path)
    assert read == sidecar
    queries = unit_vectors(7, 16, seed=3)
    for a, b in zip(index.search(queries, 8), loaded.search(queries, 8)):
        np.testing.assert_array_equal(a, b)
    assert loaded.ids == index.ids


def test_load_refuses_missing_damaged_or_disagreeing_files(filled, tmp_path):
    index, _, _ = filled
    path = tmp_path / "faces.faiss"
    assert VectorIndex.load(path) is None
    index.save(path, "m-1")
    side = sidecar_path(path)
    side.write_text(side.read_text().replace('"count": 200', '"count": 199'))
    assert VectorIndex.load(path) is None
    index.save(path, "m-1")
    path.write_bytes(b"not an index")
    assert VectorIndex.load(path) is None


def test_vector_bytes_round_trip_and_length_check():
    v = unit_vectors(1, 8)[0]
    data = to_bytes(v)
    assert len(data) == 32
    np.testing.assert_array_equal(from_bytes(data, 8), v)
    with pytest.raises(ValueError, match="expected 36 for dimension 9"):
        from_bytes(data, 9)


def test_wrong_dimension_is_refused(filled):
    index, _, _ = filled
    with pytest.raises(ValueError, match="dimension 8"):
        index.search(unit_vectors(1, 8), 3)


def test_empty_index_answers_nothing():
    index = VectorIndex(4)
    distances, found = index.search(unit_vectors(2, 4), 3)
    assert found.shape == (2, 3) and np.all(found == -1)
    assert [len(f) for f, _ in index.within(unit_vectors(2, 4), 1.0)] == [0, 0]
