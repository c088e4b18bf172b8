"""Every index type the engine may build, forced with small thresholds on seeded synthetic vectors: the same
answers as brute force (IVF with every list probed), recall above a bound when it probes fewer, exact
distances from rounded codes, save/load, and a gallery that crosses a threshold rebuilt as the new type."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from db import sqlite_url
from fakes import enroll_photo, stored_photo
from indexer import BatchWrite, EmbeddedFace, Gallery, Photo, check_gallery
from indexer.vectors import EXACT, IvfStep, Scale, VectorIndex, sidecar_path
from models.extractor import ModelInfo
from models.faces import Box, Face

DIM = 16
LISTS = 8
# exact below 300 vectors, then IVF8,SQ8 probing every list: its answers must equal brute force
SMALL = Scale(ivf_from=300, steps=(IvfStep(sys.maxsize, LISTS, LISTS),), shortlist=10, among_exact=20)
ALWAYS_EXACT = Scale(ivf_from=sys.maxsize)
ALWAYS_IVF = Scale(ivf_from=LISTS, steps=(IvfStep(sys.maxsize, LISTS, LISTS),), shortlist=10, among_exact=20)


def clustered(n: int, dim: int = DIM, seed: int = 0, people: int = 40) -> np.ndarray:
    """Unit vectors around `people` random centres, like faces of a few people each."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((people, dim)).astype(np.float32)
    v = centres[rng.integers(people, size=n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class Store:
    """The exact vectors of ids, as the database keeps them: the `stored` source of an IVF index."""

    def __init__(self):
        self.vectors: dict[int, np.ndarray] = {}
        self.calls = 0

    def put(self, ids, vectors):
        self.vectors.update(zip(np.asarray(ids).tolist(), np.asarray(vectors, np.float32)))

    def __call__(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        held = [i for i in ids.tolist() if i in self.vectors]
        return np.array(held, np.int64), np.array([self.vectors[i] for i in held], np.float32).reshape(-1, DIM)


def build(scale: Scale, vectors: np.ndarray, ids: np.ndarray) -> tuple[VectorIndex, Store]:
    store = Store()
    store.put(ids, vectors)
    index = VectorIndex.new(DIM, scale.index_type(len(vectors)), vectors, store, scale)
    index.add(ids, vectors)
    return index, store


def brute_force(queries, vectors, ids, k):
    d = 1.0 - queries @ vectors.T
    order = np.lexsort((np.broadcast_to(ids, d.shape), d), axis=1)[:, :k]
    return np.take_along_axis(d, order, axis=1), ids[order]


@pytest.fixture(params=[ALWAYS_EXACT, ALWAYS_IVF], ids=["exact", "ivf"])
def filled(request):
    vectors = clustered(600)
    ids = np.arange(1000, 1600, dtype=np.int64)
    index, store = build(request.param, vectors, ids)
    assert index.type == (EXACT if request.param is ALWAYS_EXACT else f"IVF{LISTS},SQ8")
    return index, store, ids, vectors


def test_the_type_follows_the_size():
    scale = Scale(ivf_from=1000, steps=(IvfStep(5000, 16, 4), IvfStep(sys.maxsize, 64, 8)))
    assert [scale.index_type(n) for n in (0, 999, 1000, 4999, 5000, 10**9)] == [
        EXACT, EXACT, "IVF16,SQ8", "IVF16,SQ8", "IVF64,SQ8", "IVF64,SQ8"]
    assert (scale.nprobe(16), scale.nprobe(64)) == (4, 8)
    assert scale.training_size("IVF16,SQ8", 300) == 300 and scale.training_size("IVF16,SQ8", 10**6) == 640
    assert Scale().index_type(Scale().ivf_from - 1) == EXACT
    with pytest.raises(ValueError, match="at least as many vectors as it has lists"):
        Scale(ivf_from=10, steps=(IvfStep(sys.maxsize, 64, 8),))


def test_search_equals_brute_force_with_exact_distances(filled):
    index, _, ids, vectors = filled
    queries = clustered(20, seed=1)
    distances, found = index.search(queries, 10)
    want_d, want_ids = brute_force(queries, vectors, ids, 10)
    np.testing.assert_array_equal(found, want_ids)
    np.testing.assert_allclose(distances, want_d, atol=1e-6)  # the codes are 8-bit; the distances are not


def test_search_among_few_and_many_ids(filled):
    index, _, ids, vectors = filled
    queries = clustered(6, seed=2)
    for rows in ([3, 50, 99], list(range(0, 600, 7))):  # fewer, then more than `among_exact` (20)
        distances, found = index.search(queries, 10, among=np.append(ids[rows], 99_999))  # an absent id too
        want_d, want_ids = brute_force(queries, vectors[rows], ids[rows], 10)
        n = min(10, len(rows))
        np.testing.assert_array_equal(found[:, :n], want_ids[:, :n])
        np.testing.assert_allclose(distances[:, :n], want_d[:, :n], atol=1e-6)
        assert np.all(found[:, n:] == -1) and np.all(np.isinf(distances[:, n:]))


def test_within_returns_every_vector_under_the_distance(filled):
    index, _, ids, vectors = filled
    queries = clustered(5, seed=3)
    for q, (found, distances) in zip(queries, index.within(queries, 0.5)):
        d = 1.0 - vectors @ q
        assert set(found.tolist()) == set(ids[d < 0.5].tolist())
        np.testing.assert_allclose(distances, np.sort(d[d < 0.5]), atol=1e-6)


def test_add_replaces_and_remove_removes(filled):
    index, store, ids, vectors = filled
    assert index.remove(ids[:10]) == 10
    assert index.count == 590
    _, found = index.search(vectors[:10], 1)
    assert not set(found.ravel().tolist()) & set(ids[:10].tolist())
    with pytest.raises(KeyError):
        index.vector(int(ids[0]))
    store.put(ids[10:11], vectors[:1])  # re-embedding: the database gets the new vector, then the index
    index.add(ids[10:11], vectors[:1])
    assert index.count == 590
    distances, found = index.search(vectors[:1], 1)
    assert found[0, 0] == ids[10] and distances[0, 0] < 1e-6
    np.testing.assert_array_equal(index.vector(int(ids[10])), vectors[0])


def test_vector_is_the_exact_stored_one(filled):
    index, _, ids, vectors = filled
    for row in (0, 77, 599):
        np.testing.assert_array_equal(index.vector(int(ids[row])), vectors[row])
    with pytest.raises(KeyError):
        index.vector(5)


def test_save_and_load_keep_type_ids_and_answers(filled, tmp_path):
    index, store, ids, _ = filled
    path = tmp_path / "faces.faiss"
    index.save(path, "m-1")
    assert json.loads(sidecar_path(path).read_text())["index_type"] == index.type
    loaded, sidecar = VectorIndex.load(path, store, index.scale)
    assert loaded.type == sidecar.index_type == index.type
    assert loaded.ids == index.ids == frozenset(ids.tolist())
    queries = clustered(7, seed=4)
    for a, b in zip(index.search(queries, 8), loaded.search(queries, 8)):
        np.testing.assert_array_equal(a, b)


def test_a_sidecar_naming_another_type_is_refused(filled, tmp_path):
    index, _, _, _ = filled
    path = tmp_path / "faces.faiss"
    index.save(path, "m-1")
    side = sidecar_path(path)
    other = "IVF8,SQ8" if index.type == EXACT else EXACT
    side.write_text(side.read_text().replace(json.dumps(index.type), json.dumps(other)))
    assert VectorIndex.load(path) is None


def test_ivf_recall_when_probing_a_few_lists():
    """16 of 64 lists probed on 5,000 clustered vectors: most first neighbours are still found, and what is
    found carries its exact distance."""
    vectors = clustered(5000, seed=5, people=500)
    ids = np.arange(5000, dtype=np.int64)
    scale = Scale(ivf_from=64, steps=(IvfStep(sys.maxsize, 64, 16),))
    index, _ = build(scale, vectors, ids)
    queries = clustered(200, seed=6, people=500)
    distances, found = index.search(queries, 10)
    want_d, want_ids = brute_force(queries, vectors, ids, 10)
    recall_1 = np.mean(found[:, 0] == want_ids[:, 0])
    recall_10 = np.mean([len(set(f) & set(w)) / 10 for f, w in zip(found.tolist(), want_ids.tolist())])
    assert recall_1 >= 0.9 and recall_10 >= 0.8, (recall_1, recall_10)
    np.testing.assert_allclose(distances, 1.0 - np.einsum("ij,ikj->ik", queries, vectors[found]), atol=1e-6)


def test_an_ivf_index_without_the_stored_vectors_says_so():
    vectors = clustered(320)
    index = VectorIndex.new(DIM, "IVF8,SQ8", vectors, None, ALWAYS_IVF)
    index.add(np.arange(320), vectors)
    with pytest.raises(RuntimeError, match="give it the stored exact vectors"):
        index.search(vectors[:1], 3)


# -- a gallery crossing the threshold ---------------------------------------------------------------------------

MODEL = ModelInfo(version="synthetic-1", dim=DIM, threshold=0.4, threshold_far=0.001)
FACE_VECTORS = clustered(1100, seed=7)


def photo(n: int, faces: int) -> Photo:
    """Photo n with `faces` faces, whose vectors are rows 10n.. of FACE_VECTORS."""
    found = tuple(EmbeddedFace(Face(Box(10 + 30 * i, 10, 30 + 30 * i, 35), np.full((5, 2), 20, np.float32), 0.99),
                               FACE_VECTORS[10 * n + i]) for i in range(faces))
    return stored_photo(f"{n:064x}", f"/photos/{n}.jpg", 1000 + n, 160, 160, found)


def open_gallery(tmp_path, scale: Scale = SMALL) -> Gallery:
    return Gallery.open(sqlite_url(tmp_path / "facesearch.db"), tmp_path / "faces.faiss", MODEL, scale)


def saved_type(tmp_path) -> str:
    return json.loads(sidecar_path(tmp_path / "faces.faiss").read_text())["index_type"]


def test_a_gallery_past_the_threshold_is_rebuilt_as_ivf_when_saved(tmp_path):
    with open_gallery(tmp_path) as g:
        g.write(BatchWrite(photos=[photo(n, 10) for n in range(25)]))  # 250 faces
        assert g.index_type == EXACT
    assert saved_type(tmp_path) == EXACT
    with open_gallery(tmp_path) as g:
        g.write(BatchWrite(photos=[photo(n, 10) for n in range(25, 40)]))  # 400 faces: past 300
        assert g.index_type == EXACT  # the open gallery keeps its type until it is saved
    assert saved_type(tmp_path) == f"IVF{LISTS},SQ8"
    with open_gallery(tmp_path) as g:
        assert g.index_type == f"IVF{LISTS},SQ8" and not g.rebuilt
        assert check_gallery(g, files=False).consistent
        ids = np.array(sorted(g.index.ids), np.int64)
        held, vectors = g.stored_vectors(ids)
        np.testing.assert_array_equal(held, ids)
        # the database's vectors, searched through the IVF index: each finds itself at distance 0
        distances, found = g.index.search(vectors[:50], 1)
        np.testing.assert_array_equal(found[:, 0], ids[:50])
        assert np.all(distances < 1e-6)
        np.testing.assert_array_equal(g.index.vector(int(ids[3])), vectors[3])
        # forget works on it: the enrolled faces leave the index and no search returns them
        items = [enroll_photo(f"{n:064x}", f"/photos/{n}.jpg", 1000 + n, 160, 160, photo(n, 1).faces[0])
                 for n in (100, 101)]
        g.enroll("Ada", items)
        enrolled = np.array(sorted(g.person_faces()), np.int64)
        assert g.index.search(FACE_VECTORS[:3], 2, among=enrolled)[1].tolist() != [[-1, -1]] * 3
        assert g.forget("Ada") == (2, 2)
        assert not set(enrolled.tolist()) & g.index.ids
        assert g.index.search(FACE_VECTORS[:3], 2, among=enrolled)[1].tolist() == [[-1, -1]] * 3
    assert saved_type(tmp_path) == f"IVF{LISTS},SQ8"


def test_a_saved_index_of_the_wrong_type_for_its_size_is_rebuilt_on_load(tmp_path):
    with open_gallery(tmp_path, ALWAYS_EXACT) as g:
        g.write(BatchWrite(photos=[photo(n, 10) for n in range(35)]))
    assert saved_type(tmp_path) == EXACT
    with open_gallery(tmp_path) as g:
        assert check_gallery(g, files=False).index_problem.endswith(f"expected {DIM}-d IVF{LISTS},SQ8 for 350 vectors")
        assert g.index_type == f"IVF{LISTS},SQ8" and g.rebuilt
        assert "was of type IDMap2,FlatIP, but 350 vectors are searched with IVF8,SQ8" in g.rebuilt_because
    assert saved_type(tmp_path) == f"IVF{LISTS},SQ8"
    with open_gallery(tmp_path) as g:
        assert not g.rebuilt and g.index.count == 350
