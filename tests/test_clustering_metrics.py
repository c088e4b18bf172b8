"""Clustering scores and open-set identification, with values worked out by hand; clustering itself on
seeded synthetic unit vectors."""
from __future__ import annotations

import numpy as np
import pytest

from models import clustering
from models.clustering import cluster_vectors, join_clusters
from models.training.metrics import bcubed, open_set

# Two people: a (2 photos) and b (3 photos).
TRUTH = np.array(["a", "a", "b", "b", "b"])


def test_bcubed_perfect_clustering():
    """Each cluster is exactly one person: every item's cluster is all its person, so P = R = F1 = 1 (the
    cluster numbers themselves do not matter)."""
    scores = bcubed(TRUTH, np.array([7, 7, 3, 3, 3]))
    assert (scores["precision"], scores["recall"], scores["f1"], scores["items"]) == (1.0, 1.0, 1.0, 5)


def test_bcubed_everything_in_one_cluster():
    """One cluster of 5: a's items see precision 2/5, b's 3/5, so P = (2 * 2/5 + 3 * 3/5) / 5 = 0.52; every
    item's person is all in its cluster, R = 1; F1 = 2 * 0.52 / 1.52 = 0.684..."""
    scores = bcubed(TRUTH, np.zeros(5, int))
    assert scores["precision"] == pytest.approx(0.52)
    assert scores["recall"] == 1.0
    assert scores["f1"] == pytest.approx(2 * 0.52 / 1.52)


def test_bcubed_everything_alone():
    """All -1: each item is a cluster of its own (not one cluster of the -1s), so P = 1; a's items see recall
    1/2, b's 1/3: R = (2 * 1/2 + 3 * 1/3) / 5 = 0.4; F1 = 2 * 0.4 / 1.4 = 0.571..."""
    scores = bcubed(TRUTH, np.full(5, -1))
    assert scores["precision"] == 1.0
    assert scores["recall"] == pytest.approx(0.4)
    assert scores["f1"] == pytest.approx(0.8 / 1.4)


def test_bcubed_mixed_case():
    """Truth 0 0 0 1 1 2 2; clusters {0, 1} and {2, 3, 4, 6}; item 5 unclustered (-1).

    item: precision, recall
    0, 1: 2/2, 2/3  (cluster {0, 1} is all person 0; person 0 has 3 items, 2 of them here)
    2:    1/4, 1/3  (alone of its person in {2, 3, 4, 6})
    3, 4: 2/4, 2/2
    5:    1,   1/2  (a cluster of its own; its person has 2 items)
    6:    1/4, 1/2
    P = (1 + 1 + 1/4 + 1/2 + 1/2 + 1 + 1/4) / 7 = 9/14; R = (2/3 + 2/3 + 1/3 + 1 + 1 + 1/2 + 1/2) / 7 = 2/3;
    F1 = 2 * (9/14) * (2/3) / (9/14 + 2/3) = (6/7) / (55/42) = 36/55.
    """
    scores = bcubed(np.array([0, 0, 0, 1, 1, 2, 2]), np.array([0, 0, 1, 1, 1, -1, 1]))
    assert scores["precision"] == pytest.approx(9 / 14)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(36 / 55)


def test_bcubed_refuses_unequal_lengths():
    with pytest.raises(ValueError):
        bcubed(np.array([0, 1]), np.array([0]))


def test_open_set_by_hand():
    """Known probes at 0.1 0.2 0.3 0.5, their nearest entry right, wrong, right, right: rank-1 = 3/4.
    Ten unknown probes at 0.25 0.4 0.6 ... 1.3.

    1 % false alarms of 10 unknowns allows none through: the threshold is the nearest unknown, 0.25, and
    accepted knowns are those strictly under it (0.1 right, 0.2 wrong): DIR = 1/4, false alarms 0.
    10 % allows one: the threshold is the second unknown, 0.4; knowns 0.1 0.2 0.3 are accepted, two right:
    DIR = 2/4, false alarms 1/10. 100 % accepts everything: DIR = rank-1.
    """
    known = np.array([0.1, 0.2, 0.3, 0.5])
    correct = np.array([True, False, True, True])
    unknown = np.array([0.25, 0.4, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3])[::-1]  # order must not matter

    one = open_set(known, correct, unknown, false_alarm=0.01)
    assert one["rank1"] == 0.75
    assert (one["threshold"], one["dir"], one["false_alarm"]) == (0.25, 0.25, 0.0)
    assert (one["known_probes"], one["unknown_probes"]) == (4, 10)

    ten = open_set(known, correct, unknown, false_alarm=0.1)
    assert (ten["threshold"], ten["dir"], ten["false_alarm"]) == (0.4, 0.5, 0.1)

    every = open_set(known, correct, unknown, false_alarm=1.0)
    assert every["threshold"] == np.inf and every["dir"] == every["rank1"] == 0.75


def groups(rng: np.random.Generator, sizes: list[int], dim: int = 64, spread: float = 0.02) -> np.ndarray:
    """Unit vectors in tight groups around random centres: within a group cosine distances are about
    (spread * sqrt(dim))^2 = 0.03, between groups about 1."""
    centres = rng.normal(size=(len(sizes), dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = np.concatenate([c + spread * rng.normal(size=(n, dim)) for c, n in zip(centres, sizes)])
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


SIZES = [5, 12, 9, 7]
# clusters are numbered by size, largest first: the group of 12 is 0, of 9 is 1, of 7 is 2, of 5 is 3
EXPECTED = np.repeat([3, 0, 1, 2], SIZES)


def test_well_separated_groups_are_recovered_exactly():
    vectors = groups(np.random.default_rng(0), SIZES)
    assert np.array_equal(cluster_vectors(vectors, threshold=0.5), EXPECTED)


def test_min_size_leaves_small_groups_out():
    """Three lone vectors (their own random directions) and, with min_size 6, the group of 5 are -1."""
    rng = np.random.default_rng(1)
    vectors = np.concatenate([groups(rng, SIZES), groups(rng, [1, 1, 1])])
    labels = cluster_vectors(vectors, threshold=0.5)
    assert np.array_equal(labels, np.concatenate([EXPECTED, [-1, -1, -1]]))
    labels = cluster_vectors(vectors, threshold=0.5, min_size=6)
    assert np.array_equal(labels, np.concatenate([np.repeat([-1, 0, 1, 2], SIZES), [-1, -1, -1]]))


def test_graph_linkage_agrees_on_well_separated_groups(monkeypatch):
    """Above EXACT_LINKAGE_MAX vectors the k-nearest-neighbour graph path runs; on well-separated groups it
    must give the same clusters as the exact path."""
    rng = np.random.default_rng(2)
    vectors = np.concatenate([groups(rng, SIZES), groups(rng, [1, 1])])
    exact = cluster_vectors(vectors, threshold=0.5)
    monkeypatch.setattr(clustering, "EXACT_LINKAGE_MAX", 10)
    monkeypatch.setattr(clustering, "NEIGHBOURS", 8)
    graph = cluster_vectors(vectors, threshold=0.5)
    assert np.array_equal(graph, exact)
    assert np.array_equal(graph, np.concatenate([EXPECTED, [-1, -1]]))


@pytest.mark.parametrize("exact_max", [clustering.EXACT_LINKAGE_MAX, 1])
def test_a_pair_joins_only_strictly_under_the_threshold(monkeypatch, exact_max):
    """Two orthogonal unit vectors are exactly 1.0 apart: a threshold of 1.0 keeps them apart, one just
    above joins them (both paths)."""
    monkeypatch.setattr(clustering, "EXACT_LINKAGE_MAX", exact_max)
    pair = np.eye(2, dtype=np.float32)
    assert cluster_vectors(pair, threshold=1.0).tolist() == [-1, -1]
    assert cluster_vectors(pair, threshold=1.0 + 1e-6).tolist() == [0, 0]


def test_no_vectors_and_one_vector():
    assert cluster_vectors(np.zeros((0, 8), np.float32), 0.5).shape == (0,)
    assert cluster_vectors(np.eye(1, 8, dtype=np.float32), 0.5).tolist() == [-1]
    assert cluster_vectors(np.eye(1, 8, dtype=np.float32), 0.5, min_size=1).tolist() == [0]


def test_join_clusters_joins_near_and_refuses_far():
    """The seventh member of group 2, left out of its cluster's sum, joins cluster 2 (mean distance about 0.03
    against a threshold of 0.5); a vector in a direction of its own is about 1 from every cluster and stays
    out. Without clusters nothing joins."""
    rng = np.random.default_rng(3)
    vectors = groups(rng, [6, 6, 7])
    members, newcomer = vectors[:18], vectors[18:]
    labels = np.repeat([0, 1, 2], 6)
    sums = np.stack([members[labels == k].sum(axis=0) for k in range(3)])
    sizes = np.bincount(labels)
    stranger = groups(rng, [1])
    joined = join_clusters(np.concatenate([newcomer, stranger, members[:1]]), sums, sizes, threshold=0.5)
    assert joined.tolist() == [2, -1, 0]
    assert join_clusters(newcomer, sums[:0], sizes[:0], threshold=0.5).tolist() == [-1]
